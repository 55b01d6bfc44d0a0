CREATE OR REPLACE FUNCTION jobledger.reconcile_orphaned(
    reason text DEFAULT 'runner lost',
    lease interval DEFAULT NULL
)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    -- The lease: how long a running run may go without a heartbeat.  The
    -- argument wins, then the jobledger.lease setting (ALTER DATABASE/ROLE
    -- ... SET jobledger.lease = '2 min'), then one minute.
    effective_lease interval := coalesce(
        lease, nullif(current_setting('jobledger.lease', true), '')::interval, interval '1 minute');
    changed integer := 0;
    lost record;
BEGIN
    IF effective_lease <= interval '0' THEN
        RAISE EXCEPTION 'the lease must be positive, not %', effective_lease
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    IF reason IS NULL OR reason = '' THEN
        RAISE EXCEPTION 'reconcile_orphaned needs a reason'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;

    -- Running runs whose executing backend is gone: its transaction has
    -- rolled back, so nothing was written and the run can go again.  The pid
    -- alone could have been reused; backend_start tells them apart.  SECURITY
    -- DEFINER lets this see every backend in pg_stat_activity.  Runs silent
    -- for a whole lease (a partitioned or stopped runner) count too: their
    -- late commit is refused by the fenced flip.  SKIP LOCKED: a row someone
    -- holds is being acted on already, and concurrent reconcilers split the
    -- work instead of waiting.
    FOR lost IN
        SELECT r.id, r.attempt, r.max_attempts, r.backend_pid, r.backend_start
          FROM jobledger.run AS r
         WHERE r.status = 'running'
           AND ((r.backend_pid IS NOT NULL
                 AND NOT EXISTS (SELECT 1
                                   FROM pg_catalog.pg_stat_activity AS a
                                  WHERE a.pid = r.backend_pid
                                    AND a.backend_start IS NOT DISTINCT FROM r.backend_start))
                OR coalesce(r.heartbeat_at, r.started_at) < pg_catalog.now() - effective_lease)
           FOR UPDATE OF r SKIP LOCKED
    LOOP
        -- Close the lost attempt so the history says what happened to it;
        -- then the run goes again if it has attempts left, else it fails.
        PERFORM jobledger_internal.close_attempt(lost.id, lost.attempt, 'failed', pg_catalog.now(),
                                                 reconcile_orphaned.reason);
        IF lost.attempt < lost.max_attempts THEN
            PERFORM jobledger_internal.back_to_pending(lost.id, lost.attempt, pg_catalog.now(), NULL, NULL, NULL);
        ELSE
            PERFORM jobledger_internal.fail_for_good(lost.id, reconcile_orphaned.reason, NULL, 'runner_lost');
        END IF;
        changed := changed + 1;

        -- A run taken over because its lease expired may still have a live
        -- backend (a stopped or partitioned runner): its transaction can no
        -- longer commit (the fenced complete_run refuses it) but still holds
        -- its locks, which would block the retry (overwrite deletes every
        -- row, merge updates them).  Terminate it, but only the very backend
        -- (pid and backend_start) and only while it is still executing this
        -- run (the runner names the run in application_name for its
        -- transaction).
        PERFORM pg_catalog.pg_terminate_backend(a.pid)
           FROM pg_catalog.pg_stat_activity AS a
          WHERE a.pid = lost.backend_pid AND a.backend_start = lost.backend_start
            AND a.application_name = jobledger_internal.run_application_name(lost.id)
            AND a.pid <> pg_catalog.pg_backend_pid();
    END LOOP;
    RETURN changed;
END
$$;
COMMENT ON FUNCTION jobledger.reconcile_orphaned(text, interval) IS
    'Recovers running runs whose executing backend is gone or whose heartbeat is older than the lease (argument, else the jobledger.lease setting, else 1 minute): back to pending if attempts are left, else failed with reason (keeping the worker and backend of the lost attempt, as fail_run does). Closes the lost attempt, and terminates the backend of a run taken over from a live one (still executing it) so its locks go. Returns how many runs changed. Safe to call concurrently.';
REVOKE ALL ON FUNCTION jobledger.reconcile_orphaned(text, interval) FROM PUBLIC;
