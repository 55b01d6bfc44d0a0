-- Concurrency control and pause, per job (docs/runner.md, "Concurrency and
-- pause"): how many of a job's runs may be running at once, and whether its
-- pending runs are claimed at all.  claim_runs (60_runner.sql) enforces
-- both.  Like grant_job and drop_job, only the job's owner (or a member of
-- it, or a superuser) may change them (owned_job, 50_job_admin.sql).

CREATE OR REPLACE FUNCTION jobledger.set_max_running(job text, max_running integer)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
BEGIN
    IF set_max_running.max_running IS NOT NULL AND set_max_running.max_running < 1 THEN
        RAISE EXCEPTION 'max_running must be at least 1, not % (NULL: no limit; pause_job stops a job)',
                        set_max_running.max_running
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    PERFORM jobledger_internal.owned_job(set_max_running.job);
    -- Runs already running beyond a lowered limit finish; no new one starts
    -- until the job is under it.
    UPDATE jobledger.job AS j
       SET max_running = set_max_running.max_running, updated_at = pg_catalog.now()
     WHERE j.name = set_max_running.job AND j.max_running IS DISTINCT FROM set_max_running.max_running;
END
$$;
COMMENT ON FUNCTION jobledger.set_max_running(text, integer) IS
    'At most max_running runs of job are running at once, across every runner (NULL: no limit, the default). Runs running beyond a lowered limit finish. Only the job''s owner (or a member of it) may.';
GRANT EXECUTE ON FUNCTION jobledger.set_max_running(text, integer) TO PUBLIC;

-- pause_job and resume_job: one write, either way.
CREATE OR REPLACE FUNCTION jobledger_internal.set_paused(job text, pause boolean)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    changed integer;
BEGIN
    PERFORM jobledger_internal.owned_job(set_paused.job);
    UPDATE jobledger.job AS j
       SET paused_at = CASE WHEN set_paused.pause THEN pg_catalog.now() END,
           paused_by = CASE WHEN set_paused.pause THEN jobledger_internal.calling_role() END,
           updated_at = pg_catalog.now()
     WHERE j.name = set_paused.job AND (j.paused_at IS NULL) = set_paused.pause;
    GET DIAGNOSTICS changed = ROW_COUNT;
    IF changed > 0 AND NOT set_paused.pause THEN
        -- Wake the runners, as submit_job does: the job's runs are claimable again.
        PERFORM pg_catalog.pg_notify('jobledger_runs', '');  -- no job name: any role may LISTEN
    END IF;
    RETURN changed > 0;
END
$$;
COMMENT ON FUNCTION jobledger_internal.set_paused(text, boolean) IS
    'Internal to pause_job and resume_job: pauses or resumes a job the calling role owns (owned_job); returns whether that changed anything.';
REVOKE ALL ON FUNCTION jobledger_internal.set_paused(text, boolean) FROM PUBLIC;

CREATE OR REPLACE FUNCTION jobledger.pause_job(job text)
RETURNS boolean
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
    SELECT jobledger_internal.set_paused(pause_job.job, true)
$$;
COMMENT ON FUNCTION jobledger.pause_job(text) IS
    'Pauses job: its pending runs are not claimed (runs already running finish) and submit_job still queues new ones, until resume_job. Returns false if it was paused already. Only the job''s owner (or a member of it) may.';
GRANT EXECUTE ON FUNCTION jobledger.pause_job(text) TO PUBLIC;

CREATE OR REPLACE FUNCTION jobledger.resume_job(job text)
RETURNS boolean
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
    SELECT jobledger_internal.set_paused(resume_job.job, false)
$$;
COMMENT ON FUNCTION jobledger.resume_job(text) IS
    'Ends pause_job: the job''s pending runs are claimed again (and runners are notified). Returns false if it was not paused. Only the job''s owner (or a member of it) may.';
GRANT EXECUTE ON FUNCTION jobledger.resume_job(text) TO PUBLIC;
