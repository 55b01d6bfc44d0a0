-- Runs executed on a connection authenticated as the job's owner (0.5.0;
-- `jobledger runner --connect-as-owner`, python/jobledger/runner/owners.py).
--
-- The runner claims a run on its own connection (claim_runs), then opens or
-- reuses a connection that logged in AS THE JOB'S OWNER (a pg_ident.conf
-- map lets the runner's OS user log in as members of jobledger_owners) and
-- executes the run there.  That connection's session_user is the owner and
-- cannot be changed (SET SESSION AUTHORIZATION needs a superuser session),
-- so nothing the job does (RESET ROLE, set_config('role', ...)) reaches
-- beyond the owner's own rights.
--
-- These functions are what such a connection needs from the ledger, and no
-- more.  Each one applies only to a run that is running with the given
-- attempt on the given worker, whose job belongs to session_user, and (but
-- attach_run) that is attached to the very calling backend.  So an owner's
-- connection, and any job running on it, can at most touch the owner's own
-- run that it is executing (e.g. complete it early in its own transaction,
-- which the runner's own complete then finds fenced: all of it rolls back).
--
-- EXECUTE is revoked from PUBLIC; the administrator grants it to the group
-- of job owners (README "The runner"):
--   GRANT EXECUTE ON FUNCTION jobledger_internal.attach_run(uuid, integer, text),
--       jobledger_internal.complete_attached_run(uuid, integer, text, bigint, text, jsonb),
--       jobledger_internal.emit_attached_output(uuid, integer, text, text, text, bytea, uuid[]),
--       jobledger_internal.lock_attached_run(uuid, integer, text)
--     TO jobledger_owners;


CREATE OR REPLACE FUNCTION jobledger_internal.owned_by_session_user(current jobledger.run)
RETURNS boolean
LANGUAGE sql
STABLE
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
    -- session_user: the login of the owner's connection, which nothing the
    -- job does can change (current_user is the definer's here).
    SELECT EXISTS (SELECT 1 FROM jobledger.job AS j
                    WHERE j.name = owned_by_session_user.current.job AND j.owner = SESSION_USER)
$$;
COMMENT ON FUNCTION jobledger_internal.owned_by_session_user(jobledger.run) IS
    'Internal: whether the run''s job belongs to session_user (the role the owner''s connection logged in as); false for no run.';
REVOKE ALL ON FUNCTION jobledger_internal.owned_by_session_user(jobledger.run) FROM PUBLIC;


CREATE OR REPLACE FUNCTION jobledger_internal.attach_run(run uuid, attempt integer, worker text)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    current jobledger.run := jobledger_internal.fenced_run(attach_run.run, attach_run.attempt, attach_run.worker);
BEGIN
    -- Called on the owner's connection, in a transaction of its own, before
    -- the run's transaction begins: from then on the ledger names this
    -- backend as the one executing the run, so reconcile_orphaned sees it
    -- die, cancel_run signals it, and only it may emit and complete.
    IF NOT jobledger_internal.owned_by_session_user(current) THEN
        RAISE EXCEPTION 'run % attempt % is not running on worker % for this role', attach_run.run,
                attach_run.attempt, attach_run.worker
            USING ERRCODE = 'object_not_in_prerequisite_state', DETAIL = 'category: run_fenced';
    END IF;
    UPDATE jobledger.run AS r
       SET backend_pid = pg_catalog.pg_backend_pid(),
           backend_start = jobledger_internal.backend_start(),
           heartbeat_at = pg_catalog.clock_timestamp()
     WHERE r.id = attach_run.run;
    UPDATE jobledger.run_attempt AS a
       SET backend_pid = pg_catalog.pg_backend_pid()
     WHERE a.run = attach_run.run AND a.attempt = attach_run.attempt;
END
$$;
COMMENT ON FUNCTION jobledger_internal.attach_run(uuid, integer, text) IS
    'Runner, on a connection authenticated as the job''s owner (--connect-as-owner): records the calling backend as the one executing the run (pid and backend_start), if the run is running with this attempt on this worker and its job belongs to session_user; raises run_fenced otherwise.';
REVOKE ALL ON FUNCTION jobledger_internal.attach_run(uuid, integer, text) FROM PUBLIC;


CREATE OR REPLACE FUNCTION jobledger_internal.check_attached(run uuid, attempt integer, worker text)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    -- The fence of the *_attached_* functions: running with this attempt on
    -- this worker, owned by session_user, attached to this very backend.
    -- Locks the run's row until the caller's transaction ends.
    current jobledger.run := jobledger_internal.fenced_run(check_attached.run, check_attached.attempt,
                                                           check_attached.worker);
BEGIN
    IF NOT (jobledger_internal.owned_by_session_user(current) AND jobledger_internal.executing_here(current)) THEN
        RAISE EXCEPTION 'run % attempt % is not running on this connection', check_attached.run,
                check_attached.attempt
            USING ERRCODE = 'object_not_in_prerequisite_state', DETAIL = 'category: run_fenced',
                  HINT = 'The run was cancelled, or taken over after its lease expired; this attempt''s writes roll back.';
    END IF;
END
$$;
COMMENT ON FUNCTION jobledger_internal.check_attached(uuid, integer, text) IS
    'Internal: raises run_fenced unless the run is running with this attempt on this worker, its job belongs to session_user and it is attached to the calling backend (attach_run); locks the run''s row.';
REVOKE ALL ON FUNCTION jobledger_internal.check_attached(uuid, integer, text) FROM PUBLIC;


CREATE OR REPLACE FUNCTION jobledger_internal.complete_attached_run(
    run uuid, attempt integer, worker text, rows_written bigint, snapshot_id text DEFAULT NULL,
    metrics jsonb DEFAULT NULL
)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
BEGIN
    -- In the owner's transaction that wrote the destination: the write and
    -- the flip to succeeded commit together, or neither does.
    PERFORM jobledger_internal.check_attached(complete_attached_run.run, complete_attached_run.attempt,
                                     complete_attached_run.worker);
    PERFORM jobledger_internal.complete_run(complete_attached_run.run, complete_attached_run.attempt,
                                   complete_attached_run.worker, complete_attached_run.rows_written,
                                   complete_attached_run.snapshot_id, complete_attached_run.metrics);
END
$$;
COMMENT ON FUNCTION jobledger_internal.complete_attached_run(uuid, integer, text, bigint, text, jsonb) IS
    'Runner, on the job owner''s connection executing the run (attach_run): complete_run (with its metrics) in the transaction that wrote the destination; raises run_fenced unless the run is still this attempt''s, owned by session_user and attached to this backend.';
REVOKE ALL ON FUNCTION jobledger_internal.complete_attached_run(uuid, integer, text, bigint, text, jsonb) FROM PUBLIC;


CREATE OR REPLACE FUNCTION jobledger_internal.emit_attached_output(
    run uuid, attempt integer, worker text, name text, content_type text, data bytea, parents uuid[] DEFAULT '{}'
)
RETURNS uuid
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
BEGIN
    PERFORM jobledger_internal.check_attached(emit_attached_output.run, emit_attached_output.attempt,
                                     emit_attached_output.worker);
    RETURN jobledger_internal.emit_output(emit_attached_output.run, emit_attached_output.name,
                                 emit_attached_output.content_type, emit_attached_output.data,
                                 emit_attached_output.parents);
END
$$;
COMMENT ON FUNCTION jobledger_internal.emit_attached_output(uuid, integer, text, text, text, bytea, uuid[]) IS
    'Runner, on the job owner''s connection executing the run (attach_run): emit_output, fenced like complete_attached_run.';
REVOKE ALL ON FUNCTION jobledger_internal.emit_attached_output(uuid, integer, text, text, text, bytea, uuid[]) FROM PUBLIC;


CREATE OR REPLACE FUNCTION jobledger_internal.lock_attached_run(run uuid, attempt integer, worker text)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
BEGIN
    -- lock_run's fence, held until the transaction ends (before publishing
    -- a dataset version), for the owner's connection.
    PERFORM jobledger_internal.check_attached(lock_attached_run.run, lock_attached_run.attempt, lock_attached_run.worker);
END
$$;
COMMENT ON FUNCTION jobledger_internal.lock_attached_run(uuid, integer, text) IS
    'Runner, on the job owner''s connection executing the run (attach_run): lock_run, fenced like complete_attached_run.';
REVOKE ALL ON FUNCTION jobledger_internal.lock_attached_run(uuid, integer, text) FROM PUBLIC;
