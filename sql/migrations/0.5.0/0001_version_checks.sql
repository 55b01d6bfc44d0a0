-- 0.5.0: templates are checked by PostgreSQL's own grammar and stored as
-- written; what submit_job needs from that check is kept per version.

CREATE TABLE jobledger.job_version_check (
    job text NOT NULL,
    version integer NOT NULL,
    placeholders jsonb,
    query_end integer CHECK (query_end >= 0),
    shapes jsonb,
    dependencies jsonb,
    problem text,
    checked_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (job, version),
    FOREIGN KEY (job, version) REFERENCES jobledger.job_version (job, version) ON DELETE CASCADE,
    CONSTRAINT job_version_check_outcome CHECK ((problem IS NULL) = (placeholders IS NOT NULL AND shapes IS NOT NULL))
);
COMMENT ON TABLE jobledger.job_version_check IS
    'What define_job worked out about a job version under the current rules: where its placeholders are, the output columns for each kind of value, or why the version is refused (versions recorded by jobledger before 0.5.0 are checked again by the upgrade).';
COMMENT ON COLUMN jobledger.job_version_check.placeholders IS
    'Each {name} occurrence in the query as [start, end, name], character offsets: where submit_job splices the literals.';
COMMENT ON COLUMN jobledger.job_version_check.query_end IS
    'Where the statement ends in the query text (before a terminating semicolon): what the runner runs.';
COMMENT ON COLUMN jobledger.job_version_check.shapes IS
    'Output columns [[name, type], ...] by the kinds of the untyped values (see the README): what submit_job compares with the destination.';
COMMENT ON COLUMN jobledger.job_version_check.dependencies IS
    'What the query uses, by name: [{"schema", "relation", "column"} | {"function"}]; every submit checks the owner may still use it (jobledger_internal.denied_dependencies).';
COMMENT ON COLUMN jobledger.job_version_check.problem IS
    'Why this version can no longer be submitted (NULL when it can); its owner defines the job again.';
SELECT pg_catalog.pg_extension_config_dump('jobledger.job_version_check', '');

ALTER TABLE jobledger.job_version_check ENABLE ROW LEVEL SECURITY;
CREATE POLICY job_version_check_visible ON jobledger.job_version_check FOR SELECT USING (
    EXISTS (SELECT 1 FROM jobledger.job_version AS v
             WHERE v.job = job_version_check.job AND v.version = job_version_check.version)
);
GRANT SELECT ON jobledger.job_version_check TO PUBLIC;

-- record_job_version takes the analysis now and decides the owner itself.
DROP FUNCTION IF EXISTS jobledger.record_job_version(text, name, text, text, text, jsonb, interval, integer, text);
