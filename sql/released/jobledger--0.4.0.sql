-- jobledger 0.4.0: install script, assembled by sql/assemble.py; do not edit.
\echo Use "CREATE EXTENSION jobledger" or "ALTER EXTENSION jobledger UPDATE". \quit

-- Every name below is schema-qualified; pin the path all the same.
SET LOCAL search_path = pg_catalog, pg_temp;

-- migration 0.1.0/0001_ledger sha256 ee8cc24f5cbda5e366947de81db88d5ee99ca95c53262039b5f6f872b5ae9b28
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
INSERT INTO jobledger.migration (name, sha256, version)
    VALUES ('0.1.0/0001_ledger', 'ee8cc24f5cbda5e366947de81db88d5ee99ca95c53262039b5f6f872b5ae9b28', '0.1.0');

-- migration 0.2.0/0001_job_grants sha256 6297b1f6c4129386a83520478cfbb71addfc01c23ab06d4f247549bcbd510be0
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
INSERT INTO jobledger.migration (name, sha256, version)
    VALUES ('0.2.0/0001_job_grants', '6297b1f6c4129386a83520478cfbb71addfc01c23ab06d4f247549bcbd510be0', '0.2.0');

-- migration 0.2.0/0002_row_security sha256 bf4d06a29b05abbc8becb31888230a8a27aa0acdb97931dc842ad74ddc8b1bc6
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
INSERT INTO jobledger.migration (name, sha256, version)
    VALUES ('0.2.0/0002_row_security', 'bf4d06a29b05abbc8becb31888230a8a27aa0acdb97931dc842ad74ddc8b1bc6', '0.2.0');

-- migration 0.3.0/0001_runner_comments sha256 71ecdfce148ed2aa2da649ba9243776de3a0c812fe35dfae4ba78a2871c314af
-- 0.3.0, the runner: what the runner now records in columns 0.1.0 reserved.
-- Comments only; the runner's functions live in sql/objects/60_*.sql.
COMMENT ON COLUMN jobledger.run.error IS
    'Error of the last failed attempt (kept while a retry is pending, cleared on success), or why the run was cancelled.';
COMMENT ON COLUMN jobledger.run.error_category IS
    'Stable category of the error: timeout, cancelled, transient_error, execution_error, destination_missing, runner_lost, or a jobledger error category.';
COMMENT ON COLUMN jobledger.run.cancel_requested IS
    'Set by cancel_run when it cancelled the run while it was running (its query was then cancelled on the server).';
COMMENT ON COLUMN jobledger.run.rows_written IS
    'Rows the successful attempt inserted into the destination (for merge: inserted or updated).';
COMMENT ON COLUMN jobledger.run_attempt.status IS
    'running, then succeeded, failed or cancelled. An attempt released by a runner shutting down is removed: it did not count.';
INSERT INTO jobledger.migration (name, sha256, version)
    VALUES ('0.3.0/0001_runner_comments', '71ecdfce148ed2aa2da649ba9243776de3a0c812fe35dfae4ba78a2871c314af', '0.3.0');

