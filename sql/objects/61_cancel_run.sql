CREATE OR REPLACE FUNCTION jobledger.cancel_run(run uuid)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    role_name name := jobledger_internal.calling_role();
    current jobledger.run;
    job_owner name;
    may_cancel boolean;
    reason text;
BEGIN
    -- Lock the run: a runner completing or failing it waits for this
    -- decision, and then its fenced transition finds it cancelled.
    SELECT r.* INTO current FROM jobledger.run AS r WHERE r.id = cancel_run.run FOR UPDATE;
    SELECT j.owner INTO job_owner FROM jobledger.job AS j WHERE j.name = current.job;
    -- Who may: the run's submitter, the job's owner, members of either, and
    -- superusers (pg_has_role is true for them).  A role that no longer
    -- exists has no members.  A run the caller may not even see (row-level
    -- security on jobledger.run) looks absent: the same error as no run.
    may_cancel := coalesce(pg_catalog.pg_has_role(role_name,
                               pg_catalog.to_regrole(pg_catalog.quote_ident(current.submitted_by)), 'MEMBER'), false)
               OR coalesce(pg_catalog.pg_has_role(role_name,
                               pg_catalog.to_regrole(pg_catalog.quote_ident(job_owner)), 'MEMBER'), false);
    IF current.id IS NULL OR NOT (may_cancel OR pg_catalog.pg_has_role(role_name, 'pg_read_all_data', 'MEMBER')) THEN
        RAISE EXCEPTION 'there is no run %', cancel_run.run
            USING ERRCODE = 'undefined_object', DETAIL = 'category: unknown_run';
    END IF;
    IF NOT may_cancel THEN
        RAISE EXCEPTION '% may not cancel run %', role_name, cancel_run.run
            USING ERRCODE = 'insufficient_privilege', DETAIL = 'category: permission_denied',
                  HINT = 'Only the run''s submitter or the job''s owner (or their members) may cancel it.';
    END IF;
    IF current.status NOT IN ('pending', 'running') THEN
        RETURN false;  -- terminal: never changed again
    END IF;

    reason := pg_catalog.format('cancelled by %s', role_name);
    UPDATE jobledger.run AS r
       SET status = 'cancelled',
           finished_at = pg_catalog.clock_timestamp(),
           cancel_requested = (current.status = 'running'),
           error = reason,
           error_sqlstate = NULL,
           error_category = 'cancelled'
     WHERE r.id = cancel_run.run;
    IF current.status = 'running' THEN
        PERFORM jobledger_internal.close_attempt(cancel_run.run, current.attempt, 'cancelled',
                                                 pg_catalog.clock_timestamp(), reason);
        -- Stop its query on the server.  Only the recorded backend (pid and
        -- backend_start: a pid can be reused) and only while it is executing
        -- this very run: the runner names the run in application_name for
        -- the length of its transaction, so a connection that has moved on
        -- to another run is left alone.  Whatever the signal's timing, the
        -- runner's fenced complete_run now fails: nothing is written.
        PERFORM pg_catalog.pg_cancel_backend(a.pid)
           FROM pg_catalog.pg_stat_activity AS a
          WHERE a.pid = current.backend_pid
            AND a.backend_start = current.backend_start
            AND a.application_name = jobledger_internal.run_application_name(cancel_run.run);
    END IF;
    RETURN true;
END
$$;
COMMENT ON FUNCTION jobledger.cancel_run(uuid) IS
    'Cancels a run: pending -> cancelled at once; running -> cancelled, and its query is cancelled on the server so nothing is written; a finished run is left unchanged (returns false). Allowed to the run''s submitter, the job''s owner, their members and superusers.';
GRANT EXECUTE ON FUNCTION jobledger.cancel_run(uuid) TO PUBLIC;
