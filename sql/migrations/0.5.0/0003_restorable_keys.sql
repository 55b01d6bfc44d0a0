-- 0.5.0: no foreign keys between the ledger tables, so that a plain
-- pg_restore (each table's data in its own transaction, in parallel with -j)
-- and psql -f of a plain dump bring every row back.
--
-- The ledger tables are extension configuration tables: the restore's
-- CREATE EXTENSION creates them with their constraints, and only then is
-- their data loaded.  job.current_version named a job_version while
-- job_version named its job, a cycle pg_dump cannot order: a restore lost
-- every job.  And pg_restore -j loads the tables' data in parallel, in no
-- order at all, so any key between them fails some COPY.  What the keys
-- kept is kept by triggers instead (sql/objects/11_ledger_references.sql):
-- deleting a job, version or run takes what hangs off it along, as
-- ON DELETE CASCADE did; a version still used by runs or as a job's current
-- version is not deleted; a new run locks and needs its job version.
-- The one deferrable key is checked now: in a transaction that loaded
-- ledger rows first (restoring a dump of an older release and updating in
-- one transaction, README "Restoring a dump of an older version"), its
-- pending checks would otherwise forbid dropping it.
SET CONSTRAINTS jobledger.job_current_version_fkey IMMEDIATE;
ALTER TABLE jobledger.job DROP CONSTRAINT job_current_version_fkey;
ALTER TABLE jobledger.job_version DROP CONSTRAINT job_version_job_fkey;
ALTER TABLE jobledger.job_grant DROP CONSTRAINT job_grant_job_fkey;
ALTER TABLE jobledger.job_version_check DROP CONSTRAINT job_version_check_job_version_fkey;
ALTER TABLE jobledger.run DROP CONSTRAINT run_job_version_fkey;
ALTER TABLE jobledger.run_attempt DROP CONSTRAINT run_attempt_run_fkey;
ALTER TABLE jobledger.output DROP CONSTRAINT output_run_fkey;
-- The keys' indexes on the referencing side that lookups by parent need
-- (job_version's, job_grant's, run_attempt's and job_version_check's
-- primary keys start with the parent's key already).
CREATE INDEX run_job_version_idx ON jobledger.run (job, job_version);
COMMENT ON INDEX jobledger.run_job_version_idx IS 'Runs of a job version: whether a version may be deleted.';