-- migration 0.4.0/0001_outputs sha256 ec5dca505d7b4c4049305f93e83b28e4e381ef3da8321fb6c2fb00766df48c39
-- 0.4.0: outputs, an append-only log of what each run produced (its stored
-- result, the manifest of the dataset version it published, ...).
--
-- Written only by jobledger.emit_output (the runner, from the connection
-- executing the run); read by everyone who may see the run (row-level
-- security reuses the run's visibility, like run_attempt); deleted only with
-- the run (ON DELETE CASCADE: prune and drop_job take the outputs along).

-- seq orders outputs across the whole table: taken from one sequence, so it
-- strictly increases in the order outputs are inserted (a sequence is not
-- rolled back, so there may be gaps).  An explicit sequence rather than an
-- identity column so that pg_dump can be told to dump its position
-- (pg_extension_config_dump below), or restored outputs would collide.
CREATE SEQUENCE jobledger.output_seq AS bigint;
COMMENT ON SEQUENCE jobledger.output_seq IS 'Numbers jobledger.output.seq: insertion order across all outputs.';

CREATE TABLE jobledger.output (
    id uuid PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
    run uuid NOT NULL REFERENCES jobledger.run (id) ON DELETE CASCADE,
    attempt integer NOT NULL CHECK (attempt >= 1),
    seq bigint NOT NULL DEFAULT pg_catalog.nextval('jobledger.output_seq') UNIQUE,
    name text NOT NULL CHECK (name ~ '^[A-Za-z0-9_][A-Za-z0-9_.:/-]*$' AND pg_catalog.length(name) <= 200),
    content_type text NOT NULL CHECK (content_type ~ '^[a-z]+/[A-Za-z0-9.+_-]+$'),
    data bytea NOT NULL,
    size bigint GENERATED ALWAYS AS (pg_catalog.octet_length(data)) STORED,
    parent_outputs uuid[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp()
);
ALTER SEQUENCE jobledger.output_seq OWNED BY jobledger.output.seq;
COMMENT ON TABLE jobledger.output IS
    'Outputs of runs, append-only: stored results, dataset manifests. Visible like their run; deleted with it.';
COMMENT ON COLUMN jobledger.output.run IS 'The run that produced it.';
COMMENT ON COLUMN jobledger.output.attempt IS 'The attempt of the run that produced it.';
COMMENT ON COLUMN jobledger.output.seq IS 'Strictly increasing across the table: the order outputs were inserted in.';
COMMENT ON COLUMN jobledger.output.name IS 'What it is, e.g. result (Arrow IPC stream), result.json, manifest.';
COMMENT ON COLUMN jobledger.output.content_type IS 'Media type of data, e.g. application/vnd.apache.arrow.stream.';
COMMENT ON COLUMN jobledger.output.data IS 'The content.';
COMMENT ON COLUMN jobledger.output.size IS 'octet_length(data).';
COMMENT ON COLUMN jobledger.output.parent_outputs IS 'Outputs this one was derived from (lineage), oldest first.';

CREATE INDEX output_run_seq_idx ON jobledger.output (run, seq);
COMMENT ON INDEX jobledger.output_run_seq_idx IS 'A run''s outputs in insertion order.';
CREATE INDEX output_name_seq_idx ON jobledger.output (name, seq DESC);
COMMENT ON INDEX jobledger.output_name_seq_idx IS 'The newest output of a name (latest_output).';

ALTER TABLE jobledger.output ENABLE ROW LEVEL SECURITY;
CREATE POLICY output_visible ON jobledger.output FOR SELECT USING (
    EXISTS (SELECT 1 FROM jobledger.run AS r WHERE r.id = output.run)
);
GRANT SELECT ON jobledger.output TO PUBLIC;

SELECT pg_catalog.pg_extension_config_dump('jobledger.output', '');
SELECT pg_catalog.pg_extension_config_dump('jobledger.output_seq', '');

COMMENT ON COLUMN jobledger.job_version.destination IS
    'Where the rows go: a table (schema-qualified), result (kept with the run as an output), or parquet:<absolute directory>[?create_if_missing=true] (a Parquet dataset).';
COMMENT ON COLUMN jobledger.run.snapshot_id IS
    'For parquet: destinations, the dataset version the run published (its manifest number).';
COMMENT ON COLUMN jobledger.run.progress IS
    'Percent done, 0..100, as reported by the runner during long writes (an estimate from the query plan until the end); 100 once succeeded.';
INSERT INTO jobledger.migration (name, sha256, version)
    VALUES ('0.4.0/0001_outputs', 'ec5dca505d7b4c4049305f93e83b28e4e381ef3da8321fb6c2fb00766df48c39', '0.4.0');

-- migration 0.4.0/0010_workers sha256 ec68dbca28e674a0f7f9594416a483e219b6497f34e55e0339c45416eb75d6ff
-- 0.4.0, operations: the runner processes a database has seen, for the
-- jobledger.workers view.  One row per runner process (its --worker-id),
-- written only by the runner's SECURITY DEFINER functions worker_start and
-- worker_beat (sql/objects/80_workers.sql).
--
-- A logged table, not UNLOGGED: a runner writes its row every few seconds
-- at most, so the WAL it costs is nothing, while an unlogged table would be
-- emptied by a crash and could not be read on a hot standby at all.  Not
-- dumped by pg_dump: the rows describe processes, not data.
CREATE TABLE jobledger.worker (
    worker text PRIMARY KEY,
    hostname text,
    pid integer,
    version text,
    role name NOT NULL DEFAULT SESSION_USER,
    concurrency integer CHECK (concurrency >= 1),
    lease interval CHECK (lease > interval '0'),
    runs_in_flight integer NOT NULL DEFAULT 0 CHECK (runs_in_flight >= 0),
    started_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    heartbeat_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    stopped_at timestamptz
);
COMMENT ON TABLE jobledger.worker IS
    'Runner processes seen by this database, one row per worker id: registered at start, heartbeat every few seconds, stopped_at set on a clean exit. Written by worker_start and worker_beat only; readable by everyone (names, hosts and pids are not secret). Rows not seen for 7 days are forgotten.';
COMMENT ON COLUMN jobledger.worker.worker IS 'The name the runner records on the runs it claims (--worker-id, default host:pid).';
COMMENT ON COLUMN jobledger.worker.role IS 'The role the runner connects as.';
COMMENT ON COLUMN jobledger.worker.lease IS 'The runner''s lease: without a heartbeat for this long it counts as lost.';
COMMENT ON COLUMN jobledger.worker.runs_in_flight IS 'Runs the runner was executing at its last heartbeat.';
COMMENT ON COLUMN jobledger.worker.stopped_at IS 'When the runner exited cleanly; NULL while it runs (or if it died).';

GRANT SELECT ON jobledger.worker TO PUBLIC;
INSERT INTO jobledger.migration (name, sha256, version)
    VALUES ('0.4.0/0010_workers', 'ec68dbca28e674a0f7f9594416a483e219b6497f34e55e0339c45416eb75d6ff', '0.4.0');

-- from sql/objects/05_calling_role.sql
-- No SET search_path, unlike every other function: a SQL function with a
-- SET clause is never inlined, and this one is asked on every submit_job,
-- where running it as a function call cost more than the rest of its query.
-- Inlined, its body is planned within its caller, which always pins
-- search_path; every name in it is qualified, the operator too, so it means
-- the same wherever it is planned.  Not executable by PUBLIC.
CREATE OR REPLACE FUNCTION jobledger.calling_role()
RETURNS name
LANGUAGE sql
STABLE
AS $$
    -- SECURITY DEFINER changes current_user but not the session's role
    -- setting, so this is the role that called the API even from inside it.
    SELECT CASE WHEN pg_catalog.current_setting('role') OPERATOR(pg_catalog.=) 'none'
                THEN SESSION_USER
                ELSE pg_catalog.current_setting('role')::pg_catalog.name
           END
$$;
COMMENT ON FUNCTION jobledger.calling_role() IS
    'The role calling the jobledger API: the session''s SET ROLE role, else the session user (unchanged inside SECURITY DEFINER functions).';
REVOKE ALL ON FUNCTION jobledger.calling_role() FROM PUBLIC;

-- from sql/objects/07_outcome.sql
-- PL/Python cannot raise a clean PostgreSQL error: an exception leaving a
-- PL/Python function is reported as "plpy.Error: <message>" with a Python
-- traceback as its CONTEXT.  So each PL/Python entry point (the *_py
-- functions in plpython/) returns an outcome instead, {"value": v} or
-- {"error": {"message", "sqlstate", "detail", "hint"}}, and the public SQL
-- function passes it through this, which raises the error as PostgreSQL's
-- own: the message as written, the SQLSTATE, DETAIL with the category line.
CREATE OR REPLACE FUNCTION jobledger.outcome_value(outcome jsonb)
RETURNS jsonb
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    error jsonb := outcome -> 'error';
BEGIN
    IF error IS NULL THEN
        RETURN outcome -> 'value';
    END IF;
    IF error ->> 'hint' IS NULL THEN
        RAISE EXCEPTION USING MESSAGE = error ->> 'message', ERRCODE = error ->> 'sqlstate',
                              DETAIL = coalesce(error ->> 'detail', '');
    END IF;
    RAISE EXCEPTION USING MESSAGE = error ->> 'message', ERRCODE = error ->> 'sqlstate',
                          DETAIL = coalesce(error ->> 'detail', ''), HINT = error ->> 'hint';
END
$$;
COMMENT ON FUNCTION jobledger.outcome_value(jsonb) IS
    'Internal: the value of a PL/Python entry point''s outcome, or its error raised as a PostgreSQL error (message, SQLSTATE, DETAIL, HINT).';
REVOKE ALL ON FUNCTION jobledger.outcome_value(jsonb) FROM PUBLIC;

-- from sql/objects/10_job_version_immutable.sql
CREATE OR REPLACE FUNCTION jobledger.job_version_immutable()
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
COMMENT ON FUNCTION jobledger.job_version_immutable() IS
    'Trigger: refuses any UPDATE of jobledger.job_version, so every run stays reproducible.';
REVOKE ALL ON FUNCTION jobledger.job_version_immutable() FROM PUBLIC;

CREATE OR REPLACE TRIGGER job_version_immutable
    BEFORE UPDATE ON jobledger.job_version
    FOR EACH ROW EXECUTE FUNCTION jobledger.job_version_immutable();
COMMENT ON TRIGGER job_version_immutable ON jobledger.job_version IS
    'A job version is never modified once written.';

-- from sql/objects/20_reconcile_orphaned.sql
CREATE OR REPLACE FUNCTION jobledger.reconcile_orphaned(
    reason text DEFAULT 'runner lost',
    lease interval DEFAULT NULL
)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    -- The lease: how long a running run may go without a heartbeat.  The
    -- argument wins, then the jobledger.lease setting (ALTER DATABASE/ROLE
    -- ... SET jobledger.lease = '2 min'), then one minute.
    effective_lease interval := coalesce(
        lease, nullif(current_setting('jobledger.lease', true), '')::interval, interval '1 minute');
    changed integer;
    -- (run, pid, backend_start) of the runs taken over from a live backend.
    stale jsonb;
BEGIN
    IF effective_lease <= interval '0' THEN
        RAISE EXCEPTION 'the lease must be positive, not %', effective_lease
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    IF reason IS NULL OR reason = '' THEN
        RAISE EXCEPTION 'reconcile_orphaned needs a reason'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;

    WITH orphaned AS (
        -- Running runs whose executing backend is gone: its transaction has
        -- rolled back, so nothing was written and the run can go again.  The
        -- pid alone could have been reused; backend_start tells them apart.
        -- SECURITY DEFINER lets this see every backend in pg_stat_activity.
        -- Runs silent for a whole lease (a partitioned or stopped runner)
        -- count too: their late commit is refused by the fenced flip.
        -- SKIP LOCKED: a row someone holds is being acted on already, and
        -- concurrent reconcilers split the work instead of waiting.
        SELECT r.id, r.attempt, r.backend_pid, r.backend_start
          FROM jobledger.run AS r
         WHERE r.status = 'running'
           AND ((r.backend_pid IS NOT NULL
                 AND NOT EXISTS (SELECT 1
                                   FROM pg_catalog.pg_stat_activity AS a
                                  WHERE a.pid = r.backend_pid
                                    AND a.backend_start IS NOT DISTINCT FROM r.backend_start))
                OR coalesce(r.heartbeat_at, r.started_at) < now() - effective_lease)
           FOR UPDATE OF r SKIP LOCKED
    ),
    closed_attempts AS (
        -- Close the lost attempt so the history says what happened to it.
        UPDATE jobledger.run_attempt AS ra
           SET status = 'failed', finished_at = now(), error = reconcile_orphaned.reason
          FROM orphaned AS o
         WHERE ra.run = o.id AND ra.attempt = o.attempt AND ra.status = 'running'
    ),
    changed_runs AS (
    UPDATE jobledger.run AS r
       SET status = CASE WHEN r.attempt < r.max_attempts
                         THEN 'pending'::jobledger.run_status
                         ELSE 'failed'::jobledger.run_status END,
           run_after = CASE WHEN r.attempt < r.max_attempts THEN now() ELSE r.run_after END,
           finished_at = CASE WHEN r.attempt < r.max_attempts THEN NULL ELSE now() END,
           error = CASE WHEN r.attempt < r.max_attempts THEN NULL ELSE reconcile_orphaned.reason END,
           error_category = CASE WHEN r.attempt < r.max_attempts THEN NULL ELSE 'runner_lost' END,
           error_sqlstate = NULL,
           worker = NULL,
           backend_pid = NULL,
           backend_start = NULL,
           heartbeat_at = NULL,
           started_at = CASE WHEN r.attempt < r.max_attempts THEN NULL ELSE r.started_at END
      FROM orphaned AS o
     WHERE r.id = o.id
    RETURNING o.id, o.backend_pid, o.backend_start
    )
    SELECT count(*)::integer,
           jsonb_agg(jsonb_build_object('run', c.id, 'pid', c.backend_pid, 'start', c.backend_start))
               FILTER (WHERE c.backend_pid IS NOT NULL)
      INTO changed, stale
      FROM changed_runs AS c;

    -- A run taken over because its lease expired may still have a live
    -- backend (a stopped or partitioned runner): its transaction can no
    -- longer commit (the fenced complete_run refuses it) but still holds
    -- its locks, which would block the retry (overwrite deletes every row,
    -- merge updates them).  Terminate it, but only the very backend (pid
    -- and backend_start) and only while it is still executing this run
    -- (the runner names the run in application_name for its transaction).
    PERFORM pg_terminate_backend(a.pid)
       FROM jsonb_to_recordset(coalesce(stale, '[]')) AS s (run uuid, pid integer, start timestamptz)
       JOIN pg_catalog.pg_stat_activity AS a
         ON a.pid = s.pid AND a.backend_start = s.start
        AND a.application_name = 'jobledger run ' || s.run::text
      WHERE a.pid <> pg_backend_pid();
    RETURN changed;
END
$$;
COMMENT ON FUNCTION jobledger.reconcile_orphaned(text, interval) IS
    'Recovers running runs whose executing backend is gone or whose heartbeat is older than the lease (argument, else the jobledger.lease setting, else 1 minute): back to pending if attempts are left, else failed with reason. Closes the lost attempt, and terminates the backend of a run taken over from a live one (still executing it) so its locks go. Returns how many runs changed. Safe to call concurrently.';
REVOKE ALL ON FUNCTION jobledger.reconcile_orphaned(text, interval) FROM PUBLIC;

-- from sql/objects/30_prune.sql
-- Retention: prune deletes finished runs (with their attempts) by age, with
-- separate ages for successes and for failures (failed and cancelled runs),
-- and/or keeps only the newest keep_last finished runs of each job.  A
-- pending or running run is never deleted, however old.
CREATE OR REPLACE FUNCTION jobledger.prune(
    succeeded_older_than interval,
    failed_older_than interval,
    keep_last integer DEFAULT NULL,
    job text DEFAULT NULL
)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    by_age integer := 0;
    by_count integer := 0;
BEGIN
    IF succeeded_older_than IS NULL AND failed_older_than IS NULL AND keep_last IS NULL THEN
        RAISE EXCEPTION 'prune needs a rule: succeeded_older_than, failed_older_than or keep_last'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    IF succeeded_older_than < interval '0' OR failed_older_than < interval '0' THEN
        RAISE EXCEPTION 'prune needs non-negative ages'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    IF keep_last < 0 THEN
        RAISE EXCEPTION 'keep_last must not be negative, not %', keep_last
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    -- By age (run_status_idx: status, finished_at).  A NULL age matches nothing.
    -- Attempts go with their runs (ON DELETE CASCADE).
    DELETE FROM jobledger.run AS r
     WHERE ((r.status = 'succeeded' AND r.finished_at < now() - succeeded_older_than)
            OR (r.status IN ('failed', 'cancelled') AND r.finished_at < now() - failed_older_than))
       AND (prune.job IS NULL OR r.job = prune.job);
    GET DIAGNOSTICS by_age = ROW_COUNT;
    IF keep_last IS NOT NULL THEN
        -- The per-job cap: finished runs past the newest keep_last of their job.
        DELETE FROM jobledger.run AS r
         USING (SELECT f.id,
                       row_number() OVER (PARTITION BY f.job ORDER BY f.finished_at DESC, f.id DESC) AS newest
                  FROM jobledger.run AS f
                 WHERE f.status IN ('succeeded', 'failed', 'cancelled')
                   AND (prune.job IS NULL OR f.job = prune.job)) AS ranked
         WHERE r.id = ranked.id
           AND ranked.newest > keep_last;
        GET DIAGNOSTICS by_count = ROW_COUNT;
    END IF;
    RETURN by_age + by_count;
END
$$;
COMMENT ON FUNCTION jobledger.prune(interval, interval, integer, text) IS
    'Deletes finished runs with their attempts: succeeded runs that finished more than succeeded_older_than ago, failed and cancelled ones more than failed_older_than ago, and the runs of each job past its newest keep_last finished ones (NULL: that rule is off); optionally only those of one job. Never touches pending or running runs. Returns how many runs it deleted.';
REVOKE ALL ON FUNCTION jobledger.prune(interval, interval, integer, text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION jobledger.prune(
    older_than interval,
    job text DEFAULT NULL
)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
BEGIN
    IF older_than IS NULL OR older_than < interval '0' THEN
        RAISE EXCEPTION 'prune needs a non-negative age, not %', coalesce(older_than::pg_catalog.text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    RETURN jobledger.prune(older_than, older_than, NULL, prune.job);
END
$$;
COMMENT ON FUNCTION jobledger.prune(interval, text) IS
    'Deletes terminal runs (succeeded, failed, cancelled) that finished more than older_than ago, with their attempts; optionally only those of one job. Never touches pending or running runs. Returns how many runs it deleted. The same as prune(older_than, older_than, NULL, job).';
REVOKE ALL ON FUNCTION jobledger.prune(interval, text) FROM PUBLIC;

-- from sql/objects/40_views.sql
-- security_invoker: the views show what the querying role may see of the
-- ledger tables (row-level security), not what the views' owner sees.
CREATE OR REPLACE VIEW jobledger.runs WITH (security_invoker = true) AS
SELECT r.id,
       r.job,
       r.job_version AS version,
       r.status,
       r.attempt,
       r.max_attempts,
       r.priority,
       r.submitted_by,
       r.created_at,
       r.run_after,
       r.started_at,
       r.finished_at,
       -- How long the current (or last) attempt has run.
       coalesce(r.finished_at, CASE WHEN r.status = 'running' THEN now() END) - r.started_at AS duration,
       -- How long the run waited to be picked up.
       coalesce(r.started_at, CASE WHEN r.status = 'pending' THEN now() END) - r.created_at AS queued_for,
       r.rows_written,
       r.progress,
       r.worker,
       r.error_category,
       r.error,
       r.parameters
  FROM jobledger.run AS r;
COMMENT ON VIEW jobledger.runs IS
    'Runs with friendly columns: duration of the current or last attempt, time queued, outcome. Newest first with ORDER BY created_at DESC. Shows the runs the querying role may see.';
GRANT SELECT ON jobledger.runs TO PUBLIC;

CREATE OR REPLACE VIEW jobledger.job_stats WITH (security_invoker = true) AS
SELECT j.name AS job,
       j.current_version,
       count(r.id) AS runs,
       count(r.id) FILTER (WHERE r.status = 'pending') AS pending,
       count(r.id) FILTER (WHERE r.status = 'running') AS running,
       count(r.id) FILTER (WHERE r.status = 'succeeded') AS succeeded,
       count(r.id) FILTER (WHERE r.status = 'failed') AS failed,
       count(r.id) FILTER (WHERE r.status = 'cancelled') AS cancelled,
       max(r.finished_at) FILTER (WHERE r.status = 'succeeded') AS last_success,
       max(r.finished_at) FILTER (WHERE r.status = 'failed') AS last_failure,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY r.finished_at - r.started_at)
           FILTER (WHERE r.status = 'succeeded') AS p50_duration,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY r.finished_at - r.started_at)
           FILTER (WHERE r.status = 'succeeded') AS p95_duration
  FROM jobledger.job AS j
  LEFT JOIN jobledger.run AS r ON r.job = j.name
 GROUP BY j.name, j.current_version;
COMMENT ON VIEW jobledger.job_stats IS
    'Per job: runs by status, last success and failure, median and 95th percentile duration of successful runs. Counts the jobs and runs the querying role may see.';
GRANT SELECT ON jobledger.job_stats TO PUBLIC;

-- from sql/objects/50_job_admin.sql
CREATE OR REPLACE FUNCTION jobledger.record_job_version(
    job_name text, job_owner name, query text, destination text, mode text,
    params jsonb, timeout interval, max_attempts integer, description text
)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    current jobledger.job_version;
    next_version integer;
BEGIN
    INSERT INTO jobledger.job AS j (name, owner, description)
    VALUES (job_name, job_owner, record_job_version.description)
    ON CONFLICT (name) DO NOTHING;
    -- Lock the job: concurrent definitions of one job number versions in turn.
    PERFORM 1 FROM jobledger.job AS j WHERE j.name = job_name FOR UPDATE;
    SELECT v.* INTO current
      FROM jobledger.job AS j JOIN jobledger.job_version AS v ON v.job = j.name AND v.version = j.current_version
     WHERE j.name = job_name;
    IF record_job_version.description IS NOT NULL THEN
        UPDATE jobledger.job AS j SET description = record_job_version.description, updated_at = pg_catalog.now()
         WHERE j.name = job_name AND j.description IS DISTINCT FROM record_job_version.description;
    END IF;
    IF current.version IS NOT NULL
       AND current.query = record_job_version.query
       AND current.params IS NOT DISTINCT FROM record_job_version.params
       AND current.destination = record_job_version.destination
       AND current.mode = record_job_version.mode
       AND current.timeout IS NOT DISTINCT FROM record_job_version.timeout
       AND current.max_attempts = record_job_version.max_attempts THEN
        RETURN current.version;
    END IF;
    SELECT coalesce(max(v.version), 0) + 1 INTO next_version FROM jobledger.job_version AS v WHERE v.job = job_name;
    INSERT INTO jobledger.job_version (job, version, query, params, destination, mode, timeout, max_attempts, created_by)
    VALUES (job_name, next_version, record_job_version.query, record_job_version.params,
            record_job_version.destination, record_job_version.mode, record_job_version.timeout,
            record_job_version.max_attempts, jobledger.calling_role());
    UPDATE jobledger.job AS j SET current_version = next_version, updated_at = pg_catalog.now() WHERE j.name = job_name;
    RETURN next_version;
END
$$;
COMMENT ON FUNCTION jobledger.record_job_version(text, name, text, text, text, jsonb, interval, integer, text) IS
    'Internal to define_job, which validates first: writes the job and, if anything changed, its next version.';
REVOKE ALL ON FUNCTION jobledger.record_job_version(text, name, text, text, text, jsonb, interval, integer, text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION jobledger.owned_job(job_name text)
RETURNS jobledger.job
LANGUAGE plpgsql
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    job_row jobledger.job;
    role_name name := jobledger.calling_role();
BEGIN
    SELECT j.* INTO job_row FROM jobledger.job AS j WHERE j.name = job_name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'there is no job "%"', job_name
            USING ERRCODE = 'undefined_object', DETAIL = 'category: unknown_job';
    END IF;
    IF NOT (EXISTS (SELECT 1 FROM pg_catalog.pg_roles AS r WHERE r.rolname = job_row.owner)
            AND pg_catalog.pg_has_role(role_name, job_row.owner, 'MEMBER')) THEN
        RAISE EXCEPTION 'job "%" belongs to %, not %', job_name, job_row.owner, role_name
            USING ERRCODE = 'insufficient_privilege', DETAIL = 'category: permission_denied';
    END IF;
    RETURN job_row;
END
$$;
COMMENT ON FUNCTION jobledger.owned_job(text) IS
    'Internal: the job, locked, if the calling role is its owner or a member of it; else unknown_job or permission_denied.';
REVOKE ALL ON FUNCTION jobledger.owned_job(text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION jobledger.grant_job(job text, role pg_catalog.regrole)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
BEGIN
    PERFORM jobledger.owned_job(grant_job.job);
    INSERT INTO jobledger.job_grant (job, grantee, granted_by)
    VALUES (grant_job.job, grant_job.role::pg_catalog.text, jobledger.calling_role())
    ON CONFLICT DO NOTHING;
END
$$;
COMMENT ON FUNCTION jobledger.grant_job(text, pg_catalog.regrole) IS
    'Lets role (and its members) submit runs of job. Only the job''s owner (or a member of it) may grant.';
GRANT EXECUTE ON FUNCTION jobledger.grant_job(text, pg_catalog.regrole) TO PUBLIC;

CREATE OR REPLACE FUNCTION jobledger.revoke_job(job text, role pg_catalog.regrole)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    removed integer;
BEGIN
    PERFORM jobledger.owned_job(revoke_job.job);
    DELETE FROM jobledger.job_grant AS g WHERE g.job = revoke_job.job AND g.grantee = revoke_job.role::pg_catalog.text;
    GET DIAGNOSTICS removed = ROW_COUNT;
    RETURN removed > 0;
END
$$;
COMMENT ON FUNCTION jobledger.revoke_job(text, pg_catalog.regrole) IS
    'Takes back grant_job; returns whether there was a grant. Only the job''s owner (or a member of it) may revoke.';
GRANT EXECUTE ON FUNCTION jobledger.revoke_job(text, pg_catalog.regrole) TO PUBLIC;

CREATE OR REPLACE FUNCTION jobledger.drop_job(name text)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
BEGIN
    PERFORM jobledger.owned_job(drop_job.name);
    IF EXISTS (SELECT 1 FROM jobledger.run AS r WHERE r.job = drop_job.name AND r.status IN ('pending', 'running')) THEN
        RAISE EXCEPTION 'job "%" has pending or running runs', drop_job.name
            USING ERRCODE = 'object_in_use', DETAIL = 'category: job_busy',
                  HINT = 'Cancel them or let them finish, then drop the job.';
    END IF;
    -- The job's history goes with it: its runs, their attempts, its versions.
    DELETE FROM jobledger.run AS r WHERE r.job = drop_job.name;
    DELETE FROM jobledger.job AS j WHERE j.name = drop_job.name;
END
$$;
COMMENT ON FUNCTION jobledger.drop_job(text) IS
    'Drops a job with its versions, grants and finished runs; refused (job_busy) while runs are pending or running. Only its owner (or a member of it) may.';
GRANT EXECUTE ON FUNCTION jobledger.drop_job(text) TO PUBLIC;

-- from sql/objects/60_runner.sql
-- The runner's state transitions: claim, complete, fail, heartbeat, release.
--
-- Only runners call these (REVOKE ... FROM PUBLIC; grant EXECUTE to the
-- runner's role, see README "The runner").  Every transition of a claimed
-- run is fenced: it applies only while the run is still `running` with the
-- caller's attempt and worker, so a runner that lost its run (reconciled
-- after its lease, cancelled) can never overwrite what happened since.

CREATE OR REPLACE FUNCTION jobledger.claim_runs(worker text, max_runs integer DEFAULT 1)
RETURNS TABLE (
    id uuid,
    job text,
    job_version integer,
    attempt integer,
    max_attempts integer,
    rendered_sql text,
    parameters jsonb,
    mode text,
    owner name,
    timeout_ms bigint,
    destination text,
    destination_schema name,
    destination_table name,
    primary_key name[],
    created_at timestamptz,
    started_at timestamptz
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    -- The connection calling this is the one that executes what it claims:
    -- its pid and backend_start let reconcile_orphaned see it die, and let
    -- cancel_run signal exactly it.
    my_start timestamptz;
    -- The claim's own time, not its transaction's: a runner may claim its
    -- next run in the transaction that completes the previous one.
    claimed_at timestamptz := pg_catalog.clock_timestamp();
BEGIN
    IF claim_runs.worker IS NULL OR claim_runs.worker = '' THEN
        RAISE EXCEPTION 'claim_runs needs a worker name'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    IF claim_runs.max_runs IS NULL OR claim_runs.max_runs NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'max_runs must be between 1 and 1000, not %', claim_runs.max_runs
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    SELECT a.backend_start INTO my_start
      FROM pg_catalog.pg_stat_activity AS a
     WHERE a.pid = pg_catalog.pg_backend_pid();

    RETURN QUERY
    WITH candidates AS (
        -- 1. The runnable pending runs, best first: highest priority, then
        --    the earliest due, then the oldest.  This matches run_claim_idx
        --    (partial: status = 'pending') column for column, so the scan
        --    walks the index in order and stops after max_runs rows.
        -- 2. FOR UPDATE SKIP LOCKED: a run another claimer is taking right
        --    now is skipped, not waited for, so concurrent runners never
        --    block each other nor take the same run.  Under READ COMMITTED a
        --    row changed since our snapshot is re-checked after locking
        --    (status must still be pending).
        SELECT r.id
          FROM jobledger.run AS r
         WHERE r.status = 'pending'
           AND r.run_after <= claimed_at
         ORDER BY r.priority DESC, r.run_after, r.created_at
         -- A sub-select, not the bare parameter: the planner then cannot see
         -- the limit in any plan, so the generic plan costs what a custom
         -- one does and plpgsql keeps it, instead of planning every claim.
         LIMIT (SELECT claim_runs.max_runs)
           FOR UPDATE OF r SKIP LOCKED
    ),
    claimed AS (
        -- 3. Mark them running: the next attempt, this worker and backend,
        --    the start time (also the first heartbeat).  By primary key:
        --    "= ANY (ARRAY(...))" plans as an index scan on run_pkey whatever
        --    the planner guesses for the limit (a join could be a hash join
        --    over the whole ledger).
        UPDATE jobledger.run AS r
           SET status = 'running',
               attempt = r.attempt + 1,
               worker = claim_runs.worker,
               backend_pid = pg_catalog.pg_backend_pid(),
               backend_start = my_start,
               started_at = claimed_at,
               heartbeat_at = claimed_at,
               cancel_requested = false,
               -- An attempt reports its own progress (report_progress).
               rows_written = NULL,
               progress = NULL
         WHERE r.id = ANY (ARRAY(SELECT c.id FROM candidates AS c))
        RETURNING r.*
    ),
    opened AS (
        -- 4. Open the attempt's row in the history.
        INSERT INTO jobledger.run_attempt (run, attempt, worker, backend_pid, started_at)
        SELECT c.id, c.attempt, c.worker, c.backend_pid, c.started_at
          FROM claimed AS c
    )
    -- 5. What the runner needs to execute each run: the job version's mode,
    --    owner and timeout, and the destination as the catalog has it now
    --    (NULL if it was dropped since the run was submitted), with its
    --    primary key for merge.
    SELECT c.id, c.job, c.job_version, c.attempt, c.max_attempts, c.rendered_sql, c.parameters,
           v.mode, j.owner,
           (EXTRACT(epoch FROM v.timeout) * 1000)::bigint,
           v.destination, n.nspname, t.relname,
           CASE WHEN v.mode = 'merge' THEN
               (SELECT pg_catalog.array_agg(a.attname ORDER BY k.ord)
                  FROM pg_catalog.pg_index AS i
                 CROSS JOIN LATERAL pg_catalog.unnest(i.indkey) WITH ORDINALITY AS k (attnum, ord)
                  JOIN pg_catalog.pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                 WHERE i.indrelid = t.oid AND i.indisprimary)
           END,
           c.created_at, c.started_at
      FROM claimed AS c
      JOIN jobledger.job_version AS v ON v.job = c.job AND v.version = c.job_version
      JOIN jobledger.job AS j ON j.name = c.job
      -- Destinations outside the database (result, parquet:<directory>) are
      -- no table names: to_regclass would raise on them.
      LEFT JOIN pg_catalog.pg_class AS t
        ON t.oid = CASE WHEN v.destination = 'result' OR v.destination LIKE 'parquet:%'
                        THEN NULL ELSE pg_catalog.to_regclass(v.destination) END
      LEFT JOIN pg_catalog.pg_namespace AS n ON n.oid = t.relnamespace
     ORDER BY c.priority DESC, c.run_after, c.created_at;
END
$$;
COMMENT ON FUNCTION jobledger.claim_runs(text, integer) IS
    'Runner only: claims up to max_runs runnable pending runs (priority, then age; FOR UPDATE SKIP LOCKED), marks them running with this worker, the next attempt and the calling connection''s backend (which must be the one that executes them), opens their attempts, and returns what executing them needs.';
REVOKE ALL ON FUNCTION jobledger.claim_runs(text, integer) FROM PUBLIC;


CREATE OR REPLACE FUNCTION jobledger.complete_run(
    run uuid, attempt integer, worker text, rows_written bigint, snapshot_id text
)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    status_now jobledger.run_status;
    -- clock_timestamp(): now() is when the run's transaction began.
    finished timestamptz := pg_catalog.clock_timestamp();
BEGIN
    -- Called in the transaction that wrote the destination.  The fence: only
    -- a run still running with this attempt on this worker succeeds.
    UPDATE jobledger.run AS r
       SET status = 'succeeded',
           finished_at = finished,
           heartbeat_at = finished,
           rows_written = complete_run.rows_written,
           snapshot_id = complete_run.snapshot_id,
           -- A run that reported progress, or published a version, ends at 100.
           progress = CASE WHEN r.progress IS NOT NULL OR complete_run.snapshot_id IS NOT NULL THEN 100 END,
           error = NULL,
           error_sqlstate = NULL,
           error_category = NULL
     WHERE r.id = complete_run.run
       AND r.status = 'running'
       AND r.attempt = complete_run.attempt
       AND r.worker = complete_run.worker;
    IF NOT FOUND THEN
        -- Raise rather than return false: the caller's transaction, and so
        -- its write to the destination, cannot commit, even if the caller
        -- pipelined its COMMIT or forgot to look at a result.
        SELECT r.status INTO status_now FROM jobledger.run AS r WHERE r.id = complete_run.run;
        RAISE EXCEPTION 'run % attempt % is no longer running on worker % (it is %)',
                complete_run.run, complete_run.attempt, complete_run.worker, coalesce(status_now::text, 'gone')
            USING ERRCODE = 'object_not_in_prerequisite_state', DETAIL = 'category: run_fenced',
                  HINT = 'The run was cancelled, or taken over after its lease expired; this attempt''s writes roll back.';
    END IF;
    UPDATE jobledger.run_attempt AS a
       SET status = 'succeeded', finished_at = finished
     WHERE a.run = complete_run.run AND a.attempt = complete_run.attempt;
END
$$;
COMMENT ON FUNCTION jobledger.complete_run(uuid, integer, text, bigint, text) IS
    'Runner only, in the transaction that wrote the destination (or, for a destination outside the database, that records what was published): flips the run to succeeded with rows_written and snapshot_id (the dataset version published, else NULL) if it is still running with this attempt on this worker; otherwise raises (category run_fenced) so that the whole transaction, write included, rolls back.';
REVOKE ALL ON FUNCTION jobledger.complete_run(uuid, integer, text, bigint, text) FROM PUBLIC;

-- 0.3.0's signature, for table destinations (and runners of 0.3.0).
CREATE OR REPLACE FUNCTION jobledger.complete_run(run uuid, attempt integer, worker text, rows_written bigint)
RETURNS void
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
    SELECT jobledger.complete_run(complete_run.run, complete_run.attempt, complete_run.worker,
                                  complete_run.rows_written, NULL::pg_catalog.text)
$$;
COMMENT ON FUNCTION jobledger.complete_run(uuid, integer, text, bigint) IS
    'Runner only: complete_run with no snapshot_id (table destinations); see the five-argument form.';
REVOKE ALL ON FUNCTION jobledger.complete_run(uuid, integer, text, bigint) FROM PUBLIC;


CREATE OR REPLACE FUNCTION jobledger.fail_run(
    run uuid,
    attempt integer,
    worker text,
    error text,
    error_sqlstate text DEFAULT NULL,
    error_category text DEFAULT 'execution_error',
    retry boolean DEFAULT false,
    backoff interval DEFAULT '1 second'
)
RETURNS jobledger.run_status
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    current jobledger.run;
    again boolean;
BEGIN
    IF fail_run.error IS NULL OR fail_run.error = '' THEN
        RAISE EXCEPTION 'fail_run needs an error'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    IF fail_run.backoff IS NULL OR fail_run.backoff < interval '0' THEN
        RAISE EXCEPTION 'the backoff must not be negative'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    -- The fence (and the lock): a run that is no longer this attempt's was
    -- decided by someone else (cancel_run, reconcile_orphaned); leave it.
    SELECT r.* INTO current
      FROM jobledger.run AS r
     WHERE r.id = fail_run.run
       AND r.status = 'running'
       AND r.attempt = fail_run.attempt
       AND r.worker = fail_run.worker
       FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    again := fail_run.retry AND current.attempt < current.max_attempts;

    UPDATE jobledger.run_attempt AS a
       SET status = 'failed', finished_at = pg_catalog.clock_timestamp(),
           error = fail_run.error, error_sqlstate = fail_run.error_sqlstate
     WHERE a.run = fail_run.run AND a.attempt = fail_run.attempt;

    -- A retry waits backoff * 2^(attempt - 1), at most an hour.  The error
    -- stays on the run while the retry is pending, so psql shows why.
    UPDATE jobledger.run AS r
       SET status = CASE WHEN again THEN 'pending'::jobledger.run_status ELSE 'failed'::jobledger.run_status END,
           run_after = CASE WHEN again
                            THEN pg_catalog.clock_timestamp()
                                 + LEAST(fail_run.backoff * pg_catalog.power(2, current.attempt - 1),
                                         interval '1 hour')
                            ELSE r.run_after END,
           finished_at = CASE WHEN again THEN NULL ELSE pg_catalog.clock_timestamp() END,
           started_at = CASE WHEN again THEN NULL ELSE r.started_at END,
           worker = CASE WHEN again THEN NULL ELSE r.worker END,
           backend_pid = CASE WHEN again THEN NULL ELSE r.backend_pid END,
           backend_start = CASE WHEN again THEN NULL ELSE r.backend_start END,
           heartbeat_at = CASE WHEN again THEN NULL ELSE r.heartbeat_at END,
           error = fail_run.error,
           error_sqlstate = fail_run.error_sqlstate,
           error_category = fail_run.error_category
     WHERE r.id = fail_run.run;
    RETURN CASE WHEN again THEN 'pending'::jobledger.run_status ELSE 'failed'::jobledger.run_status END;
END
$$;
COMMENT ON FUNCTION jobledger.fail_run(uuid, integer, text, text, text, text, boolean, interval) IS
    'Runner only: records a failed attempt (error, SQLSTATE, category). With retry and attempts left the run goes back to pending after backoff * 2^(attempt-1) (at most an hour), else it fails. Fenced like complete_run; returns the new status, or NULL if the run was no longer this attempt''s.';
REVOKE ALL ON FUNCTION jobledger.fail_run(uuid, integer, text, text, text, text, boolean, interval) FROM PUBLIC;


CREATE OR REPLACE FUNCTION jobledger.heartbeat(worker text, runs uuid[])
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    touched integer;
BEGIN
    -- SKIP LOCKED: a locked run is being completed, failed or cancelled right
    -- now; its heartbeat no longer matters and the caller must not wait.
    UPDATE jobledger.run AS r
       SET heartbeat_at = pg_catalog.clock_timestamp()
     WHERE r.id IN (SELECT l.id
                      FROM jobledger.run AS l
                     WHERE l.id = ANY (heartbeat.runs)
                       AND l.status = 'running'
                       AND l.worker = heartbeat.worker
                       FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS touched = ROW_COUNT;
    RETURN touched;
END
$$;
COMMENT ON FUNCTION jobledger.heartbeat(text, uuid[]) IS
    'Runner only: advances heartbeat_at of the given runs still running on this worker, so reconcile_orphaned''s lease does not take them; returns how many.';
REVOKE ALL ON FUNCTION jobledger.heartbeat(text, uuid[]) FROM PUBLIC;


CREATE OR REPLACE FUNCTION jobledger.release_run(run uuid, attempt integer, worker text)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
BEGIN
    -- A runner shutting down gives back a run it had to interrupt: the
    -- attempt rolled back and was nobody's fault, so it does not count (the
    -- run keeps its place in line and its attempts) and leaves no history.
    UPDATE jobledger.run AS r
       SET status = 'pending',
           attempt = r.attempt - 1,
           started_at = NULL,
           worker = NULL,
           backend_pid = NULL,
           backend_start = NULL,
           heartbeat_at = NULL
     WHERE r.id = release_run.run
       AND r.status = 'running'
       AND r.attempt = release_run.attempt
       AND r.worker = release_run.worker;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    DELETE FROM jobledger.run_attempt AS a WHERE a.run = release_run.run AND a.attempt = release_run.attempt;
    RETURN true;
END
$$;
COMMENT ON FUNCTION jobledger.release_run(uuid, integer, text) IS
    'Runner only, when shutting down: puts a run it interrupted back to pending without counting the attempt. Fenced like complete_run; returns whether it did.';
REVOKE ALL ON FUNCTION jobledger.release_run(uuid, integer, text) FROM PUBLIC;

-- from sql/objects/61_cancel_run.sql
CREATE OR REPLACE FUNCTION jobledger.cancel_run(run uuid)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    role_name name := jobledger.calling_role();
    current jobledger.run;
    job_owner name;
    reason text;
BEGIN
    -- Lock the run: a runner completing or failing it waits for this
    -- decision, and then its fenced transition finds it cancelled.
    SELECT r.* INTO current FROM jobledger.run AS r WHERE r.id = cancel_run.run FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'there is no run %', cancel_run.run
            USING ERRCODE = 'undefined_object', DETAIL = 'category: unknown_run';
    END IF;
    SELECT j.owner INTO job_owner FROM jobledger.job AS j WHERE j.name = current.job;
    -- Who may: the run's submitter, the job's owner, members of either, and
    -- superusers (pg_has_role is true for them).  A role that no longer
    -- exists has no members.
    IF NOT ((EXISTS (SELECT 1 FROM pg_catalog.pg_roles AS o WHERE o.rolname = current.submitted_by)
             AND pg_catalog.pg_has_role(role_name, current.submitted_by, 'MEMBER'))
            OR (EXISTS (SELECT 1 FROM pg_catalog.pg_roles AS o WHERE o.rolname = job_owner)
                AND pg_catalog.pg_has_role(role_name, job_owner, 'MEMBER'))) THEN
        RAISE EXCEPTION '% may not cancel run % of job "%"', role_name, cancel_run.run, current.job
            USING ERRCODE = 'insufficient_privilege', DETAIL = 'category: permission_denied',
                  HINT = 'Only the run''s submitter or the job''s owner (or their members) may cancel it.';
    END IF;
    IF current.status NOT IN ('pending', 'running') THEN
        RETURN false;  -- terminal: never changed again
    END IF;

    reason := pg_catalog.format('cancelled by %s', role_name);
    UPDATE jobledger.run AS r
       SET status = 'cancelled',
           finished_at = pg_catalog.clock_timestamp(),
           cancel_requested = (current.status = 'running'),
           error = reason,
           error_sqlstate = NULL,
           error_category = 'cancelled'
     WHERE r.id = cancel_run.run;
    IF current.status = 'running' THEN
        UPDATE jobledger.run_attempt AS a
           SET status = 'cancelled', finished_at = pg_catalog.clock_timestamp(), error = reason
         WHERE a.run = cancel_run.run AND a.attempt = current.attempt AND a.status = 'running';
        -- Stop its query on the server.  Only the recorded backend (pid and
        -- backend_start: a pid can be reused) and only while it is executing
        -- this very run: the runner names the run in application_name for
        -- the length of its transaction, so a connection that has moved on
        -- to another run is left alone.  Whatever the signal's timing, the
        -- runner's fenced complete_run now fails: nothing is written.
        PERFORM pg_catalog.pg_cancel_backend(a.pid)
           FROM pg_catalog.pg_stat_activity AS a
          WHERE a.pid = current.backend_pid
            AND a.backend_start = current.backend_start
            AND a.application_name = 'jobledger run ' || cancel_run.run::text;
    END IF;
    RETURN true;
END
$$;
COMMENT ON FUNCTION jobledger.cancel_run(uuid) IS
    'Cancels a run: pending -> cancelled at once; running -> cancelled, and its query is cancelled on the server so nothing is written; a finished run is left unchanged (returns false). Allowed to the run''s submitter, the job''s owner, their members and superusers.';
GRANT EXECUTE ON FUNCTION jobledger.cancel_run(uuid) TO PUBLIC;

-- from sql/objects/70_outputs.sql
-- Outputs (0.4.0): what runs produce, kept with them in jobledger.output;
-- the stored results of `result` destinations read back; and the runner's
-- helpers for destinations outside the database (parquet:).

CREATE OR REPLACE FUNCTION jobledger.emit_output(
    run uuid,
    name text,
    content_type text,
    data bytea,
    parents uuid[] DEFAULT '{}'
)
RETURNS uuid
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    current jobledger.run;
    my_start timestamptz;
    missing uuid;
    made uuid;
BEGIN
    -- Who may emit: the runner, and only from the connection that claimed
    -- the run's current attempt (claim_runs recorded its pid and
    -- backend_start), while the run is running.  So an output always belongs
    -- to a real attempt, and an attempt that lost its run (cancelled, taken
    -- over after its lease) cannot add to it: the fence without asking the
    -- caller for its attempt and worker.  The runner emits in the
    -- transaction that completes the run, so outputs and success commit
    -- together.
    SELECT a.backend_start INTO my_start FROM pg_catalog.pg_stat_activity AS a
     WHERE a.pid = pg_catalog.pg_backend_pid();
    SELECT r.* INTO current FROM jobledger.run AS r WHERE r.id = emit_output.run FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'there is no run %', emit_output.run
            USING ERRCODE = 'undefined_object', DETAIL = 'category: unknown_run';
    END IF;
    IF current.status <> 'running' OR current.backend_pid IS DISTINCT FROM pg_catalog.pg_backend_pid()
       OR current.backend_start IS DISTINCT FROM my_start THEN
        RAISE EXCEPTION 'run % is not running on this connection (it is %)', emit_output.run, current.status
            USING ERRCODE = 'object_not_in_prerequisite_state', DETAIL = 'category: run_fenced',
                  HINT = 'Outputs are emitted by the connection executing the run''s current attempt.';
    END IF;
    IF emit_output.name IS NULL OR emit_output.content_type IS NULL OR emit_output.data IS NULL THEN
        RAISE EXCEPTION 'emit_output needs a name, a content type and data'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    SELECT p INTO missing
      FROM pg_catalog.unnest(coalesce(emit_output.parents, '{}')) AS p
     WHERE NOT EXISTS (SELECT 1 FROM jobledger.output AS o WHERE o.id = p)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'parent output % does not exist', missing
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    INSERT INTO jobledger.output (run, attempt, name, content_type, data, parent_outputs)
    VALUES (emit_output.run, current.attempt, emit_output.name, emit_output.content_type, emit_output.data,
            coalesce(emit_output.parents, '{}'))
    RETURNING id INTO made;
    RETURN made;
END
$$;
COMMENT ON FUNCTION jobledger.emit_output(uuid, text, text, bytea, uuid[]) IS
    'Runner only: appends an output (name, media type, data, the outputs it was derived from) to a run, from the connection executing the run''s current attempt; returns its id. Raises run_fenced otherwise, invalid_argument for a bad name or an unknown parent.';
REVOKE ALL ON FUNCTION jobledger.emit_output(uuid, text, text, bytea, uuid[]) FROM PUBLIC;


-- Readers run as the caller: row-level security shows the outputs of the
-- runs the caller may see, and nothing else.
CREATE OR REPLACE FUNCTION jobledger.outputs(run uuid)
RETURNS SETOF jobledger.output
LANGUAGE sql
STABLE
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
    SELECT o.* FROM jobledger.output AS o WHERE o.run = outputs.run ORDER BY o.seq
$$;
COMMENT ON FUNCTION jobledger.outputs(uuid) IS
    'The outputs of a run in insertion order (those the caller may see: outputs are visible like their run).';
GRANT EXECUTE ON FUNCTION jobledger.outputs(uuid) TO PUBLIC;

CREATE OR REPLACE FUNCTION jobledger.latest_output(name text)
RETURNS jobledger.output
LANGUAGE sql
STABLE
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
    SELECT o.* FROM jobledger.output AS o WHERE o.name = latest_output.name ORDER BY o.seq DESC LIMIT 1
$$;
COMMENT ON FUNCTION jobledger.latest_output(text) IS
    'The newest output (highest seq) of that name among those the caller may see; NULL if none.';
GRANT EXECUTE ON FUNCTION jobledger.latest_output(text) TO PUBLIC;


CREATE OR REPLACE FUNCTION jobledger.run_output(run uuid, output_name text)
RETURNS bytea
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    current jobledger.run;
    found_data bytea;
BEGIN
    -- As the caller: a run it may not see is, for it, not there.
    SELECT r.* INTO current FROM jobledger.run AS r WHERE r.id = run_output.run;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'there is no run %', run_output.run
            USING ERRCODE = 'undefined_object', DETAIL = 'category: unknown_run';
    END IF;
    SELECT o.data INTO found_data
      FROM jobledger.output AS o
     WHERE o.run = run_output.run AND o.name = run_output.output_name
     ORDER BY o.seq DESC
     LIMIT 1;
    IF FOUND THEN
        RETURN found_data;
    END IF;
    IF current.status <> 'succeeded' THEN
        RAISE EXCEPTION 'run % is %: it has no output "%"', run_output.run, current.status, run_output.output_name
            USING ERRCODE = 'object_not_in_prerequisite_state', DETAIL = 'category: no_result',
                  HINT = CASE WHEN current.status IN ('pending', 'running')
                              THEN 'Wait for it to succeed.' ELSE 'See the run''s error.' END;
    END IF;
    RAISE EXCEPTION 'run % of job "%" has no output named "%"', run_output.run, current.job, run_output.output_name
        USING ERRCODE = 'object_not_in_prerequisite_state', DETAIL = 'category: no_result',
              HINT = CASE WHEN run_output.output_name IN ('result', 'result.json')
                          THEN 'Only runs of jobs whose destination is result keep their result with the run.'
                          ELSE 'jobledger.outputs(run) lists what the run has.' END;
END
$$;
COMMENT ON FUNCTION jobledger.run_output(uuid, text) IS
    'The data of the newest output of that name of a run (one the caller may see), or an error saying why there is none: unknown_run, or no_result (not succeeded yet, or no such output).';
GRANT EXECUTE ON FUNCTION jobledger.run_output(uuid, text) TO PUBLIC;

CREATE OR REPLACE FUNCTION jobledger.result_arrow(run uuid)
RETURNS bytea
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
BEGIN
    RETURN jobledger.run_output(result_arrow.run, 'result');
END
$$;
COMMENT ON FUNCTION jobledger.result_arrow(uuid) IS
    'The stored result of a run of a job with destination result, as Arrow IPC stream bytes (what the Python client and `jobledger result` read). Errors: unknown_run, no_result.';
GRANT EXECUTE ON FUNCTION jobledger.result_arrow(uuid) TO PUBLIC;

CREATE OR REPLACE FUNCTION jobledger.result_json(run uuid)
RETURNS jsonb
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
BEGIN
    -- The runner stores an exact JSON rendering next to the Arrow stream
    -- (jobledger.ipc_result.to_json), so the server needs no Arrow reader.
    RETURN pg_catalog.convert_from(jobledger.run_output(result_json.run, 'result.json'), 'UTF8')::jsonb;
END
$$;
COMMENT ON FUNCTION jobledger.result_json(uuid) IS
    'The stored result of a run of a job with destination result, as a JSON array of row objects (numbers exact, timestamps ISO 8601, uuids and bytea as text). Errors: unknown_run, no_result.';
GRANT EXECUTE ON FUNCTION jobledger.result_json(uuid) TO PUBLIC;


-- The runner's helpers for destinations outside the database (parquet:).

CREATE OR REPLACE FUNCTION jobledger.lock_run(run uuid, attempt integer, worker text)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
BEGIN
    -- A file system cannot commit with the database.  So, right before a
    -- runner publishes a dataset version, it takes the fence and holds it:
    -- the run must still be running with this attempt on this worker, and
    -- its row stays locked until the runner's transaction (which then
    -- records the success) ends.  Meanwhile cancel_run waits and then finds
    -- the run succeeded, and reconcile_orphaned (SKIP LOCKED) leaves it
    -- alone: no version is published for a run that someone else decided.
    PERFORM 1 FROM jobledger.run AS r
      WHERE r.id = lock_run.run
        AND r.status = 'running'
        AND r.attempt = lock_run.attempt
        AND r.worker = lock_run.worker
        FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'run % attempt % is no longer running on worker %', lock_run.run, lock_run.attempt,
                lock_run.worker
            USING ERRCODE = 'object_not_in_prerequisite_state', DETAIL = 'category: run_fenced',
                  HINT = 'The run was cancelled, or taken over after its lease expired; publish nothing.';
    END IF;
END
$$;
COMMENT ON FUNCTION jobledger.lock_run(uuid, integer, text) IS
    'Runner only, before publishing outside the database: raises (run_fenced) unless the run is still running with this attempt on this worker, and locks its row until the caller''s transaction ends.';
REVOKE ALL ON FUNCTION jobledger.lock_run(uuid, integer, text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION jobledger.report_progress(
    run uuid, attempt integer, worker text, rows_written bigint, progress integer
)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    touched integer;
BEGIN
    IF report_progress.progress IS NOT NULL AND report_progress.progress NOT BETWEEN 0 AND 100 THEN
        RAISE EXCEPTION 'progress must be between 0 and 100, not %', report_progress.progress
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    -- From a connection of its own: the run's transaction is still open, and
    -- readers must see the progress now.  Fenced like heartbeat; a row that
    -- is locked is being completed, cancelled or published right now, so
    -- skip it rather than wait.
    UPDATE jobledger.run AS r
       SET rows_written = report_progress.rows_written,
           progress = report_progress.progress,
           heartbeat_at = pg_catalog.clock_timestamp()
     WHERE r.id IN (SELECT l.id FROM jobledger.run AS l
                     WHERE l.id = report_progress.run
                       AND l.status = 'running'
                       AND l.attempt = report_progress.attempt
                       AND l.worker = report_progress.worker
                       FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS touched = ROW_COUNT;
    RETURN touched > 0;
END
$$;
COMMENT ON FUNCTION jobledger.report_progress(uuid, integer, text, bigint, integer) IS
    'Runner only, from a connection other than the run''s: sets rows_written and progress (percent, 0..100) of a run still running with this attempt on this worker, and its heartbeat; returns whether it did.';
REVOKE ALL ON FUNCTION jobledger.report_progress(uuid, integer, text, bigint, integer) FROM PUBLIC;

-- from sql/objects/80_workers.sql
-- The runner's presence: worker_start when a runner process starts,
-- worker_beat with its heartbeats and once more on a clean exit.  Runner
-- only, like the state transitions of sql/objects/60_runner.sql.

CREATE OR REPLACE FUNCTION jobledger.worker_start(
    worker text,
    hostname text,
    pid integer,
    version text,
    concurrency integer,
    lease interval
)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
BEGIN
    IF worker_start.worker IS NULL OR worker_start.worker = '' THEN
        RAISE EXCEPTION 'worker_start needs a worker name'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    -- Runners that stopped or vanished long ago are of no more interest.
    DELETE FROM jobledger.worker AS w WHERE w.heartbeat_at < pg_catalog.now() - interval '7 days';
    INSERT INTO jobledger.worker AS w (worker, hostname, pid, version, role, concurrency, lease,
                                       runs_in_flight, started_at, heartbeat_at, stopped_at)
    VALUES (worker_start.worker, worker_start.hostname, worker_start.pid, worker_start.version,
            jobledger.calling_role(), worker_start.concurrency, worker_start.lease, 0,
            pg_catalog.now(), pg_catalog.now(), NULL)
    ON CONFLICT ON CONSTRAINT worker_pkey DO UPDATE
       SET hostname = EXCLUDED.hostname, pid = EXCLUDED.pid, version = EXCLUDED.version,
           role = EXCLUDED.role, concurrency = EXCLUDED.concurrency, lease = EXCLUDED.lease,
           runs_in_flight = 0, started_at = EXCLUDED.started_at,
           heartbeat_at = EXCLUDED.heartbeat_at, stopped_at = NULL;
END
$$;
COMMENT ON FUNCTION jobledger.worker_start(text, text, integer, text, integer, interval) IS
    'Runner only, at start-up: records (or renews) the runner process''s row in jobledger.worker, and forgets runners not seen for 7 days.';
REVOKE ALL ON FUNCTION jobledger.worker_start(text, text, integer, text, integer, interval) FROM PUBLIC;

CREATE OR REPLACE FUNCTION jobledger.worker_beat(worker text, runs_in_flight integer, stopped boolean DEFAULT false)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
BEGIN
    UPDATE jobledger.worker AS w
       SET heartbeat_at = pg_catalog.now(),
           runs_in_flight = greatest(coalesce(worker_beat.runs_in_flight, 0), 0),
           stopped_at = CASE WHEN worker_beat.stopped THEN pg_catalog.now() END
     WHERE w.worker = worker_beat.worker;
    -- false: no such row (forgotten, or the table was restored without it);
    -- the runner then calls worker_start again.
    RETURN FOUND;
END
$$;
COMMENT ON FUNCTION jobledger.worker_beat(text, integer, boolean) IS
    'Runner only: the runner process''s heartbeat with the runs it is executing; with stopped, its clean exit. Returns false if the worker is unknown (call worker_start).';
REVOKE ALL ON FUNCTION jobledger.worker_beat(text, integer, boolean) FROM PUBLIC;

-- from sql/objects/81_ops_views.sql
-- psql inspection: what is running right now, and which runners are there.
-- security_invoker, like the other views: each role sees the runs row-level
-- security shows it.

-- Running runs with what PostgreSQL says of the backend executing each.
-- pg_stat_activity shows the state, wait event and timings of another
-- role's backend only to members of pg_read_all_stats (pg_monitor) or of
-- that role; for anyone else those columns are NULL.  The backend is
-- matched by pid and backend_start (a pid can be reused) or, where
-- backend_start is hidden, by the application_name the runner sets while it
-- executes the run.
CREATE OR REPLACE VIEW jobledger.active_runs WITH (security_invoker = true) AS
SELECT r.id,
       r.job,
       r.job_version AS version,
       r.attempt,
       r.max_attempts,
       r.worker,
       r.submitted_by,
       r.started_at,
       pg_catalog.now() - r.started_at AS running_for,
       r.heartbeat_at,
       pg_catalog.now() - r.heartbeat_at AS heartbeat_age,
       r.progress,
       r.backend_pid,
       a.state AS backend_state,
       a.wait_event_type,
       a.wait_event,
       pg_catalog.now() - a.query_start AS query_runtime,
       pg_catalog.now() - a.xact_start AS xact_runtime,
       CASE WHEN a.pid IS NOT NULL THEN pg_catalog.pg_blocking_pids(a.pid) END AS blocked_by,
       r.parameters
  FROM jobledger.run AS r
  LEFT JOIN pg_catalog.pg_stat_activity AS a
    ON a.pid = r.backend_pid
   AND coalesce(a.backend_start = r.backend_start,
                a.application_name = 'jobledger run ' || r.id::pg_catalog.text)
 WHERE r.status = 'running';
COMMENT ON VIEW jobledger.active_runs IS
    'Running runs with their executing backend from pg_stat_activity: state, wait event, query and transaction runtime, the pids blocking it, progress. Backend columns are NULL to roles that may not see the runner''s backends (grant pg_read_all_stats or pg_monitor to see them).';
GRANT SELECT ON jobledger.active_runs TO PUBLIC;

-- Runner processes: alive while their heartbeat is within their lease.
CREATE OR REPLACE VIEW jobledger.workers WITH (security_invoker = true) AS
SELECT w.worker,
       CASE WHEN w.stopped_at IS NOT NULL THEN 'stopped'
            WHEN w.heartbeat_at >= pg_catalog.now() - coalesce(w.lease, interval '1 minute') THEN 'alive'
            ELSE 'lost'
       END AS state,
       w.hostname,
       w.pid,
       w.version,
       w.role,
       w.concurrency,
       w.runs_in_flight,
       w.started_at,
       w.heartbeat_at AS last_heartbeat,
       pg_catalog.now() - w.heartbeat_at AS heartbeat_age,
       w.stopped_at
  FROM jobledger.worker AS w;
COMMENT ON VIEW jobledger.workers IS
    'Runner processes seen: state (alive: a heartbeat within its lease; stopped: exited cleanly; lost: silent for longer than its lease), host, pid, version, executors, runs in flight at the last heartbeat.';
GRANT SELECT ON jobledger.workers TO PUBLIC;

-- from sql/objects/82_retry_run.sql
-- Retrying a failed or cancelled run: a new run of the job with the same
-- parameters and priority, submitted by the caller through submit_job (so
-- every rule of a submission applies: the caller's right to submit, the
-- parameters against the job's current version, the preflight).
-- SECURITY INVOKER on purpose: the caller must be able to see the run
-- (row-level security) and submits as itself.
CREATE OR REPLACE FUNCTION jobledger.retry_run(run uuid)
RETURNS uuid
LANGUAGE plpgsql
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    current jobledger.run;
BEGIN
    SELECT r.* INTO current FROM jobledger.run AS r WHERE r.id = retry_run.run;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'there is no run %', retry_run.run
            USING ERRCODE = 'undefined_object', DETAIL = 'category: unknown_run';
    END IF;
    IF current.status NOT IN ('failed', 'cancelled') THEN
        RAISE EXCEPTION 'run % is %: only a failed or cancelled run can be retried', retry_run.run, current.status
            USING ERRCODE = 'object_not_in_prerequisite_state', DETAIL = 'category: invalid_run_state';
    END IF;
    -- The idempotency key makes a retry of the same run return the same new
    -- run: retrying twice (a double click, a script run again) runs once.
    RETURN jobledger.submit_job(current.job, current.parameters,
                                idempotency_key => 'retry of ' || current.id::pg_catalog.text,
                                priority => current.priority);
END
$$;
COMMENT ON FUNCTION jobledger.retry_run(uuid) IS
    'Submits a failed or cancelled run again as a new run of the job''s current version, with the same parameters and priority; returns the new run''s id (the same one when the run was already retried). Checked like submit_job, as the caller.';
GRANT EXECUTE ON FUNCTION jobledger.retry_run(uuid) TO PUBLIC;

-- from plpython/10_version.sql
CREATE OR REPLACE FUNCTION jobledger.version_py()
RETURNS jsonb
LANGUAGE plpython3u
STABLE
SET search_path = pg_catalog, jobledger, pg_temp
AS $python$
# jobledger prelude, put into every PL/Python function by sql/assemble.py.
# Once per session: put this version's package directory first on sys.path
# and check that the package found there is the one this SQL was built for.
# Problems are returned as error outcomes (see jobledger.server), which the
# calling SQL function raises; the package may not be importable to help.
if GD.get("jobledger.version") != "0.4.0":
    import json

    def _jobledger_mismatch(message, hint):
        return json.dumps({"error": {"message": message, "sqlstate": "55000",
                                     "detail": "category: version_mismatch", "hint": hint}})

    if "jobledger.version" in GD:
        return _jobledger_mismatch(
            "jobledger %s is loaded in this session but the extension is now 0.4.0"
            % GD["jobledger.version"],
            "Reconnect: a session loads the jobledger package once.",
        )
    import sys
    _jobledger_dir = "@PYTHON_LIBDIR@/0.4.0"
    if _jobledger_dir not in sys.path:
        sys.path.insert(0, _jobledger_dir)
    try:
        import jobledger
        import jobledger.server
    except ImportError as _exc:
        return _jobledger_mismatch(
            "cannot import the jobledger 0.4.0 Python package from %s: %s" % (_jobledger_dir, _exc),
            "Run make install for jobledger 0.4.0 on the database server.",
        )
    if jobledger.__version__ != "0.4.0":
        return _jobledger_mismatch(
            "the jobledger package in %s is %s, not 0.4.0" % (_jobledger_dir, jobledger.__version__),
            "Run make install for jobledger 0.4.0 on the database server.",
        )
    GD["jobledger.version"] = "0.4.0"
import jobledger.server
return jobledger.server.version(plpy)
$python$;
COMMENT ON FUNCTION jobledger.version_py() IS
    'Internal: the outcome of jobledger.version() (see jobledger.outcome_value).';
REVOKE ALL ON FUNCTION jobledger.version_py() FROM PUBLIC;

CREATE OR REPLACE FUNCTION jobledger.version()
RETURNS text
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
    SELECT jobledger.outcome_value(jobledger.version_py()) OPERATOR(pg_catalog.#>>) '{}'::text[]
$$;
COMMENT ON FUNCTION jobledger.version() IS
    'Version of the jobledger Python package this session runs; fails (category version_mismatch) if it is not the installed extension version.';
GRANT EXECUTE ON FUNCTION jobledger.version() TO PUBLIC;

-- from plpython/20_jobs.sql
CREATE OR REPLACE FUNCTION jobledger.define_job_py(
    name text, query text, destination text, mode text, params jsonb, timeout interval,
    max_attempts integer, description text
)
RETURNS jsonb
LANGUAGE plpython3u
SET search_path = pg_catalog, jobledger, pg_temp
AS $python$
# jobledger prelude, put into every PL/Python function by sql/assemble.py.
# Once per session: put this version's package directory first on sys.path
# and check that the package found there is the one this SQL was built for.
# Problems are returned as error outcomes (see jobledger.server), which the
# calling SQL function raises; the package may not be importable to help.
if GD.get("jobledger.version") != "0.4.0":
    import json

    def _jobledger_mismatch(message, hint):
        return json.dumps({"error": {"message": message, "sqlstate": "55000",
                                     "detail": "category: version_mismatch", "hint": hint}})

    if "jobledger.version" in GD:
        return _jobledger_mismatch(
            "jobledger %s is loaded in this session but the extension is now 0.4.0"
            % GD["jobledger.version"],
            "Reconnect: a session loads the jobledger package once.",
        )
    import sys
    _jobledger_dir = "@PYTHON_LIBDIR@/0.4.0"
    if _jobledger_dir not in sys.path:
        sys.path.insert(0, _jobledger_dir)
    try:
        import jobledger
        import jobledger.server
    except ImportError as _exc:
        return _jobledger_mismatch(
            "cannot import the jobledger 0.4.0 Python package from %s: %s" % (_jobledger_dir, _exc),
            "Run make install for jobledger 0.4.0 on the database server.",
        )
    if jobledger.__version__ != "0.4.0":
        return _jobledger_mismatch(
            "the jobledger package in %s is %s, not 0.4.0" % (_jobledger_dir, jobledger.__version__),
            "Run make install for jobledger 0.4.0 on the database server.",
        )
    GD["jobledger.version"] = "0.4.0"
import jobledger.server
return jobledger.server.define_job(plpy, name, query, destination, mode, params, timeout, max_attempts, description)
$python$;
COMMENT ON FUNCTION jobledger.define_job_py(text, text, text, text, jsonb, interval, integer, text) IS
    'Internal: the outcome of jobledger.define_job (see jobledger.outcome_value).';
REVOKE ALL ON FUNCTION jobledger.define_job_py(text, text, text, text, jsonb, interval, integer, text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION jobledger.define_job(
    name text,
    query text,
    destination text,
    mode text DEFAULT 'append',
    params jsonb DEFAULT NULL,
    timeout interval DEFAULT NULL,
    max_attempts integer DEFAULT 3,
    description text DEFAULT NULL
)
RETURNS integer
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
    SELECT (jobledger.outcome_value(jobledger.define_job_py(
                define_job.name, define_job.query, define_job.destination, define_job.mode,
                define_job.params, define_job.timeout, define_job.max_attempts, define_job.description
            )) OPERATOR(pg_catalog.#>>) '{}'::text[])::integer
$$;
COMMENT ON FUNCTION jobledger.define_job(text, text, text, text, jsonb, interval, integer, text) IS
    'Defines a job (the caller becomes its owner), or a new version of it when anything changed; returns the version. The template is checked (one SELECT, placeholders where values stand), the parameters'' declarations must match the placeholders, and the output must fit the destination.';
GRANT EXECUTE ON FUNCTION jobledger.define_job(text, text, text, text, jsonb, interval, integer, text) TO PUBLIC;

CREATE OR REPLACE FUNCTION jobledger.submit_job_py(
    job text, params jsonb, idempotency_key text, priority integer, run_after timestamptz, max_attempts integer
)
RETURNS jsonb
LANGUAGE plpython3u
SET search_path = pg_catalog, jobledger, pg_temp
AS $python$
# jobledger prelude, put into every PL/Python function by sql/assemble.py.
# Once per session: put this version's package directory first on sys.path
# and check that the package found there is the one this SQL was built for.
# Problems are returned as error outcomes (see jobledger.server), which the
# calling SQL function raises; the package may not be importable to help.
if GD.get("jobledger.version") != "0.4.0":
    import json

    def _jobledger_mismatch(message, hint):
        return json.dumps({"error": {"message": message, "sqlstate": "55000",
                                     "detail": "category: version_mismatch", "hint": hint}})

    if "jobledger.version" in GD:
        return _jobledger_mismatch(
            "jobledger %s is loaded in this session but the extension is now 0.4.0"
            % GD["jobledger.version"],
            "Reconnect: a session loads the jobledger package once.",
        )
    import sys
    _jobledger_dir = "@PYTHON_LIBDIR@/0.4.0"
    if _jobledger_dir not in sys.path:
        sys.path.insert(0, _jobledger_dir)
    try:
        import jobledger
        import jobledger.server
    except ImportError as _exc:
        return _jobledger_mismatch(
            "cannot import the jobledger 0.4.0 Python package from %s: %s" % (_jobledger_dir, _exc),
            "Run make install for jobledger 0.4.0 on the database server.",
        )
    if jobledger.__version__ != "0.4.0":
        return _jobledger_mismatch(
            "the jobledger package in %s is %s, not 0.4.0" % (_jobledger_dir, jobledger.__version__),
            "Run make install for jobledger 0.4.0 on the database server.",
        )
    GD["jobledger.version"] = "0.4.0"
import jobledger.server
return jobledger.server.submit_job(plpy, job, params, idempotency_key, priority, run_after, max_attempts)
$python$;
COMMENT ON FUNCTION jobledger.submit_job_py(text, jsonb, text, integer, timestamptz, integer) IS
    'Internal: the outcome of jobledger.submit_job (see jobledger.outcome_value).';
REVOKE ALL ON FUNCTION jobledger.submit_job_py(text, jsonb, text, integer, timestamptz, integer) FROM PUBLIC;

CREATE OR REPLACE FUNCTION jobledger.submit_job(
    job text,
    params jsonb DEFAULT '{}',
    idempotency_key text DEFAULT NULL,
    priority integer DEFAULT 0,
    run_after timestamptz DEFAULT NULL,
    max_attempts integer DEFAULT NULL
)
RETURNS uuid
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
    SELECT (jobledger.outcome_value(jobledger.submit_job_py(
                submit_job.job, submit_job.params, submit_job.idempotency_key, submit_job.priority,
                submit_job.run_after, submit_job.max_attempts
            )) OPERATOR(pg_catalog.#>>) '{}'::text[])::uuid
$$;
COMMENT ON FUNCTION jobledger.submit_job(text, jsonb, text, integer, timestamptz, integer) IS
    'Validates the parameters, renders the query with each value as one typed literal, checks the output against the destination and records a pending run; returns its id. The same idempotency_key for the same job returns the existing run.';
GRANT EXECUTE ON FUNCTION jobledger.submit_job(text, jsonb, text, integer, timestamptz, integer) TO PUBLIC;
