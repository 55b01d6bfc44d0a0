CREATE OR REPLACE FUNCTION jobledger_internal.job_version_immutable()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'job versions are immutable: job % version % cannot be changed', OLD.job, OLD.version
        USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = 'Define the job again to create a new version.';
END
$$;
COMMENT ON FUNCTION jobledger_internal.job_version_immutable() IS
    'Trigger: refuses any UPDATE of jobledger.job_version, so every run stays reproducible.';
REVOKE ALL ON FUNCTION jobledger_internal.job_version_immutable() FROM PUBLIC;

CREATE OR REPLACE TRIGGER job_version_immutable
    BEFORE UPDATE ON jobledger.job_version
    FOR EACH ROW EXECUTE FUNCTION jobledger_internal.job_version_immutable();
COMMENT ON TRIGGER job_version_immutable ON jobledger.job_version IS
    'A job version is never modified once written.';
