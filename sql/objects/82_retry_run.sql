-- Retrying a failed or cancelled run: a new run of the job with the same
-- parameters and priority, submitted by the caller through submit_job (so
-- every rule of a submission applies: the caller's right to submit, the
-- parameters against the job's current version, the preflight).
-- SECURITY INVOKER on purpose: the caller must be able to see the run
-- (row-level security) and submits as itself.
CREATE OR REPLACE FUNCTION jobledger.retry_run(run uuid)
RETURNS uuid
LANGUAGE plpgsql
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    current jobledger.run;
BEGIN
    SELECT r.* INTO current FROM jobledger.run AS r WHERE r.id = retry_run.run;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'there is no run %', retry_run.run
            USING ERRCODE = 'undefined_object', DETAIL = 'category: unknown_run';
    END IF;
    IF current.status NOT IN ('failed', 'cancelled') THEN
        RAISE EXCEPTION 'run % is %: only a failed or cancelled run can be retried', retry_run.run, current.status
            USING ERRCODE = 'object_not_in_prerequisite_state', DETAIL = 'category: invalid_run_state';
    END IF;
    -- The idempotency key makes a retry of the same run return the same new
    -- run: retrying twice (a double click, a script run again) runs once.
    RETURN jobledger.submit_job(current.job, current.parameters,
                                idempotency_key => 'retry of ' || current.id::pg_catalog.text,
                                priority => current.priority);
END
$$;
COMMENT ON FUNCTION jobledger.retry_run(uuid) IS
    'Submits a failed or cancelled run again as a new run of the job''s current version, with the same parameters and priority; returns the new run''s id (the same one when the run was already retried). Checked like submit_job, as the caller.';
GRANT EXECUTE ON FUNCTION jobledger.retry_run(uuid) TO PUBLIC;
