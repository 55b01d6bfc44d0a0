-- What users call and read stays in schema jobledger; what only jobledger
-- itself (its PL/Python halves, triggers, the views) and its runners call
-- moves to jobledger_internal, so that \df jobledger.* is the API.
-- CREATE SCHEMA fails if the name is taken: nobody else's schema (or its
-- objects) is ever adopted.
CREATE SCHEMA jobledger_internal;
COMMENT ON SCHEMA jobledger_internal IS
    'jobledger''s internals: PL/Python halves of the API, trigger functions, helpers of the views and policies, and the transitions only runners call (EXECUTE is granted function by function).';
-- Usage alone grants nothing: each function has its own EXECUTE privilege.
GRANT USAGE ON SCHEMA jobledger_internal TO PUBLIC;

-- An upgrade moves the internals an earlier release created in jobledger;
-- ALTER ... SET SCHEMA keeps each one's privileges (a DBA's GRANT EXECUTE
-- to the runner's role), the triggers using it and its extension membership.
-- A fresh install has none here yet: its functions are defined after the
-- migrations, directly in jobledger_internal.
DO $move$
DECLARE
    fn regprocedure;
BEGIN
    FOR fn IN
        SELECT p.oid::regprocedure FROM pg_catalog.pg_proc AS p
         WHERE p.pronamespace = 'jobledger'::regnamespace
           AND p.proname IN (
               'analyse_version_py', 'check_template_py', 'define_job_py', 'submit_job_py', 'version_py',
               'outcome_value', 'calling_role', 'denied_dependencies', 'run_application_name',
               'job_current_version_exists', 'job_deleted', 'job_version_deleted', 'job_version_immutable',
               'run_deleted', 'run_needs_job_version', 'owned_job', 'check_attached', 'record_job_version',
               'claim_runs', 'complete_run', 'fail_run', 'heartbeat', 'release_run', 'lock_run',
               'emit_output', 'report_progress', 'worker_start', 'worker_beat',
               'attach_run', 'complete_attached_run', 'emit_attached_output', 'lock_attached_run')
         ORDER BY 1
    LOOP
        EXECUTE pg_catalog.format('ALTER ROUTINE %s SET SCHEMA jobledger_internal', fn);
    END LOOP;
END
$move$;
