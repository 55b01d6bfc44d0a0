-- Who sees what in the ledger.  Everyone may read the ledger tables, and
-- row-level security shows each role the rows that concern it:
--
--   job, job_version  its owner's and its grantees' members
--   job_grant         the grantee's and the granting role's members
--   run, run_attempt  the submitter's members and the job owner's members
--
-- Members of pg_read_all_data see every row.  Superusers, roles with
-- BYPASSRLS and the extension's owner (with its members) are not subject to
-- row-level security at all, and neither are the extension's SECURITY
-- DEFINER functions, which run as that owner.  Nobody gets INSERT, UPDATE or
-- DELETE: writes go through the API functions.
--
-- Roles are compared by name (runs and jobs outlive roles); to_regrole()
-- makes a dropped role match no one instead of raising.

ALTER TABLE jobledger.job ENABLE ROW LEVEL SECURITY;
CREATE POLICY job_visible ON jobledger.job FOR SELECT USING (
    pg_catalog.pg_has_role('pg_read_all_data', 'MEMBER')
    OR pg_catalog.pg_has_role(pg_catalog.to_regrole(pg_catalog.quote_ident(job.owner)), 'MEMBER')
    OR EXISTS (SELECT 1
                 FROM jobledger.job_grant AS g
                WHERE g.job = job.name
                  AND pg_catalog.pg_has_role(pg_catalog.to_regrole(pg_catalog.quote_ident(g.grantee)), 'MEMBER'))
);

ALTER TABLE jobledger.job_version ENABLE ROW LEVEL SECURITY;
CREATE POLICY job_version_visible ON jobledger.job_version FOR SELECT USING (
    EXISTS (SELECT 1 FROM jobledger.job AS j WHERE j.name = job_version.job)
);

-- Not through jobledger.job: its policy reads job_grant.
ALTER TABLE jobledger.job_grant ENABLE ROW LEVEL SECURITY;
CREATE POLICY job_grant_visible ON jobledger.job_grant FOR SELECT USING (
    pg_catalog.pg_has_role('pg_read_all_data', 'MEMBER')
    OR pg_catalog.pg_has_role(pg_catalog.to_regrole(pg_catalog.quote_ident(job_grant.grantee)), 'MEMBER')
    OR pg_catalog.pg_has_role(pg_catalog.to_regrole(pg_catalog.quote_ident(job_grant.granted_by)), 'MEMBER')
);

ALTER TABLE jobledger.run ENABLE ROW LEVEL SECURITY;
CREATE POLICY run_visible ON jobledger.run FOR SELECT USING (
    pg_catalog.pg_has_role('pg_read_all_data', 'MEMBER')
    OR pg_catalog.pg_has_role(pg_catalog.to_regrole(pg_catalog.quote_ident(run.submitted_by)), 'MEMBER')
    OR EXISTS (SELECT 1
                 FROM jobledger.job AS j
                WHERE j.name = run.job
                  AND pg_catalog.pg_has_role(pg_catalog.to_regrole(pg_catalog.quote_ident(j.owner)), 'MEMBER'))
);

ALTER TABLE jobledger.run_attempt ENABLE ROW LEVEL SECURITY;
CREATE POLICY run_attempt_visible ON jobledger.run_attempt FOR SELECT USING (
    EXISTS (SELECT 1 FROM jobledger.run AS r WHERE r.id = run_attempt.run)
);

GRANT SELECT ON jobledger.job, jobledger.job_version, jobledger.job_grant,
                jobledger.run, jobledger.run_attempt TO PUBLIC;
