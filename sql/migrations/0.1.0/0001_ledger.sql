-- The run ledger: jobs, their immutable versions, runs and their attempts.

-- The control file's `schema` makes PostgreSQL create schema jobledger, or
-- use one that already exists.  An existing one must be safe to fill: owned
-- by the installing role (or a superuser) and empty, so that nobody else can
-- have pre-created objects that this script would then trust or replace.
DO $check$
BEGIN
    IF EXISTS (SELECT 1
                 FROM pg_catalog.pg_namespace AS n
                 JOIN pg_catalog.pg_roles AS o ON o.oid = n.nspowner
                WHERE n.nspname = 'jobledger'
                  AND o.rolname OPERATOR(pg_catalog.<>) CURRENT_USER
                  AND NOT o.rolsuper) THEN
        RAISE EXCEPTION 'schema jobledger exists and belongs to another role'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Drop the schema, or give it to the installing role, then create the extension again.';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE relnamespace OPERATOR(pg_catalog.=) 'jobledger'::pg_catalog.regnamespace)
       OR EXISTS (SELECT 1 FROM pg_catalog.pg_proc WHERE pronamespace OPERATOR(pg_catalog.=) 'jobledger'::pg_catalog.regnamespace)
       OR EXISTS (SELECT 1 FROM pg_catalog.pg_type WHERE typnamespace OPERATOR(pg_catalog.=) 'jobledger'::pg_catalog.regnamespace) THEN
        RAISE EXCEPTION 'schema jobledger is not empty'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'jobledger must be installed into a schema of its own.';
    END IF;
END
$check$;

CREATE TABLE jobledger.migration (
    name text PRIMARY KEY,
    sha256 text NOT NULL,
    version text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE jobledger.migration IS
    'jobledger schema migrations applied to this database, each exactly once; written by the extension''s install and upgrade scripts only.';

CREATE TYPE jobledger.run_status AS ENUM ('pending', 'running', 'succeeded', 'failed', 'cancelled');
COMMENT ON TYPE jobledger.run_status IS
    'State of a run: pending -> running -> succeeded | failed | cancelled; a failed attempt with attempts left goes back to pending. Terminal states never change again.';

CREATE TABLE jobledger.job (
    name text PRIMARY KEY
        CONSTRAINT job_name_check CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_.-]*$' AND pg_catalog.length(name) <= 128),
    owner name NOT NULL DEFAULT CURRENT_USER,
    description text,
    current_version integer,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE jobledger.job IS 'Jobs: a named SELECT template with a destination; its definitions live in job_version.';
COMMENT ON COLUMN jobledger.job.name IS 'Unique job name, used to submit runs.';
COMMENT ON COLUMN jobledger.job.owner IS 'Role whose privileges runs execute with.';
COMMENT ON COLUMN jobledger.job.current_version IS 'The job_version new runs use.';

CREATE TABLE jobledger.job_version (
    job text NOT NULL REFERENCES jobledger.job (name) ON DELETE CASCADE,
    version integer NOT NULL CHECK (version >= 1),
    query text NOT NULL,
    params jsonb CHECK (params IS NULL OR pg_catalog.jsonb_typeof(params) = 'object'),
    destination text NOT NULL,
    mode text NOT NULL DEFAULT 'append' CHECK (mode IN ('append', 'overwrite', 'merge')),
    timeout interval CHECK (timeout > interval '0'),
    max_attempts integer NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 100),
    created_by name NOT NULL DEFAULT CURRENT_USER,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (job, version)
);
COMMENT ON TABLE jobledger.job_version IS
    'One definition of a job. Never modified once written (a trigger refuses updates), so every run stays reproducible.';
COMMENT ON COLUMN jobledger.job_version.query IS 'The SELECT template, with {name} placeholders.';
COMMENT ON COLUMN jobledger.job_version.params IS 'Declared parameters: {"name": {"type": ..., "default": ..., "nullable": ...}}; NULL when undeclared.';
COMMENT ON COLUMN jobledger.job_version.destination IS 'Where the rows go: a table name.';
COMMENT ON COLUMN jobledger.job_version.mode IS 'append, overwrite (replace the contents atomically) or merge (upsert on the primary key).';
COMMENT ON COLUMN jobledger.job_version.timeout IS 'Statement timeout of one attempt; NULL for none.';
COMMENT ON COLUMN jobledger.job_version.max_attempts IS 'Attempts a run gets by default, retries included.';

ALTER TABLE jobledger.job
    ADD CONSTRAINT job_current_version_fkey FOREIGN KEY (name, current_version)
        REFERENCES jobledger.job_version (job, version) DEFERRABLE INITIALLY DEFERRED;

