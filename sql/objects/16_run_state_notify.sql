-- Every change of a run's status is published on the channel
-- jobledger_run_state, in the transaction that makes it (so a change rolled
-- back is never announced, and a listener hears it only once it committed).
-- One trigger, whatever function made the change (docs/state-machine.md).
--
-- The payload is {"run": "<uuid>", "status": "<new status>", "attempt": n}
-- and names no job: any role may LISTEN on any channel, and which jobs exist
-- is not everyone's to know (docs/security.md).  A listener that may see the
-- run reads the rest from jobledger.runs, under row-level security.
CREATE OR REPLACE FUNCTION jobledger_internal.run_state_notify()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
BEGIN
    PERFORM pg_catalog.pg_notify('jobledger_run_state', pg_catalog.json_build_object(
        'run', NEW.id, 'status', NEW.status, 'attempt', NEW.attempt)::text);
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION jobledger_internal.run_state_notify() IS
    'Trigger: NOTIFY jobledger_run_state with {"run", "status", "attempt"} when a run''s status changes.';
REVOKE ALL ON FUNCTION jobledger_internal.run_state_notify() FROM PUBLIC;

CREATE OR REPLACE TRIGGER run_state_notify
    AFTER UPDATE OF status ON jobledger.run
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION jobledger_internal.run_state_notify();
COMMENT ON TRIGGER run_state_notify ON jobledger.run IS
    'Announces each change of a run''s status on the channel jobledger_run_state (payload: run, status, attempt).';
