-- References between the ledger tables, kept by triggers rather than
-- foreign keys (see sql/migrations/0.5.0/0003_restorable_keys.sql: with
-- keys, pg_restore could not load the tables).
--
-- jobledger's own functions are the only writers of these tables, and each
-- writes a row only under a lock on the row it hangs off: record_job_version
-- and grant_job lock the job, the runner's functions the run.  submit_job
-- reads the job without a lock, so a new run locks its job version here.
-- Deletes cascade as the keys did.  Rows a restore loads (COPY, which only
-- the extension's owner or a superuser may run on these tables) are not
-- checked: pg_dump read them consistent, and their parents may come later.

CREATE OR REPLACE FUNCTION jobledger_internal.run_needs_job_version()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
BEGIN
    -- FOR KEY SHARE: a drop_job in progress waits for this run, then sees it.
    PERFORM FROM jobledger.job_version AS v WHERE v.job = NEW.job AND v.version = NEW.job_version FOR KEY SHARE;
    IF NOT FOUND AND pg_catalog.current_query() !~* '^[[:space:]]*copy[[:space:]]' THEN
        RAISE EXCEPTION 'job % has no version %', NEW.job, NEW.job_version
            USING ERRCODE = 'foreign_key_violation',
                  HINT = 'The job was dropped meanwhile.';
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION jobledger_internal.run_needs_job_version() IS
    'Trigger: a new run names an existing job version, locked until the run commits (in place of a foreign key).';
REVOKE ALL ON FUNCTION jobledger_internal.run_needs_job_version() FROM PUBLIC;

CREATE OR REPLACE TRIGGER run_needs_job_version
    BEFORE INSERT OR UPDATE OF job, job_version ON jobledger.run
    FOR EACH ROW EXECUTE FUNCTION jobledger_internal.run_needs_job_version();
COMMENT ON TRIGGER run_needs_job_version ON jobledger.run IS
    'A run names an existing job version (restores excepted).';

CREATE OR REPLACE FUNCTION jobledger_internal.job_current_version_exists()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
BEGIN
    IF NEW.current_version IS NOT NULL AND NOT EXISTS (
           SELECT FROM jobledger.job_version AS v WHERE v.job = NEW.name AND v.version = NEW.current_version) THEN
        RAISE EXCEPTION 'job % has no version %', NEW.name, NEW.current_version
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION jobledger_internal.job_current_version_exists() IS
    'Trigger: a job''s current_version names one of its versions.';
REVOKE ALL ON FUNCTION jobledger_internal.job_current_version_exists() FROM PUBLIC;

CREATE OR REPLACE TRIGGER job_current_version_exists
    AFTER UPDATE OF current_version ON jobledger.job
    FOR EACH ROW EXECUTE FUNCTION jobledger_internal.job_current_version_exists();
COMMENT ON TRIGGER job_current_version_exists ON jobledger.job IS
    'current_version names an existing version of the job.';

-- Deletes: statement triggers with transition tables, so that pruning many
-- runs costs one delete per dependent table.  SECURITY DEFINER: they delete
-- what the keys' cascades deleted, whoever deleted the parent (only
-- jobledger's functions do).
CREATE OR REPLACE FUNCTION jobledger_internal.job_deleted()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
BEGIN
    DELETE FROM jobledger.job_grant AS g USING gone WHERE g.job = gone.name;
    DELETE FROM jobledger.job_version AS v USING gone WHERE v.job = gone.name;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION jobledger_internal.job_deleted() IS
    'Trigger: a deleted job takes its grants and versions along.';
REVOKE ALL ON FUNCTION jobledger_internal.job_deleted() FROM PUBLIC;

CREATE OR REPLACE TRIGGER job_deleted
    AFTER DELETE ON jobledger.job
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION jobledger_internal.job_deleted();
COMMENT ON TRIGGER job_deleted ON jobledger.job IS
    'Deleting a job deletes its grants and versions.';

CREATE OR REPLACE FUNCTION jobledger_internal.job_version_deleted()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    used record;
BEGIN
    SELECT r.job, r.job_version INTO used
      FROM gone JOIN jobledger.run AS r ON r.job = gone.job AND r.job_version = gone.version LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'job % version % still has runs', used.job, used.job_version
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    SELECT j.name AS job, j.current_version AS job_version INTO used
      FROM gone JOIN jobledger.job AS j ON j.name = gone.job AND j.current_version = gone.version LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'job % version % is the job''s current version', used.job, used.job_version
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    DELETE FROM jobledger.job_version_check AS c USING gone WHERE c.job = gone.job AND c.version = gone.version;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION jobledger_internal.job_version_deleted() IS
    'Trigger: a job version is deleted only when no run and no job uses it, and takes its check along.';
REVOKE ALL ON FUNCTION jobledger_internal.job_version_deleted() FROM PUBLIC;

CREATE OR REPLACE TRIGGER job_version_deleted
    AFTER DELETE ON jobledger.job_version
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION jobledger_internal.job_version_deleted();
COMMENT ON TRIGGER job_version_deleted ON jobledger.job_version IS
    'A version goes only when unused, with its check.';

CREATE OR REPLACE FUNCTION jobledger_internal.run_deleted()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
BEGIN
    DELETE FROM jobledger.run_attempt AS a USING gone WHERE a.run = gone.id;
    DELETE FROM jobledger.output AS o USING gone WHERE o.run = gone.id;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION jobledger_internal.run_deleted() IS
    'Trigger: a deleted run takes its attempts and outputs along.';
REVOKE ALL ON FUNCTION jobledger_internal.run_deleted() FROM PUBLIC;

CREATE OR REPLACE TRIGGER run_deleted
    AFTER DELETE ON jobledger.run
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION jobledger_internal.run_deleted();
COMMENT ON TRIGGER run_deleted ON jobledger.run IS
    'Deleting runs deletes their attempts and outputs.';