CREATE TABLE jobledger.run (
    id uuid PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
    job text NOT NULL,
    job_version integer NOT NULL,
    parameters jsonb NOT NULL DEFAULT '{}',
    rendered_sql text NOT NULL,
    status jobledger.run_status NOT NULL DEFAULT 'pending',
    priority integer NOT NULL DEFAULT 0,
    run_after timestamptz NOT NULL DEFAULT pg_catalog.now(),
    attempt integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts integer NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 100),
    idempotency_key text,
    submitted_by name NOT NULL DEFAULT CURRENT_USER,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    started_at timestamptz,
    finished_at timestamptz,
    heartbeat_at timestamptz,
    worker text,
    backend_pid integer,
    backend_start timestamptz,
    rows_written bigint CHECK (rows_written >= 0),
    snapshot_id text,
    progress smallint CHECK (progress BETWEEN 0 AND 100),
    metrics jsonb,
    error text,
    error_sqlstate text CHECK (error_sqlstate ~ '^[0-9A-Z]{5}$'),
    error_category text,
    cancel_requested boolean NOT NULL DEFAULT false,
    CONSTRAINT run_job_version_fkey FOREIGN KEY (job, job_version)
        REFERENCES jobledger.job_version (job, version),
    CONSTRAINT run_idempotency_key UNIQUE (job, idempotency_key),
    CONSTRAINT run_attempt_limit CHECK (attempt <= max_attempts),
    CONSTRAINT run_finished_iff_terminal
        CHECK ((status IN ('succeeded', 'failed', 'cancelled')) = (finished_at IS NOT NULL)),
    CONSTRAINT run_running_has_worker
        CHECK (status <> 'running' OR (started_at IS NOT NULL AND worker IS NOT NULL AND attempt >= 1))
);
COMMENT ON TABLE jobledger.run IS 'The ledger: one row per submitted run of a job version, with its state and outcome.';
COMMENT ON COLUMN jobledger.run.parameters IS 'Parameters as submitted (defaults applied).';
COMMENT ON COLUMN jobledger.run.rendered_sql IS 'The SELECT with every parameter substituted as a literal: what the runner executes.';
COMMENT ON COLUMN jobledger.run.run_after IS 'Not claimed before this time (delayed submission, retry backoff).';
COMMENT ON COLUMN jobledger.run.attempt IS 'Attempts started so far; the current one while running.';
COMMENT ON COLUMN jobledger.run.idempotency_key IS 'Optional; unique per job: submitting the same key again returns the existing run.';
COMMENT ON COLUMN jobledger.run.heartbeat_at IS 'Last sign of life of the executing runner; reconcile_orphaned recovers runs silent for longer than the lease.';
COMMENT ON COLUMN jobledger.run.worker IS 'Runner that claimed the current attempt.';
COMMENT ON COLUMN jobledger.run.backend_pid IS 'pg_backend_pid() of the connection executing the current attempt.';
COMMENT ON COLUMN jobledger.run.backend_start IS 'backend_start of that connection, so a reused pid is not mistaken for it.';
COMMENT ON COLUMN jobledger.run.snapshot_id IS 'Version of the destination the run published, for destinations that have versions.';
COMMENT ON COLUMN jobledger.run.progress IS 'Percent done, 0..100, as reported by the runner.';
COMMENT ON COLUMN jobledger.run.error_category IS 'Stable category of the error (e.g. schema_mismatch, timeout, runner_lost).';
COMMENT ON COLUMN jobledger.run.cancel_requested IS 'Set by cancel_run while the run executes.';

CREATE INDEX run_claim_idx ON jobledger.run (priority DESC, run_after, created_at) WHERE status = 'pending';
COMMENT ON INDEX jobledger.run_claim_idx IS 'Claiming: runnable pending runs by priority, then age.';
CREATE INDEX run_job_created_idx ON jobledger.run (job, created_at DESC);
COMMENT ON INDEX jobledger.run_job_created_idx IS 'Listing a job''s runs, newest first.';
CREATE INDEX run_status_idx ON jobledger.run (status, finished_at);
COMMENT ON INDEX jobledger.run_status_idx IS 'Runs by status: running runs for reconcile, old terminal runs for prune.';

CREATE TABLE jobledger.run_attempt (
    run uuid NOT NULL REFERENCES jobledger.run (id) ON DELETE CASCADE,
    attempt integer NOT NULL CHECK (attempt >= 1),
    worker text,
    backend_pid integer,
    started_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    finished_at timestamptz,
    status jobledger.run_status NOT NULL DEFAULT 'running' CHECK (status <> 'pending'),
    error text,
    error_sqlstate text CHECK (error_sqlstate ~ '^[0-9A-Z]{5}$'),
    PRIMARY KEY (run, attempt),
    CONSTRAINT run_attempt_finished_iff_closed CHECK ((status = 'running') = (finished_at IS NULL))
);
COMMENT ON TABLE jobledger.run_attempt IS 'One row per attempt of a run, so retries keep their history.';

-- pg_dump dumps the rows of these tables (the extension's own objects come
-- back with CREATE EXTENSION; the users' jobs and runs must too).
SELECT pg_catalog.pg_extension_config_dump('jobledger.job', '');
SELECT pg_catalog.pg_extension_config_dump('jobledger.job_version', '');
SELECT pg_catalog.pg_extension_config_dump('jobledger.run', '');
SELECT pg_catalog.pg_extension_config_dump('jobledger.run_attempt', '');
