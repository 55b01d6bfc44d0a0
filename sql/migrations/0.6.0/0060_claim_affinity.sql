-- 0.6.0: claim affinity (docs/runner.md, "Affinity").  claim_runs may be told
-- the job its executor just ran and then takes that job's next run first at
-- equal priority; finding that run must not walk the queue past other jobs'
-- runs, hence an index of the pending runs by priority, then job, then claim
-- order.  (Priority first, like run_claim_idx: with the job first, the
-- planner, costing the job column's poor physical order, preferred
-- run_claim_idx with a filter on the job, which walks past every run of the
-- other jobs ahead.)

CREATE INDEX run_job_claim_idx ON jobledger.run (priority DESC, job, run_after, created_at) WHERE status = 'pending';
COMMENT ON INDEX jobledger.run_job_claim_idx IS
    'Claiming with affinity: the runnable pending runs of one job at one priority, oldest first (claim_runs'' prefer_job).';

-- claim_runs(worker, max_runs, prefer_job) is new; the runner of 0.6.0
-- claims through it.  Whoever a DBA let execute claim_runs(text, integer)
-- (the runner's role) may execute it too after the update, so upgraded
-- runners keep their affinity without a new GRANT.  The body here is a
-- placeholder: 60_runner.sql (CREATE OR REPLACE) defines it right after,
-- which keeps the privileges.  A fresh install defines it after the
-- migrations, with no grants, as every runner function.
DO $affinity_grants$
DECLARE
    old_claim regprocedure := pg_catalog.to_regprocedure('jobledger_internal.claim_runs(text, integer)');
    g record;
BEGIN
    IF old_claim IS NULL THEN
        RETURN;  -- a fresh install
    END IF;
    CREATE FUNCTION jobledger_internal.claim_runs(worker text, max_runs integer, prefer_job text)
    RETURNS TABLE (id uuid, job text, job_version integer, attempt integer, max_attempts integer,
                   rendered_sql text, parameters jsonb, mode text, owner name, timeout_ms bigint,
                   destination text, destination_schema name, destination_table name, primary_key name[],
                   created_at timestamptz, started_at timestamptz)
    LANGUAGE plpgsql SET search_path = pg_catalog, jobledger, pg_temp
    AS 'BEGIN RAISE EXCEPTION ''not yet defined''; END';
    REVOKE ALL ON FUNCTION jobledger_internal.claim_runs(text, integer, text) FROM PUBLIC;
    FOR g IN SELECT a.grantee, pg_catalog.bool_or(a.is_grantable) AS grantable
               FROM pg_catalog.pg_proc AS p
              CROSS JOIN LATERAL pg_catalog.aclexplode(p.proacl) AS a
              WHERE p.oid = old_claim AND a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner
              GROUP BY a.grantee ORDER BY a.grantee LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION jobledger_internal.claim_runs(text, integer, text) TO %s%s',
            CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE g.grantee::regrole::text END,
            CASE WHEN g.grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;
END
$affinity_grants$;
