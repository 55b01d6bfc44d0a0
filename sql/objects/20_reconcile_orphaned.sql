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
    changed integer;
    -- (run, pid, backend_start) of the runs taken over from a live backend.
    stale jsonb;
BEGIN
    IF effective_lease <= interval '0' THEN
        RAISE EXCEPTION 'the lease must be positive, not %', effective_lease
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    IF reason IS NULL OR reason = '' THEN
        RAISE EXCEPTION 'reconcile_orphaned needs a reason'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;

    WITH orphaned AS (
        -- Running runs whose executing backend is gone: its transaction has
        -- rolled back, so nothing was written and the run can go again.  The
        -- pid alone could have been reused; backend_start tells them apart.
        -- SECURITY DEFINER lets this see every backend in pg_stat_activity.
        -- Runs silent for a whole lease (a partitioned or stopped runner)
        -- count too: their late commit is refused by the fenced flip.
        -- SKIP LOCKED: a row someone holds is being acted on already, and
        -- concurrent reconcilers split the work instead of waiting.
        SELECT r.id, r.attempt, r.backend_pid, r.backend_start
          FROM jobledger.run AS r
         WHERE r.status = 'running'
           AND ((r.backend_pid IS NOT NULL
                 AND NOT EXISTS (SELECT 1
                                   FROM pg_catalog.pg_stat_activity AS a
                                  WHERE a.pid = r.backend_pid
                                    AND a.backend_start IS NOT DISTINCT FROM r.backend_start))
                OR coalesce(r.heartbeat_at, r.started_at) < now() - effective_lease)
           FOR UPDATE OF r SKIP LOCKED
    ),
    closed_attempts AS (
        -- Close the lost attempt so the history says what happened to it.
        UPDATE jobledger.run_attempt AS ra
           SET status = 'failed', finished_at = now(), error = reconcile_orphaned.reason
          FROM orphaned AS o
         WHERE ra.run = o.id AND ra.attempt = o.attempt AND ra.status = 'running'
    ),
    changed_runs AS (
    UPDATE jobledger.run AS r
       SET status = CASE WHEN r.attempt < r.max_attempts
                         THEN 'pending'::jobledger.run_status
                         ELSE 'failed'::jobledger.run_status END,
           run_after = CASE WHEN r.attempt < r.max_attempts THEN now() ELSE r.run_after END,
           finished_at = CASE WHEN r.attempt < r.max_attempts THEN NULL ELSE now() END,
           error = CASE WHEN r.attempt < r.max_attempts THEN NULL ELSE reconcile_orphaned.reason END,
           error_category = CASE WHEN r.attempt < r.max_attempts THEN NULL ELSE 'runner_lost' END,
           error_sqlstate = NULL,
           worker = NULL,
           backend_pid = NULL,
           backend_start = NULL,
           heartbeat_at = NULL,
           started_at = CASE WHEN r.attempt < r.max_attempts THEN NULL ELSE r.started_at END
      FROM orphaned AS o
     WHERE r.id = o.id
    RETURNING o.id, o.backend_pid, o.backend_start
    )
    SELECT count(*)::integer,
           jsonb_agg(jsonb_build_object('run', c.id, 'pid', c.backend_pid, 'start', c.backend_start))
               FILTER (WHERE c.backend_pid IS NOT NULL)
      INTO changed, stale
      FROM changed_runs AS c;

    -- A run taken over because its lease expired may still have a live
    -- backend (a stopped or partitioned runner): its transaction can no
    -- longer commit (the fenced complete_run refuses it) but still holds
    -- its locks, which would block the retry (overwrite deletes every row,
    -- merge updates them).  Terminate it, but only the very backend (pid
    -- and backend_start) and only while it is still executing this run
    -- (the runner names the run in application_name for its transaction).
    PERFORM pg_terminate_backend(a.pid)
       FROM jsonb_to_recordset(coalesce(stale, '[]')) AS s (run uuid, pid integer, start timestamptz)
       JOIN pg_catalog.pg_stat_activity AS a
         ON a.pid = s.pid AND a.backend_start = s.start
        AND a.application_name = jobledger_internal.run_application_name(s.run)
      WHERE a.pid <> pg_backend_pid();
    RETURN changed;
END
$$;
COMMENT ON FUNCTION jobledger.reconcile_orphaned(text, interval) IS
    'Recovers running runs whose executing backend is gone or whose heartbeat is older than the lease (argument, else the jobledger.lease setting, else 1 minute): back to pending if attempts are left, else failed with reason. Closes the lost attempt, and terminates the backend of a run taken over from a live one (still executing it) so its locks go. Returns how many runs changed. Safe to call concurrently.';
REVOKE ALL ON FUNCTION jobledger.reconcile_orphaned(text, interval) FROM PUBLIC;
