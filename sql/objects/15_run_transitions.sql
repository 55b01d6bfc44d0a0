-- The pieces the run state machine's transitions share (docs/state-machine.md
-- draws the machine and names the function of every transition):
--
-- * fenced_run and fence: is this run still running as this attempt of this
--   worker?  Every transition of a claimed run (complete_run, fail_run,
--   release_run, lock_run, report_progress, attach_run and the *_attached_*
--   functions) asks this, so that a runner that lost its run (cancelled,
--   taken over after its lease) can never overwrite what happened since.
-- * executing_here: is this run being executed on the calling connection?
--   (emit_output, and the *_attached_* functions on the owner's connection.)
-- * back_to_pending and fail_for_good: the two ends of a failed attempt
--   (fail_run, reconcile_orphaned; release_run uses the first).  A run back
--   to pending belongs to nobody; a run that failed for good keeps the worker
--   and backend of its last attempt, as a succeeded or cancelled run does.
-- * close_attempt: the attempt's row in the history, when its attempt ends.
--
-- Internal: only the transitions call them (SECURITY DEFINER, as the
-- extension's owner); EXECUTE is revoked from PUBLIC.  They check no rights
-- of their own.

CREATE OR REPLACE FUNCTION jobledger_internal.backend_start()
RETURNS timestamptz
LANGUAGE sql
STABLE
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
    SELECT a.backend_start FROM pg_catalog.pg_stat_activity AS a WHERE a.pid = pg_catalog.pg_backend_pid()
$$;
COMMENT ON FUNCTION jobledger_internal.backend_start() IS
    'Internal: backend_start of the calling backend, which with its pid names it (a pid alone can be reused).';
REVOKE ALL ON FUNCTION jobledger_internal.backend_start() FROM PUBLIC;


CREATE OR REPLACE FUNCTION jobledger_internal.fenced_run(
    run uuid, attempt integer, worker text, skip_locked boolean DEFAULT false
)
RETURNS jobledger.run
LANGUAGE plpgsql
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    current jobledger.run;
BEGIN
    -- The fence, and the lock: the row stays locked until the caller's
    -- transaction ends, so nobody else (cancel_run, reconcile_orphaned)
    -- decides the run meanwhile; they wait, or skip it.  Under READ
    -- COMMITTED a row changed since the snapshot is checked again once
    -- locked.  skip_locked: a row someone holds is being decided right now;
    -- it counts as not ours rather than being waited for.
    IF fenced_run.skip_locked THEN
        SELECT r.* INTO current FROM jobledger.run AS r
         WHERE r.id = fenced_run.run AND r.status = 'running'
           AND r.attempt = fenced_run.attempt AND r.worker = fenced_run.worker
           FOR UPDATE SKIP LOCKED;
    ELSE
        SELECT r.* INTO current FROM jobledger.run AS r
         WHERE r.id = fenced_run.run AND r.status = 'running'
           AND r.attempt = fenced_run.attempt AND r.worker = fenced_run.worker
           FOR UPDATE;
    END IF;
    RETURN current;
END
$$;
COMMENT ON FUNCTION jobledger_internal.fenced_run(uuid, integer, text, boolean) IS
    'Internal, the fence of every transition of a claimed run: the run''s row, locked until the transaction ends, if it is still running with this attempt on this worker; else a row of NULLs. skip_locked: a row locked by someone else counts as not ours.';
REVOKE ALL ON FUNCTION jobledger_internal.fenced_run(uuid, integer, text, boolean) FROM PUBLIC;


CREATE OR REPLACE FUNCTION jobledger_internal.fence(run uuid, attempt integer, worker text, hint text)
RETURNS jobledger.run
LANGUAGE plpgsql
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    current jobledger.run := jobledger_internal.fenced_run(fence.run, fence.attempt, fence.worker);
    status_now jobledger.run_status;
BEGIN
    IF current.id IS NULL THEN
        -- Raise rather than return false: the caller's transaction, and so
        -- its write to the destination, cannot commit, even if the caller
        -- pipelined its COMMIT or forgot to look at a result.
        SELECT r.status INTO status_now FROM jobledger.run AS r WHERE r.id = fence.run;
        RAISE EXCEPTION 'run % attempt % is no longer running on worker % (it is %)',
                fence.run, fence.attempt, fence.worker, coalesce(status_now::text, 'gone')
            USING ERRCODE = 'object_not_in_prerequisite_state', DETAIL = 'category: run_fenced',
                  HINT = fence.hint;
    END IF;
    RETURN current;
END
$$;
COMMENT ON FUNCTION jobledger_internal.fence(uuid, integer, text, text) IS
    'Internal: fenced_run, raising run_fenced (with the given hint) when the run is no longer running with this attempt on this worker.';
REVOKE ALL ON FUNCTION jobledger_internal.fence(uuid, integer, text, text) FROM PUBLIC;


CREATE OR REPLACE FUNCTION jobledger_internal.executing_here(current jobledger.run)
RETURNS boolean
LANGUAGE sql
STABLE
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
    -- claim_runs (or attach_run) recorded the backend executing the run.
    SELECT coalesce(executing_here.current.status = 'running'
                    AND executing_here.current.backend_pid = pg_catalog.pg_backend_pid()
                    AND executing_here.current.backend_start IS NOT DISTINCT FROM jobledger_internal.backend_start(),
                    false)
$$;
COMMENT ON FUNCTION jobledger_internal.executing_here(jobledger.run) IS
    'Internal: whether the run is running and executed by the calling backend (its pid and backend_start).';
REVOKE ALL ON FUNCTION jobledger_internal.executing_here(jobledger.run) FROM PUBLIC;


CREATE OR REPLACE FUNCTION jobledger_internal.close_attempt(
    run uuid, attempt integer, status jobledger.run_status, finished_at timestamptz,
    error text DEFAULT NULL, error_sqlstate text DEFAULT NULL
)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
    UPDATE jobledger.run_attempt AS a
       SET status = close_attempt.status, finished_at = close_attempt.finished_at,
           error = close_attempt.error, error_sqlstate = close_attempt.error_sqlstate
     WHERE a.run = close_attempt.run AND a.attempt = close_attempt.attempt AND a.status = 'running'
$$;
COMMENT ON FUNCTION jobledger_internal.close_attempt(uuid, integer, jobledger.run_status, timestamptz, text, text) IS
    'Internal: ends an attempt''s row in the history (succeeded, failed or cancelled, when, and why) if it is still open.';
REVOKE ALL ON FUNCTION jobledger_internal.close_attempt(uuid, integer, jobledger.run_status, timestamptz, text, text)
    FROM PUBLIC;


CREATE OR REPLACE FUNCTION jobledger_internal.back_to_pending(
    run uuid, attempt integer, run_after timestamptz, error text, error_sqlstate text, error_category text
)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
    -- Nobody's any more: no worker, backend, start or heartbeat, so the next
    -- claim starts afresh.  The caller has fenced (or locked) the run.
    UPDATE jobledger.run AS r
       SET status = 'pending',
           attempt = back_to_pending.attempt,
           run_after = back_to_pending.run_after,
           started_at = NULL,
           finished_at = NULL,
           worker = NULL,
           backend_pid = NULL,
           backend_start = NULL,
           heartbeat_at = NULL,
           error = back_to_pending.error,
           error_sqlstate = back_to_pending.error_sqlstate,
           error_category = back_to_pending.error_category
     WHERE r.id = back_to_pending.run
$$;
COMMENT ON FUNCTION jobledger_internal.back_to_pending(uuid, integer, timestamptz, text, text, text) IS
    'Internal: puts a run back to pending, claimable from run_after, with the attempts it has used and the error that sent it back (or NULL); it keeps no worker, backend, start or heartbeat.';
REVOKE ALL ON FUNCTION jobledger_internal.back_to_pending(uuid, integer, timestamptz, text, text, text) FROM PUBLIC;


CREATE OR REPLACE FUNCTION jobledger_internal.fail_for_good(
    run uuid, error text, error_sqlstate text, error_category text
)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
    -- Terminal: worker, backend_pid, backend_start, started_at and
    -- heartbeat_at stay those of the last attempt, which is what a DBA
    -- reading the ledger wants to know (who ran it, when it was last heard
    -- of), as for a succeeded or cancelled run.
    UPDATE jobledger.run AS r
       SET status = 'failed',
           finished_at = pg_catalog.clock_timestamp(),
           error = fail_for_good.error,
           error_sqlstate = fail_for_good.error_sqlstate,
           error_category = fail_for_good.error_category
     WHERE r.id = fail_for_good.run
$$;
COMMENT ON FUNCTION jobledger_internal.fail_for_good(uuid, text, text, text) IS
    'Internal: fails a run for good with its error (message, SQLSTATE, category); it keeps the worker and backend of its last attempt.';
REVOKE ALL ON FUNCTION jobledger_internal.fail_for_good(uuid, text, text, text) FROM PUBLIC;
