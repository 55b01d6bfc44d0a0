-- Who may submit a job besides its owner (and the owner's members).
CREATE TABLE jobledger.job_grant (
    job text NOT NULL REFERENCES jobledger.job (name) ON DELETE CASCADE,
    grantee name NOT NULL,
    granted_by name NOT NULL DEFAULT CURRENT_USER,
    granted_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (job, grantee)
);
COMMENT ON TABLE jobledger.job_grant IS
    'Roles allowed to submit runs of a job (with their members), written by grant_job and revoke_job.';
SELECT pg_catalog.pg_extension_config_dump('jobledger.job_grant', '');

-- Everyone may call the public API (define_job, submit_job, grant_job, ...);
-- what each function lets a role do is checked inside it.
GRANT USAGE ON SCHEMA jobledger TO PUBLIC;
