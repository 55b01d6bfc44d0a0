-- jobledger 0.5.0: install script, assembled by sql/assemble.py; do not edit.
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

-- migration 0.5.0/0001_version_checks sha256 512debae2490e23e496d1fcc95fe71a9f143a654b9d1f924d4e509326cf12657
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
INSERT INTO jobledger.migration (name, sha256, version)
    VALUES ('0.5.0/0001_version_checks', '512debae2490e23e496d1fcc95fe71a9f143a654b9d1f924d4e509326cf12657', '0.5.0');

-- migration 0.5.0/0002_grants_and_keys sha256 b59c16af1ef28f084059b389a9573d5a32ceb95a920cd7b1fc6b57703f40221a
-- Grants name a role by its own name (grant_job stored regrole's text, which
-- is quoted when the name needs quotes, and then matched no one).
UPDATE jobledger.job_grant AS g
   SET grantee = r.rolname
  FROM pg_catalog.pg_roles AS r
 WHERE g.grantee LIKE '"%"'
   AND r.oid = pg_catalog.to_regrole(g.grantee)
   AND NOT EXISTS (SELECT 1 FROM jobledger.job_grant AS o WHERE o.job = g.job AND o.grantee = r.rolname);

-- Idempotency keys belong to the role that submits: another role's key is
-- another key (it neither returns that role's run nor can squat it).
ALTER TABLE jobledger.run DROP CONSTRAINT run_idempotency_key;
ALTER TABLE jobledger.run ADD CONSTRAINT run_idempotency_key UNIQUE (job, submitted_by, idempotency_key);
COMMENT ON COLUMN jobledger.run.idempotency_key IS
    'Optional; unique per job and submitting role: the same role submitting the same key with the same parameters gets the existing run, with other parameters an idempotency_conflict.';
INSERT INTO jobledger.migration (name, sha256, version)
    VALUES ('0.5.0/0002_grants_and_keys', 'b59c16af1ef28f084059b389a9573d5a32ceb95a920cd7b1fc6b57703f40221a', '0.5.0');

-- migration 0.5.0/0003_restorable_keys sha256 e13ee263a980face432c890063835810fd3bc59ccff92e07f259651b7e9aebda
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
INSERT INTO jobledger.migration (name, sha256, version)
    VALUES ('0.5.0/0003_restorable_keys', 'e13ee263a980face432c890063835810fd3bc59ccff92e07f259651b7e9aebda', '0.5.0');

-- migration 0.5.0/0004_internal_schema sha256 69d6674f53b98ad506d76a292e777b3c1737cdffda8bc61d7d898fb988886f6f
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
INSERT INTO jobledger.migration (name, sha256, version)
    VALUES ('0.5.0/0004_internal_schema', '69d6674f53b98ad506d76a292e777b3c1737cdffda8bc61d7d898fb988886f6f', '0.5.0');

-- migration 0.5.0/0005_schedules sha256 c1ab6a3eb44aab9e0c2d12dcf9b604f3826ca6abc454c85c023896dac501d570
-- 0.5.0: schedules.  A schedule submits a job on every tick of a cron
-- expression; pg_cron fires the ticks (its cron.job row runs
-- jobledger_internal.tick as the schedule's owner), this table is the
-- schedule's definition.  Both are dumped by pg_dump: this table as an
-- extension configuration table, cron.job as pg_cron's
-- (docs/schedules.md, "Backups and restores").

CREATE TABLE jobledger.schedule (
    owner name NOT NULL,
    name text NOT NULL
        CONSTRAINT schedule_name_check CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_.-]*$' AND pg_catalog.length(name) <= 128),
    job text NOT NULL,
    cron text NOT NULL,
    params jsonb NOT NULL DEFAULT '{}' CHECK (pg_catalog.jsonb_typeof(params) = 'object'),
    priority integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (owner, name)
);
COMMENT ON TABLE jobledger.schedule IS
    'Schedules: a job submitted by its owner on every tick of a cron expression (pg_cron fires the ticks). Written by jobledger.schedule and jobledger.unschedule only.';
COMMENT ON COLUMN jobledger.schedule.owner IS
    'The role that made the schedule: pg_cron runs its ticks as this role, and each tick submits as it.';
COMMENT ON COLUMN jobledger.schedule.cron IS
    'When it ticks, in pg_cron''s syntax (checked by pg_cron), in pg_cron''s time zone.';
COMMENT ON COLUMN jobledger.schedule.params IS
    'The parameters each tick submits; string values of the form {{tick_date - 1}} are computed from the tick (docs/schedules.md).';
COMMENT ON COLUMN jobledger.schedule.priority IS 'The priority of the runs it submits.';
SELECT pg_catalog.pg_extension_config_dump('jobledger.schedule', '');

-- A role sees the schedules it (or a role it is a member of) owns.
ALTER TABLE jobledger.schedule ENABLE ROW LEVEL SECURITY;
CREATE POLICY schedule_visible ON jobledger.schedule FOR SELECT USING (
    pg_catalog.pg_has_role('pg_read_all_data', 'MEMBER')
    OR pg_catalog.pg_has_role(pg_catalog.to_regrole(pg_catalog.quote_ident(schedule.owner)), 'MEMBER')
);
GRANT SELECT ON jobledger.schedule TO PUBLIC;
INSERT INTO jobledger.migration (name, sha256, version)
    VALUES ('0.5.0/0005_schedules', 'c1ab6a3eb44aab9e0c2d12dcf9b604f3826ca6abc454c85c023896dac501d570', '0.5.0');

-- from sql/objects/05_calling_role.sql
-- No SET search_path, unlike every other function: a SQL function with a
-- SET clause is never inlined, and this one is asked on every submit_job,
-- where running it as a function call cost more than the rest of its query.
-- Inlined, its body is planned within its caller, which always pins
-- search_path; every name in it is qualified, the operator too, so it means
-- the same wherever it is planned.  Executable by PUBLIC: define_job runs
-- as its caller and asks it (it tells a role only its own name).
CREATE OR REPLACE FUNCTION jobledger_internal.calling_role()
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
COMMENT ON FUNCTION jobledger_internal.calling_role() IS
    'The role calling the jobledger API: the session''s SET ROLE role, else the session user (unchanged inside SECURITY DEFINER functions).';
REVOKE ALL ON FUNCTION jobledger_internal.calling_role() FROM PUBLIC;  -- the same ACL after an upgrade as after an install
GRANT EXECUTE ON FUNCTION jobledger_internal.calling_role() TO PUBLIC;

-- from sql/objects/06_run_application_name.sql
-- What a backend executing a run shows in pg_stat_activity.application_name
-- for the length of the run's transaction.  cancel_run, reconcile_orphaned
-- and the active_runs view recognise the backend by it (with its pid and
-- backend_start).  Every role may read pg_stat_activity's application_name,
-- so it must not name the run: it is a digest of the run's id, which only
-- those who may see the run know.
CREATE OR REPLACE FUNCTION jobledger_internal.run_application_name(run uuid)
RETURNS text
LANGUAGE sql
IMMUTABLE
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
    SELECT 'jobledger run ' OPERATOR(pg_catalog.||)
           pg_catalog.left(pg_catalog.md5('jobledger run ' OPERATOR(pg_catalog.||) run_application_name.run::pg_catalog.text), 20)
$$;
COMMENT ON FUNCTION jobledger_internal.run_application_name(uuid) IS
    'The application_name of the backend executing a run: a digest of the run''s id that tells nobody else which run it is.';
REVOKE ALL ON FUNCTION jobledger_internal.run_application_name(uuid) FROM PUBLIC;  -- the same ACL after an upgrade as after an install
-- PUBLIC: the runner sets it as the job's owner (after SET ROLE), in either runner mode.
GRANT EXECUTE ON FUNCTION jobledger_internal.run_application_name(uuid) TO PUBLIC;

-- from sql/objects/07_outcome.sql
-- PL/Python cannot raise a clean PostgreSQL error: an exception leaving a
-- PL/Python function is reported as "plpy.Error: <message>" with a Python
-- traceback as its CONTEXT.  So each PL/Python entry point (the *_py
-- functions in plpython/) returns an outcome instead, {"value": v} or
-- {"error": {"message", "sqlstate", "detail", "hint"}}, and the public SQL
-- function passes it through this, which raises the error as PostgreSQL's
-- own: the message as written, the SQLSTATE, DETAIL with the category line.
CREATE OR REPLACE FUNCTION jobledger_internal.outcome_value(outcome jsonb)
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
COMMENT ON FUNCTION jobledger_internal.outcome_value(jsonb) IS
    'Internal: the value of a PL/Python entry point''s outcome, or its error raised as a PostgreSQL error (message, SQLSTATE, DETAIL, HINT).';
-- PUBLIC: define_job runs with its caller's rights and raises through it.
REVOKE ALL ON FUNCTION jobledger_internal.outcome_value(jsonb) FROM PUBLIC;  -- the same ACL after an upgrade as after an install
GRANT EXECUTE ON FUNCTION jobledger_internal.outcome_value(jsonb) TO PUBLIC;

-- from sql/objects/08_destination_kind.sql
-- What kind of destination a stored job_version.destination is: 'table',
-- 'result' or 'parquet' (jobledger.core.destinations describes them, and
-- its kind() is the same rule for Python).  The one rule for SQL that reads
-- stored destinations: submit_job's query asks it before looking a table up
-- (to_regclass would raise on the others), and so may the runner's claim.
-- define_job stores table names schema-qualified (public.result), so a
-- stored destination is exactly 'result', or starts with 'parquet:', only
-- when it is no table.
--
-- No SET search_path, like calling_role (05): a SQL function with a SET
-- clause is never inlined, and a function call here would be planned anew in
-- every submit_job.  Inlined, its body is planned within its caller, which
-- always pins search_path; every name in it is qualified, the operator too,
-- so it means the same wherever it is planned.  STABLE rather than
-- IMMUTABLE, as the other inlined functions (it is pure either way).
CREATE OR REPLACE FUNCTION jobledger_internal.destination_kind(destination text)
RETURNS text
LANGUAGE sql
STABLE
PARALLEL SAFE
AS $$
    SELECT CASE WHEN destination_kind.destination OPERATOR(pg_catalog.=) 'result' THEN 'result'
                WHEN pg_catalog.starts_with(destination_kind.destination, 'parquet:') THEN 'parquet'
                WHEN destination_kind.destination IS NOT NULL THEN 'table'
           END
$$;
COMMENT ON FUNCTION jobledger_internal.destination_kind(text) IS
    'The kind of a stored job destination: table, result or parquet (for parquet:<directory>).';
REVOKE ALL ON FUNCTION jobledger_internal.destination_kind(text) FROM PUBLIC;

-- from sql/objects/10_job_version_immutable.sql
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

-- from sql/objects/11_ledger_references.sql
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

-- from sql/objects/15_run_transitions.sql
-- The pieces the run state machine's transitions share (docs/state-machine.md
-- draws the machine and names the function of every transition):
--
-- * fenced_run and fence: is this run still running as this attempt of this
--   worker?  Every transition of a claimed run (complete_run, fail_run,
--   release_run, lock_run, report_progress, attach_run and the *_attached_*
--   functions) asks this, so that a runner that lost its run (cancelled,
--   taken over after its lease) can never overwrite what happened since.
-- * executing_here: is this run being executed on the calling connection?
--   (emit_output, and the *_attached_* functions on the owner's connection.)
-- * back_to_pending and fail_for_good: the two ends of a failed attempt
--   (fail_run, reconcile_orphaned; release_run uses the first).  A run back
--   to pending belongs to nobody; a run that failed for good keeps the worker
--   and backend of its last attempt, as a succeeded or cancelled run does.
-- * close_attempt: the attempt's row in the history, when its attempt ends.
--
-- Internal: only the transitions call them (SECURITY DEFINER, as the
-- extension's owner); EXECUTE is revoked from PUBLIC.  They check no rights
-- of their own.

CREATE OR REPLACE FUNCTION jobledger_internal.backend_start()
RETURNS timestamptz
LANGUAGE sql
STABLE
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
    SELECT a.backend_start FROM pg_catalog.pg_stat_activity AS a WHERE a.pid = pg_catalog.pg_backend_pid()
$$;
COMMENT ON FUNCTION jobledger_internal.backend_start() IS
    'Internal: backend_start of the calling backend, which with its pid names it (a pid alone can be reused).';
REVOKE ALL ON FUNCTION jobledger_internal.backend_start() FROM PUBLIC;


CREATE OR REPLACE FUNCTION jobledger_internal.fenced_run(
    run uuid, attempt integer, worker text, skip_locked boolean DEFAULT false
)
RETURNS jobledger.run
LANGUAGE plpgsql
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    current jobledger.run;
BEGIN
    -- The fence, and the lock: the row stays locked until the caller's
    -- transaction ends, so nobody else (cancel_run, reconcile_orphaned)
    -- decides the run meanwhile; they wait, or skip it.  Under READ
    -- COMMITTED a row changed since the snapshot is checked again once
    -- locked.  skip_locked: a row someone holds is being decided right now;
    -- it counts as not ours rather than being waited for.
    IF fenced_run.skip_locked THEN
        SELECT r.* INTO current FROM jobledger.run AS r
         WHERE r.id = fenced_run.run AND r.status = 'running'
           AND r.attempt = fenced_run.attempt AND r.worker = fenced_run.worker
           FOR UPDATE SKIP LOCKED;
    ELSE
        SELECT r.* INTO current FROM jobledger.run AS r
         WHERE r.id = fenced_run.run AND r.status = 'running'
           AND r.attempt = fenced_run.attempt AND r.worker = fenced_run.worker
           FOR UPDATE;
    END IF;
    RETURN current;
END
$$;
COMMENT ON FUNCTION jobledger_internal.fenced_run(uuid, integer, text, boolean) IS
    'Internal, the fence of every transition of a claimed run: the run''s row, locked until the transaction ends, if it is still running with this attempt on this worker; else a row of NULLs. skip_locked: a row locked by someone else counts as not ours.';
REVOKE ALL ON FUNCTION jobledger_internal.fenced_run(uuid, integer, text, boolean) FROM PUBLIC;


CREATE OR REPLACE FUNCTION jobledger_internal.fence(run uuid, attempt integer, worker text, hint text)
RETURNS jobledger.run
LANGUAGE plpgsql
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    current jobledger.run := jobledger_internal.fenced_run(fence.run, fence.attempt, fence.worker);
    status_now jobledger.run_status;
BEGIN
    IF current.id IS NULL THEN
        -- Raise rather than return false: the caller's transaction, and so
        -- its write to the destination, cannot commit, even if the caller
        -- pipelined its COMMIT or forgot to look at a result.
        SELECT r.status INTO status_now FROM jobledger.run AS r WHERE r.id = fence.run;
        RAISE EXCEPTION 'run % attempt % is no longer running on worker % (it is %)',
                fence.run, fence.attempt, fence.worker, coalesce(status_now::text, 'gone')
            USING ERRCODE = 'object_not_in_prerequisite_state', DETAIL = 'category: run_fenced',
                  HINT = fence.hint;
    END IF;
    RETURN current;
END
$$;
COMMENT ON FUNCTION jobledger_internal.fence(uuid, integer, text, text) IS
    'Internal: fenced_run, raising run_fenced (with the given hint) when the run is no longer running with this attempt on this worker.';
REVOKE ALL ON FUNCTION jobledger_internal.fence(uuid, integer, text, text) FROM PUBLIC;


CREATE OR REPLACE FUNCTION jobledger_internal.executing_here(current jobledger.run)
RETURNS boolean
LANGUAGE sql
STABLE
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
    -- claim_runs (or attach_run) recorded the backend executing the run.
    SELECT coalesce(executing_here.current.status = 'running'
                    AND executing_here.current.backend_pid = pg_catalog.pg_backend_pid()
                    AND executing_here.current.backend_start IS NOT DISTINCT FROM jobledger_internal.backend_start(),
                    false)
$$;
COMMENT ON FUNCTION jobledger_internal.executing_here(jobledger.run) IS
    'Internal: whether the run is running and executed by the calling backend (its pid and backend_start).';
REVOKE ALL ON FUNCTION jobledger_internal.executing_here(jobledger.run) FROM PUBLIC;


CREATE OR REPLACE FUNCTION jobledger_internal.close_attempt(
    run uuid, attempt integer, status jobledger.run_status, finished_at timestamptz,
    error text DEFAULT NULL, error_sqlstate text DEFAULT NULL
)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
    UPDATE jobledger.run_attempt AS a
       SET status = close_attempt.status, finished_at = close_attempt.finished_at,
           error = close_attempt.error, error_sqlstate = close_attempt.error_sqlstate
     WHERE a.run = close_attempt.run AND a.attempt = close_attempt.attempt AND a.status = 'running'
$$;
COMMENT ON FUNCTION jobledger_internal.close_attempt(uuid, integer, jobledger.run_status, timestamptz, text, text) IS
    'Internal: ends an attempt''s row in the history (succeeded, failed or cancelled, when, and why) if it is still open.';
REVOKE ALL ON FUNCTION jobledger_internal.close_attempt(uuid, integer, jobledger.run_status, timestamptz, text, text)
    FROM PUBLIC;


CREATE OR REPLACE FUNCTION jobledger_internal.back_to_pending(
    run uuid, attempt integer, run_after timestamptz, error text, error_sqlstate text, error_category text
)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
    -- Nobody's any more: no worker, backend, start or heartbeat, so the next
    -- claim starts afresh.  The caller has fenced (or locked) the run.
    UPDATE jobledger.run AS r
       SET status = 'pending',
           attempt = back_to_pending.attempt,
           run_after = back_to_pending.run_after,
           started_at = NULL,
           finished_at = NULL,
           worker = NULL,
           backend_pid = NULL,
           backend_start = NULL,
           heartbeat_at = NULL,
           error = back_to_pending.error,
           error_sqlstate = back_to_pending.error_sqlstate,
           error_category = back_to_pending.error_category
     WHERE r.id = back_to_pending.run
$$;
COMMENT ON FUNCTION jobledger_internal.back_to_pending(uuid, integer, timestamptz, text, text, text) IS
    'Internal: puts a run back to pending, claimable from run_after, with the attempts it has used and the error that sent it back (or NULL); it keeps no worker, backend, start or heartbeat.';
REVOKE ALL ON FUNCTION jobledger_internal.back_to_pending(uuid, integer, timestamptz, text, text, text) FROM PUBLIC;


CREATE OR REPLACE FUNCTION jobledger_internal.fail_for_good(
    run uuid, error text, error_sqlstate text, error_category text
)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
    -- Terminal: worker, backend_pid, backend_start, started_at and
    -- heartbeat_at stay those of the last attempt, which is what a DBA
    -- reading the ledger wants to know (who ran it, when it was last heard
    -- of), as for a succeeded or cancelled run.
    UPDATE jobledger.run AS r
       SET status = 'failed',
           finished_at = pg_catalog.clock_timestamp(),
           error = fail_for_good.error,
           error_sqlstate = fail_for_good.error_sqlstate,
           error_category = fail_for_good.error_category
     WHERE r.id = fail_for_good.run
$$;
COMMENT ON FUNCTION jobledger_internal.fail_for_good(uuid, text, text, text) IS
    'Internal: fails a run for good with its error (message, SQLSTATE, category); it keeps the worker and backend of its last attempt.';
REVOKE ALL ON FUNCTION jobledger_internal.fail_for_good(uuid, text, text, text) FROM PUBLIC;

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
    changed integer := 0;
    lost record;
BEGIN
    IF effective_lease <= interval '0' THEN
        RAISE EXCEPTION 'the lease must be positive, not %', effective_lease
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    IF reason IS NULL OR reason = '' THEN
        RAISE EXCEPTION 'reconcile_orphaned needs a reason'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;

    -- Running runs whose executing backend is gone: its transaction has
    -- rolled back, so nothing was written and the run can go again.  The pid
    -- alone could have been reused; backend_start tells them apart.  SECURITY
    -- DEFINER lets this see every backend in pg_stat_activity.  Runs silent
    -- for a whole lease (a partitioned or stopped runner) count too: their
    -- late commit is refused by the fenced flip.  SKIP LOCKED: a row someone
    -- holds is being acted on already, and concurrent reconcilers split the
    -- work instead of waiting.
    FOR lost IN
        SELECT r.id, r.attempt, r.max_attempts, r.backend_pid, r.backend_start
          FROM jobledger.run AS r
         WHERE r.status = 'running'
           AND ((r.backend_pid IS NOT NULL
                 AND NOT EXISTS (SELECT 1
                                   FROM pg_catalog.pg_stat_activity AS a
                                  WHERE a.pid = r.backend_pid
                                    AND a.backend_start IS NOT DISTINCT FROM r.backend_start))
                OR coalesce(r.heartbeat_at, r.started_at) < pg_catalog.now() - effective_lease)
           FOR UPDATE OF r SKIP LOCKED
    LOOP
        -- Close the lost attempt so the history says what happened to it;
        -- then the run goes again if it has attempts left, else it fails.
        PERFORM jobledger_internal.close_attempt(lost.id, lost.attempt, 'failed', pg_catalog.now(),
                                                 reconcile_orphaned.reason);
        IF lost.attempt < lost.max_attempts THEN
            PERFORM jobledger_internal.back_to_pending(lost.id, lost.attempt, pg_catalog.now(), NULL, NULL, NULL);
        ELSE
            PERFORM jobledger_internal.fail_for_good(lost.id, reconcile_orphaned.reason, NULL, 'runner_lost');
        END IF;
        changed := changed + 1;

        -- A run taken over because its lease expired may still have a live
        -- backend (a stopped or partitioned runner): its transaction can no
        -- longer commit (the fenced complete_run refuses it) but still holds
        -- its locks, which would block the retry (overwrite deletes every
        -- row, merge updates them).  Terminate it, but only the very backend
        -- (pid and backend_start) and only while it is still executing this
        -- run (the runner names the run in application_name for its
        -- transaction).
        PERFORM pg_catalog.pg_terminate_backend(a.pid)
           FROM pg_catalog.pg_stat_activity AS a
          WHERE a.pid = lost.backend_pid AND a.backend_start = lost.backend_start
            AND a.application_name = jobledger_internal.run_application_name(lost.id)
            AND a.pid <> pg_catalog.pg_backend_pid();
    END LOOP;
    RETURN changed;
END
$$;
COMMENT ON FUNCTION jobledger.reconcile_orphaned(text, interval) IS
    'Recovers running runs whose executing backend is gone or whose heartbeat is older than the lease (argument, else the jobledger.lease setting, else 1 minute): back to pending if attempts are left, else failed with reason (keeping the worker and backend of the lost attempt, as fail_run does). Closes the lost attempt, and terminates the backend of a run taken over from a live one (still executing it) so its locks go. Returns how many runs changed. Safe to call concurrently.';
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
       r.parameters,
       -- 0.5.0: what ran and how it ended, for psql users.
       r.rendered_sql,
       r.error_sqlstate,
       r.idempotency_key
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

CREATE OR REPLACE VIEW jobledger.refused_versions WITH (security_invoker = true) AS
SELECT c.job,
       c.version,
       c.problem,
       c.checked_at
  FROM jobledger.job_version_check AS c
 WHERE c.problem IS NOT NULL;
COMMENT ON VIEW jobledger.refused_versions IS
    'Job versions that can no longer be submitted under the current template rules (recorded by an older jobledger and checked again by the upgrade), with the reason; their owners define the jobs again. Shows the versions the querying role may see.';
GRANT SELECT ON jobledger.refused_versions TO PUBLIC;

-- from sql/objects/50_job_admin.sql
-- The ledger write of define_job, the only part of it that runs with the
-- extension owner's rights.  Anyone may call it directly, so it trusts no
-- argument: under one lock on the job name it decides the owner (the
-- calling role for a new job; for an existing one the caller must be a
-- member of its owner, checked right before the version is written), and it
-- checks the template itself (jobledger_internal.check_template_py: PostgreSQL's
-- grammar in process, nothing executed).  The analysis (output columns by
-- kind of value) is stored as given: it only decides what submit_job
-- refuses early, and runs execute with the owner's rights whatever it says.
CREATE OR REPLACE FUNCTION jobledger_internal.record_job_version(
    job_name text, query text, destination text, mode text,
    params jsonb, timeout interval, max_attempts integer, description text, analysis jsonb
)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    caller name := jobledger_internal.calling_role();
    job_owner name;
    current jobledger.job_version;
    next_version integer;
    checked jsonb;
BEGIN
    IF job_name IS NULL OR query IS NULL OR destination IS NULL OR mode IS NULL THEN
        RAISE EXCEPTION 'a job needs a name, a query, a destination and a mode'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    IF timeout IS NOT NULL AND (timeout < interval '1 millisecond' OR timeout > interval '2147483647 milliseconds') THEN
        RAISE EXCEPTION 'timeout % is out of range: from 1 millisecond to 24 days 20:31:23.647 (statement_timeout''s range)', timeout
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    checked := jobledger_internal.outcome_value(jobledger_internal.check_template_py(query, params::text));
    -- One lock on the name for the owner check and the version insert: a
    -- definition that waited cannot become a version of a job someone else
    -- created meanwhile.
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('jobledger.job ' || job_name, 0));
    INSERT INTO jobledger.job AS j (name, owner, description)
    VALUES (job_name, caller, record_job_version.description)
    ON CONFLICT (name) DO NOTHING;
    SELECT j.owner INTO job_owner FROM jobledger.job AS j WHERE j.name = job_name FOR UPDATE;
    IF NOT (pg_catalog.to_regrole(pg_catalog.quote_ident(job_owner)) IS NOT NULL
            AND pg_catalog.pg_has_role(caller, pg_catalog.to_regrole(pg_catalog.quote_ident(job_owner)), 'MEMBER')) THEN
        RAISE EXCEPTION 'job "%" exists and % may not change it', job_name, caller
            USING ERRCODE = 'insufficient_privilege', DETAIL = 'category: permission_denied',
                  HINT = 'Only its owner (or a member of the owner role) defines new versions; choose another name.';
    END IF;
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
       AND current.max_attempts = record_job_version.max_attempts
       AND EXISTS (SELECT 1 FROM jobledger.job_version_check AS c
                    WHERE c.job = job_name AND c.version = current.version AND c.problem IS NULL) THEN
        RETURN current.version;
    END IF;
    SELECT coalesce(max(v.version), 0) + 1 INTO next_version FROM jobledger.job_version AS v WHERE v.job = job_name;
    INSERT INTO jobledger.job_version (job, version, query, params, destination, mode, timeout, max_attempts, created_by)
    VALUES (job_name, next_version, record_job_version.query, record_job_version.params,
            record_job_version.destination, record_job_version.mode, record_job_version.timeout,
            record_job_version.max_attempts, caller);
    INSERT INTO jobledger.job_version_check (job, version, placeholders, query_end, shapes, dependencies)
    VALUES (job_name, next_version, checked -> 'placeholders', (checked ->> 'query_end')::integer,
            coalesce(analysis -> 'shapes', '{}'), coalesce(analysis -> 'dependencies', '[]'));
    UPDATE jobledger.job AS j SET current_version = next_version, updated_at = pg_catalog.now() WHERE j.name = job_name;
    RETURN next_version;
END
$$;
COMMENT ON FUNCTION jobledger_internal.record_job_version(text, text, text, text, jsonb, interval, integer, text, jsonb) IS
    'Internal to define_job: writes the job and, if anything changed, its next version; checks the owner under a lock on the name and the template itself.';
GRANT EXECUTE ON FUNCTION jobledger_internal.record_job_version(text, text, text, text, jsonb, interval, integer, text, jsonb) TO PUBLIC;

CREATE OR REPLACE FUNCTION jobledger_internal.owned_job(job_name text)
RETURNS jobledger.job
LANGUAGE plpgsql
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    job_row jobledger.job;
    role_name name := jobledger_internal.calling_role();
BEGIN
    IF job_name IS NULL THEN
        RAISE EXCEPTION 'a job name is needed'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    SELECT j.* INTO job_row FROM jobledger.job AS j WHERE j.name = job_name FOR UPDATE;
    -- A job the caller may not see (row-level security on jobledger.job)
    -- looks absent: the same error, nothing about its owner.
    IF NOT FOUND OR NOT (
           pg_catalog.pg_has_role(role_name, 'pg_read_all_data', 'MEMBER')
           OR coalesce(pg_catalog.pg_has_role(role_name, pg_catalog.to_regrole(pg_catalog.quote_ident(job_row.owner)),
                                              'MEMBER'), false)
           OR EXISTS (SELECT 1 FROM jobledger.job_grant AS g
                       WHERE g.job = job_row.name
                         AND coalesce(pg_catalog.pg_has_role(role_name,
                                          pg_catalog.to_regrole(pg_catalog.quote_ident(g.grantee)), 'MEMBER'),
                                      false))) THEN
        RAISE EXCEPTION 'there is no job "%"', job_name
            USING ERRCODE = 'undefined_object', DETAIL = 'category: unknown_job';
    END IF;
    IF NOT coalesce(pg_catalog.pg_has_role(role_name, pg_catalog.to_regrole(pg_catalog.quote_ident(job_row.owner)),
                                           'MEMBER'), false) THEN
        RAISE EXCEPTION '% may not change job "%": only its owner (or a member of the owner role) may', role_name, job_name
            USING ERRCODE = 'insufficient_privilege', DETAIL = 'category: permission_denied';
    END IF;
    RETURN job_row;
END
$$;
COMMENT ON FUNCTION jobledger_internal.owned_job(text) IS
    'Internal: the job, locked, if the calling role is its owner or a member of it; else unknown_job (also for a job the caller may not see) or permission_denied.';
REVOKE ALL ON FUNCTION jobledger_internal.owned_job(text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION jobledger.grant_job(job text, role pg_catalog.regrole)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
BEGIN
    IF grant_job.role IS NULL THEN
        RAISE EXCEPTION 'grant_job needs a role'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    PERFORM jobledger_internal.owned_job(grant_job.job);
    -- The role's own name, as pg_roles has it: regrole's text is quoted
    -- when the name needs quotes, and grants are matched by name.
    INSERT INTO jobledger.job_grant (job, grantee, granted_by)
    SELECT grant_job.job, r.rolname, jobledger_internal.calling_role()
      FROM pg_catalog.pg_roles AS r WHERE r.oid = grant_job.role
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
    IF revoke_job.role IS NULL THEN
        RAISE EXCEPTION 'revoke_job needs a role'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    PERFORM jobledger_internal.owned_job(revoke_job.job);
    DELETE FROM jobledger.job_grant AS g
     WHERE g.job = revoke_job.job
       AND g.grantee = (SELECT r.rolname FROM pg_catalog.pg_roles AS r WHERE r.oid = revoke_job.role);
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
    PERFORM jobledger_internal.owned_job(drop_job.name);
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

-- from sql/objects/52_denied_dependencies.sql
-- What a job's query uses that its owner may not use (any more): the one
-- rule for define_job (right after PostgreSQL named the dependencies) and
-- for every submit_job (privileges can be revoked after define).
-- Dependencies are names (jobledger.job_version_check.dependencies): a
-- relation with the column used (NULL: the whole row) or a function's
-- signature.  Something that no longer exists cannot be used either.
-- No SET search_path, like calling_role: a SQL function with a SET clause
-- is planned again on every call, and submit_job asks this on every call;
-- without one PostgreSQL inlines it into its caller's (cached, path-pinned)
-- plan.  Every name in it is qualified, operators too.
CREATE OR REPLACE FUNCTION jobledger_internal.denied_dependencies(owner name, dependencies jsonb)
RETURNS TABLE (what text)
LANGUAGE sql
STABLE
AS $$
    WITH role AS (
        SELECT pg_catalog.to_regrole(pg_catalog.quote_ident(denied_dependencies.owner)) AS oid
    ), deps AS (
        SELECT d OPERATOR(pg_catalog.->>) 'schema' AS nsp, d OPERATOR(pg_catalog.->>) 'relation' AS rel,
               d OPERATOR(pg_catalog.->>) 'column' AS col, d OPERATOR(pg_catalog.->>) 'function' AS fn
          FROM pg_catalog.jsonb_array_elements(coalesce(denied_dependencies.dependencies, '[]'::pg_catalog.jsonb)) AS d
    ), resolved AS (
        SELECT deps.*, c.oid AS rel_oid, c.relnamespace AS rel_nsp, p.oid AS fn_oid, p.pronamespace AS fn_nsp
          FROM deps
          LEFT JOIN pg_catalog.pg_namespace AS n ON n.nspname OPERATOR(pg_catalog.=) deps.nsp
          LEFT JOIN pg_catalog.pg_class AS c
                 ON c.relnamespace OPERATOR(pg_catalog.=) n.oid AND c.relname OPERATOR(pg_catalog.=) deps.rel
          LEFT JOIN pg_catalog.pg_proc AS p ON p.oid OPERATOR(pg_catalog.=) pg_catalog.to_regprocedure(deps.fn)
    )
    SELECT CASE
             WHEN r.fn IS NOT NULL THEN pg_catalog.format('function %s', r.fn)
             WHEN r.rel_oid IS NOT NULL
                  AND NOT coalesce(pg_catalog.has_schema_privilege(role.oid, r.rel_nsp, 'USAGE'), false)
               THEN pg_catalog.format('schema %I', r.nsp)
             WHEN r.col IS NOT NULL THEN pg_catalog.format('column %I of table %I.%I', r.col, r.nsp, r.rel)
             ELSE pg_catalog.format('table %I.%I', r.nsp, r.rel)
           END OPERATOR(pg_catalog.||)
           CASE WHEN coalesce(r.fn_oid, r.rel_oid) IS NULL THEN ' (it no longer exists)' ELSE '' END
      FROM resolved AS r, role
     WHERE CASE
             WHEN r.fn IS NOT NULL
               THEN NOT coalesce(pg_catalog.has_function_privilege(role.oid, r.fn_oid, 'EXECUTE')
                                 AND pg_catalog.has_schema_privilege(role.oid, r.fn_nsp, 'USAGE'), false)
             WHEN r.col IS NOT NULL
               THEN NOT coalesce(pg_catalog.has_schema_privilege(role.oid, r.rel_nsp, 'USAGE')
                                 AND pg_catalog.has_column_privilege(role.oid, r.rel_oid, r.col, 'SELECT'), false)
             ELSE NOT coalesce(pg_catalog.has_schema_privilege(role.oid, r.rel_nsp, 'USAGE')
                               AND pg_catalog.has_any_column_privilege(role.oid, r.rel_oid, 'SELECT'), false)
           END
     ORDER BY 1
$$;
COMMENT ON FUNCTION jobledger_internal.denied_dependencies(name, jsonb) IS
    'What of a job''s dependencies (relations, columns, functions, by name) the owner may not use, or that no longer exists; define_job and every submit_job ask it.';
REVOKE ALL ON FUNCTION jobledger_internal.denied_dependencies(name, jsonb) FROM PUBLIC;  -- the same ACL after an upgrade as after an install
-- PUBLIC: define_job runs with its caller's rights and asks it; it tells only
-- what PostgreSQL's has_*_privilege functions tell everyone.
GRANT EXECUTE ON FUNCTION jobledger_internal.denied_dependencies(name, jsonb) TO PUBLIC;

-- from sql/objects/60_runner.sql
-- The runner's state transitions: claim, complete, fail, heartbeat, release.
--
-- Only runners call these (REVOKE ... FROM PUBLIC; grant EXECUTE to the
-- runner's role, see README "The runner").  Every transition of a claimed
-- run is fenced (jobledger_internal.fenced_run, 15_run_transitions.sql): it
-- applies only while the run is still `running` with the caller's attempt
-- and worker, so a runner that lost its run (reconciled after its lease,
-- cancelled) can never overwrite what happened since.  docs/state-machine.md
-- draws every transition.

CREATE OR REPLACE FUNCTION jobledger_internal.claim_runs(worker text, max_runs integer DEFAULT 1)
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
    my_start timestamptz := jobledger_internal.backend_start();
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
        ON t.oid = CASE WHEN jobledger_internal.destination_kind(v.destination) OPERATOR(pg_catalog.=) 'table'
                        THEN pg_catalog.to_regclass(v.destination) END
      LEFT JOIN pg_catalog.pg_namespace AS n ON n.oid = t.relnamespace
     ORDER BY c.priority DESC, c.run_after, c.created_at;
END
$$;
COMMENT ON FUNCTION jobledger_internal.claim_runs(text, integer) IS
    'Runner only: claims up to max_runs runnable pending runs (priority, then age; FOR UPDATE SKIP LOCKED), marks them running with this worker, the next attempt and the calling connection''s backend (which must be the one that executes them), opens their attempts, and returns what executing them needs.';
REVOKE ALL ON FUNCTION jobledger_internal.claim_runs(text, integer) FROM PUBLIC;


CREATE OR REPLACE FUNCTION jobledger_internal.complete_run(
    run uuid, attempt integer, worker text, rows_written bigint, snapshot_id text
)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    -- clock_timestamp(): now() is when the run's transaction began.
    finished timestamptz := pg_catalog.clock_timestamp();
BEGIN
    -- Called in the transaction that wrote the destination.  The fence: only
    -- a run still running with this attempt on this worker succeeds; any
    -- other raises, so that the write rolls back with it.
    PERFORM jobledger_internal.fence(complete_run.run, complete_run.attempt, complete_run.worker,
        'The run was cancelled, or taken over after its lease expired; this attempt''s writes roll back.');
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
     WHERE r.id = complete_run.run;
    PERFORM jobledger_internal.close_attempt(complete_run.run, complete_run.attempt, 'succeeded', finished);
END
$$;
COMMENT ON FUNCTION jobledger_internal.complete_run(uuid, integer, text, bigint, text) IS
    'Runner only, in the transaction that wrote the destination (or, for a destination outside the database, that records what was published): flips the run to succeeded with rows_written and snapshot_id (the dataset version published, else NULL) if it is still running with this attempt on this worker; otherwise raises (category run_fenced) so that the whole transaction, write included, rolls back.';
REVOKE ALL ON FUNCTION jobledger_internal.complete_run(uuid, integer, text, bigint, text) FROM PUBLIC;

-- 0.3.0's signature, for table destinations (and runners of 0.3.0).
CREATE OR REPLACE FUNCTION jobledger_internal.complete_run(run uuid, attempt integer, worker text, rows_written bigint)
RETURNS void
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
    SELECT jobledger_internal.complete_run(complete_run.run, complete_run.attempt, complete_run.worker,
                                  complete_run.rows_written, NULL::pg_catalog.text)
$$;
COMMENT ON FUNCTION jobledger_internal.complete_run(uuid, integer, text, bigint) IS
    'Runner only: complete_run with no snapshot_id (table destinations); see the five-argument form.';
REVOKE ALL ON FUNCTION jobledger_internal.complete_run(uuid, integer, text, bigint) FROM PUBLIC;


CREATE OR REPLACE FUNCTION jobledger_internal.fail_run(
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
    current := jobledger_internal.fenced_run(fail_run.run, fail_run.attempt, fail_run.worker);
    IF current.id IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM jobledger_internal.close_attempt(fail_run.run, fail_run.attempt, 'failed', pg_catalog.clock_timestamp(),
                                             fail_run.error, fail_run.error_sqlstate);
    IF NOT (fail_run.retry AND current.attempt < current.max_attempts) THEN
        PERFORM jobledger_internal.fail_for_good(fail_run.run, fail_run.error, fail_run.error_sqlstate,
                                                 fail_run.error_category);
        RETURN 'failed';
    END IF;
    -- A retry waits backoff * 2^(attempt - 1), at most an hour.  The error
    -- stays on the run while the retry is pending, so psql shows why.
    PERFORM jobledger_internal.back_to_pending(
        fail_run.run, current.attempt,
        pg_catalog.clock_timestamp() + LEAST(fail_run.backoff * pg_catalog.power(2, current.attempt - 1),
                                             interval '1 hour'),
        fail_run.error, fail_run.error_sqlstate, fail_run.error_category);
    RETURN 'pending';
END
$$;
COMMENT ON FUNCTION jobledger_internal.fail_run(uuid, integer, text, text, text, text, boolean, interval) IS
    'Runner only: records a failed attempt (error, SQLSTATE, category). With retry and attempts left the run goes back to pending after backoff * 2^(attempt-1) (at most an hour), else it fails. Fenced like complete_run; returns the new status, or NULL if the run was no longer this attempt''s.';
REVOKE ALL ON FUNCTION jobledger_internal.fail_run(uuid, integer, text, text, text, text, boolean, interval) FROM PUBLIC;


CREATE OR REPLACE FUNCTION jobledger_internal.heartbeat(worker text, runs uuid[])
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
COMMENT ON FUNCTION jobledger_internal.heartbeat(text, uuid[]) IS
    'Runner only: advances heartbeat_at of the given runs still running on this worker, so reconcile_orphaned''s lease does not take them; returns how many.';
REVOKE ALL ON FUNCTION jobledger_internal.heartbeat(text, uuid[]) FROM PUBLIC;


CREATE OR REPLACE FUNCTION jobledger_internal.release_run(run uuid, attempt integer, worker text)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    current jobledger.run := jobledger_internal.fenced_run(release_run.run, release_run.attempt, release_run.worker);
BEGIN
    -- A runner shutting down gives back a run it had to interrupt: the
    -- attempt rolled back and was nobody's fault, so it does not count (the
    -- run keeps its place in line, its attempts and the error of an earlier
    -- one) and leaves no history.
    IF current.id IS NULL THEN
        RETURN false;
    END IF;
    PERFORM jobledger_internal.back_to_pending(release_run.run, current.attempt - 1, current.run_after,
                                               current.error, current.error_sqlstate, current.error_category);
    DELETE FROM jobledger.run_attempt AS a WHERE a.run = release_run.run AND a.attempt = release_run.attempt;
    RETURN true;
END
$$;
COMMENT ON FUNCTION jobledger_internal.release_run(uuid, integer, text) IS
    'Runner only, when shutting down: puts a run it interrupted back to pending without counting the attempt. Fenced like complete_run; returns whether it did.';
REVOKE ALL ON FUNCTION jobledger_internal.release_run(uuid, integer, text) FROM PUBLIC;

-- from sql/objects/61_cancel_run.sql
CREATE OR REPLACE FUNCTION jobledger.cancel_run(run uuid)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    role_name name := jobledger_internal.calling_role();
    current jobledger.run;
    job_owner name;
    may_cancel boolean;
    reason text;
BEGIN
    -- Lock the run: a runner completing or failing it waits for this
    -- decision, and then its fenced transition finds it cancelled.
    SELECT r.* INTO current FROM jobledger.run AS r WHERE r.id = cancel_run.run FOR UPDATE;
    SELECT j.owner INTO job_owner FROM jobledger.job AS j WHERE j.name = current.job;
    -- Who may: the run's submitter, the job's owner, members of either, and
    -- superusers (pg_has_role is true for them).  A role that no longer
    -- exists has no members.  A run the caller may not even see (row-level
    -- security on jobledger.run) looks absent: the same error as no run.
    may_cancel := coalesce(pg_catalog.pg_has_role(role_name,
                               pg_catalog.to_regrole(pg_catalog.quote_ident(current.submitted_by)), 'MEMBER'), false)
               OR coalesce(pg_catalog.pg_has_role(role_name,
                               pg_catalog.to_regrole(pg_catalog.quote_ident(job_owner)), 'MEMBER'), false);
    IF current.id IS NULL OR NOT (may_cancel OR pg_catalog.pg_has_role(role_name, 'pg_read_all_data', 'MEMBER')) THEN
        RAISE EXCEPTION 'there is no run %', cancel_run.run
            USING ERRCODE = 'undefined_object', DETAIL = 'category: unknown_run';
    END IF;
    IF NOT may_cancel THEN
        RAISE EXCEPTION '% may not cancel run %', role_name, cancel_run.run
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
        PERFORM jobledger_internal.close_attempt(cancel_run.run, current.attempt, 'cancelled',
                                                 pg_catalog.clock_timestamp(), reason);
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
            AND a.application_name = jobledger_internal.run_application_name(cancel_run.run);
    END IF;
    RETURN true;
END
$$;
COMMENT ON FUNCTION jobledger.cancel_run(uuid) IS
    'Cancels a run: pending -> cancelled at once; running -> cancelled, and its query is cancelled on the server so nothing is written; a finished run is left unchanged (returns false). Allowed to the run''s submitter, the job''s owner, their members and superusers.';
GRANT EXECUTE ON FUNCTION jobledger.cancel_run(uuid) TO PUBLIC;

-- from sql/objects/63_owner_connections.sql
-- Runs executed on a connection authenticated as the job's owner (0.5.0;
-- `jobledger runner --connect-as-owner`, python/jobledger/runner/owners.py).
--
-- The runner claims a run on its own connection (claim_runs), then opens or
-- reuses a connection that logged in AS THE JOB'S OWNER (a pg_ident.conf
-- map lets the runner's OS user log in as members of jobledger_owners) and
-- executes the run there.  That connection's session_user is the owner and
-- cannot be changed (SET SESSION AUTHORIZATION needs a superuser session),
-- so nothing the job does (RESET ROLE, set_config('role', ...)) reaches
-- beyond the owner's own rights.
--
-- These functions are what such a connection needs from the ledger, and no
-- more.  Each one applies only to a run that is running with the given
-- attempt on the given worker, whose job belongs to session_user, and (but
-- attach_run) that is attached to the very calling backend.  So an owner's
-- connection, and any job running on it, can at most touch the owner's own
-- run that it is executing (e.g. complete it early in its own transaction,
-- which the runner's own complete then finds fenced: all of it rolls back).
--
-- EXECUTE is revoked from PUBLIC; the administrator grants it to the group
-- of job owners (README "The runner"):
--   GRANT EXECUTE ON FUNCTION jobledger_internal.attach_run(uuid, integer, text),
--       jobledger_internal.complete_attached_run(uuid, integer, text, bigint, text),
--       jobledger_internal.emit_attached_output(uuid, integer, text, text, text, bytea, uuid[]),
--       jobledger_internal.lock_attached_run(uuid, integer, text)
--     TO jobledger_owners;


CREATE OR REPLACE FUNCTION jobledger_internal.owned_by_session_user(current jobledger.run)
RETURNS boolean
LANGUAGE sql
STABLE
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
    -- session_user: the login of the owner's connection, which nothing the
    -- job does can change (current_user is the definer's here).
    SELECT EXISTS (SELECT 1 FROM jobledger.job AS j
                    WHERE j.name = owned_by_session_user.current.job AND j.owner = SESSION_USER)
$$;
COMMENT ON FUNCTION jobledger_internal.owned_by_session_user(jobledger.run) IS
    'Internal: whether the run''s job belongs to session_user (the role the owner''s connection logged in as); false for no run.';
REVOKE ALL ON FUNCTION jobledger_internal.owned_by_session_user(jobledger.run) FROM PUBLIC;


CREATE OR REPLACE FUNCTION jobledger_internal.attach_run(run uuid, attempt integer, worker text)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    current jobledger.run := jobledger_internal.fenced_run(attach_run.run, attach_run.attempt, attach_run.worker);
BEGIN
    -- Called on the owner's connection, in a transaction of its own, before
    -- the run's transaction begins: from then on the ledger names this
    -- backend as the one executing the run, so reconcile_orphaned sees it
    -- die, cancel_run signals it, and only it may emit and complete.
    IF NOT jobledger_internal.owned_by_session_user(current) THEN
        RAISE EXCEPTION 'run % attempt % is not running on worker % for this role', attach_run.run,
                attach_run.attempt, attach_run.worker
            USING ERRCODE = 'object_not_in_prerequisite_state', DETAIL = 'category: run_fenced';
    END IF;
    UPDATE jobledger.run AS r
       SET backend_pid = pg_catalog.pg_backend_pid(),
           backend_start = jobledger_internal.backend_start(),
           heartbeat_at = pg_catalog.clock_timestamp()
     WHERE r.id = attach_run.run;
    UPDATE jobledger.run_attempt AS a
       SET backend_pid = pg_catalog.pg_backend_pid()
     WHERE a.run = attach_run.run AND a.attempt = attach_run.attempt;
END
$$;
COMMENT ON FUNCTION jobledger_internal.attach_run(uuid, integer, text) IS
    'Runner, on a connection authenticated as the job''s owner (--connect-as-owner): records the calling backend as the one executing the run (pid and backend_start), if the run is running with this attempt on this worker and its job belongs to session_user; raises run_fenced otherwise.';
REVOKE ALL ON FUNCTION jobledger_internal.attach_run(uuid, integer, text) FROM PUBLIC;


CREATE OR REPLACE FUNCTION jobledger_internal.check_attached(run uuid, attempt integer, worker text)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    -- The fence of the *_attached_* functions: running with this attempt on
    -- this worker, owned by session_user, attached to this very backend.
    -- Locks the run's row until the caller's transaction ends.
    current jobledger.run := jobledger_internal.fenced_run(check_attached.run, check_attached.attempt,
                                                           check_attached.worker);
BEGIN
    IF NOT (jobledger_internal.owned_by_session_user(current) AND jobledger_internal.executing_here(current)) THEN
        RAISE EXCEPTION 'run % attempt % is not running on this connection', check_attached.run,
                check_attached.attempt
            USING ERRCODE = 'object_not_in_prerequisite_state', DETAIL = 'category: run_fenced',
                  HINT = 'The run was cancelled, or taken over after its lease expired; this attempt''s writes roll back.';
    END IF;
END
$$;
COMMENT ON FUNCTION jobledger_internal.check_attached(uuid, integer, text) IS
    'Internal: raises run_fenced unless the run is running with this attempt on this worker, its job belongs to session_user and it is attached to the calling backend (attach_run); locks the run''s row.';
REVOKE ALL ON FUNCTION jobledger_internal.check_attached(uuid, integer, text) FROM PUBLIC;


CREATE OR REPLACE FUNCTION jobledger_internal.complete_attached_run(
    run uuid, attempt integer, worker text, rows_written bigint, snapshot_id text DEFAULT NULL
)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
BEGIN
    -- In the owner's transaction that wrote the destination: the write and
    -- the flip to succeeded commit together, or neither does.
    PERFORM jobledger_internal.check_attached(complete_attached_run.run, complete_attached_run.attempt,
                                     complete_attached_run.worker);
    PERFORM jobledger_internal.complete_run(complete_attached_run.run, complete_attached_run.attempt,
                                   complete_attached_run.worker, complete_attached_run.rows_written,
                                   complete_attached_run.snapshot_id);
END
$$;
COMMENT ON FUNCTION jobledger_internal.complete_attached_run(uuid, integer, text, bigint, text) IS
    'Runner, on the job owner''s connection executing the run (attach_run): complete_run in the transaction that wrote the destination; raises run_fenced unless the run is still this attempt''s, owned by session_user and attached to this backend.';
REVOKE ALL ON FUNCTION jobledger_internal.complete_attached_run(uuid, integer, text, bigint, text) FROM PUBLIC;


CREATE OR REPLACE FUNCTION jobledger_internal.emit_attached_output(
    run uuid, attempt integer, worker text, name text, content_type text, data bytea, parents uuid[] DEFAULT '{}'
)
RETURNS uuid
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
BEGIN
    PERFORM jobledger_internal.check_attached(emit_attached_output.run, emit_attached_output.attempt,
                                     emit_attached_output.worker);
    RETURN jobledger_internal.emit_output(emit_attached_output.run, emit_attached_output.name,
                                 emit_attached_output.content_type, emit_attached_output.data,
                                 emit_attached_output.parents);
END
$$;
COMMENT ON FUNCTION jobledger_internal.emit_attached_output(uuid, integer, text, text, text, bytea, uuid[]) IS
    'Runner, on the job owner''s connection executing the run (attach_run): emit_output, fenced like complete_attached_run.';
REVOKE ALL ON FUNCTION jobledger_internal.emit_attached_output(uuid, integer, text, text, text, bytea, uuid[]) FROM PUBLIC;


CREATE OR REPLACE FUNCTION jobledger_internal.lock_attached_run(run uuid, attempt integer, worker text)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
BEGIN
    -- lock_run's fence, held until the transaction ends (before publishing
    -- a dataset version), for the owner's connection.
    PERFORM jobledger_internal.check_attached(lock_attached_run.run, lock_attached_run.attempt, lock_attached_run.worker);
END
$$;
COMMENT ON FUNCTION jobledger_internal.lock_attached_run(uuid, integer, text) IS
    'Runner, on the job owner''s connection executing the run (attach_run): lock_run, fenced like complete_attached_run.';
REVOKE ALL ON FUNCTION jobledger_internal.lock_attached_run(uuid, integer, text) FROM PUBLIC;

-- from sql/objects/70_outputs.sql
-- Outputs (0.4.0): what runs produce, kept with them in jobledger.output;
-- the stored results of `result` destinations read back; and the runner's
-- helpers for destinations outside the database (parquet:).

CREATE OR REPLACE FUNCTION jobledger_internal.emit_output(
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
    SELECT r.* INTO current FROM jobledger.run AS r WHERE r.id = emit_output.run FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'there is no run %', emit_output.run
            USING ERRCODE = 'undefined_object', DETAIL = 'category: unknown_run';
    END IF;
    IF NOT jobledger_internal.executing_here(current) THEN
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
COMMENT ON FUNCTION jobledger_internal.emit_output(uuid, text, text, bytea, uuid[]) IS
    'Runner only: appends an output (name, media type, data, the outputs it was derived from) to a run, from the connection executing the run''s current attempt; returns its id. Raises run_fenced otherwise, invalid_argument for a bad name or an unknown parent.';
REVOKE ALL ON FUNCTION jobledger_internal.emit_output(uuid, text, text, bytea, uuid[]) FROM PUBLIC;


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
    -- (jobledger.lake.ipc_result.to_json), so the server needs no Arrow reader.
    RETURN pg_catalog.convert_from(jobledger.run_output(result_json.run, 'result.json'), 'UTF8')::jsonb;
END
$$;
COMMENT ON FUNCTION jobledger.result_json(uuid) IS
    'The stored result of a run of a job with destination result, as a JSON array of row objects (numbers exact, timestamps ISO 8601, uuids and bytea as text). Errors: unknown_run, no_result.';
GRANT EXECUTE ON FUNCTION jobledger.result_json(uuid) TO PUBLIC;


-- The runner's helpers for destinations outside the database (parquet:).

CREATE OR REPLACE FUNCTION jobledger_internal.lock_run(run uuid, attempt integer, worker text)
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
    PERFORM jobledger_internal.fence(lock_run.run, lock_run.attempt, lock_run.worker,
        'The run was cancelled, or taken over after its lease expired; publish nothing.');
END
$$;
COMMENT ON FUNCTION jobledger_internal.lock_run(uuid, integer, text) IS
    'Runner only, before publishing outside the database: raises (run_fenced) unless the run is still running with this attempt on this worker, and locks its row until the caller''s transaction ends.';
REVOKE ALL ON FUNCTION jobledger_internal.lock_run(uuid, integer, text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION jobledger_internal.report_progress(
    run uuid, attempt integer, worker text, rows_written bigint, progress integer
)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
BEGIN
    IF report_progress.progress IS NOT NULL AND report_progress.progress NOT BETWEEN 0 AND 100 THEN
        RAISE EXCEPTION 'progress must be between 0 and 100, not %', report_progress.progress
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    -- From a connection of its own: the run's transaction is still open, and
    -- readers must see the progress now.  Fenced like heartbeat; a row that
    -- is locked is being completed, cancelled or published right now, so
    -- skip it rather than wait.
    IF (jobledger_internal.fenced_run(report_progress.run, report_progress.attempt, report_progress.worker,
                                      skip_locked => true)).id IS NULL THEN
        RETURN false;
    END IF;
    UPDATE jobledger.run AS r
       SET rows_written = report_progress.rows_written,
           progress = report_progress.progress,
           heartbeat_at = pg_catalog.clock_timestamp()
     WHERE r.id = report_progress.run;
    RETURN true;
END
$$;
COMMENT ON FUNCTION jobledger_internal.report_progress(uuid, integer, text, bigint, integer) IS
    'Runner only, from a connection other than the run''s: sets rows_written and progress (percent, 0..100) of a run still running with this attempt on this worker, and its heartbeat; returns whether it did.';
REVOKE ALL ON FUNCTION jobledger_internal.report_progress(uuid, integer, text, bigint, integer) FROM PUBLIC;

-- from sql/objects/80_workers.sql
-- The runner's presence: worker_start when a runner process starts,
-- worker_beat with its heartbeats and once more on a clean exit.  Runner
-- only, like the state transitions of sql/objects/60_runner.sql.

CREATE OR REPLACE FUNCTION jobledger_internal.worker_start(
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
            jobledger_internal.calling_role(), worker_start.concurrency, worker_start.lease, 0,
            pg_catalog.now(), pg_catalog.now(), NULL)
    ON CONFLICT ON CONSTRAINT worker_pkey DO UPDATE
       SET hostname = EXCLUDED.hostname, pid = EXCLUDED.pid, version = EXCLUDED.version,
           role = EXCLUDED.role, concurrency = EXCLUDED.concurrency, lease = EXCLUDED.lease,
           runs_in_flight = 0, started_at = EXCLUDED.started_at,
           heartbeat_at = EXCLUDED.heartbeat_at, stopped_at = NULL;
END
$$;
COMMENT ON FUNCTION jobledger_internal.worker_start(text, text, integer, text, integer, interval) IS
    'Runner only, at start-up: records (or renews) the runner process''s row in jobledger.worker, and forgets runners not seen for 7 days.';
REVOKE ALL ON FUNCTION jobledger_internal.worker_start(text, text, integer, text, integer, interval) FROM PUBLIC;

CREATE OR REPLACE FUNCTION jobledger_internal.worker_beat(worker text, runs_in_flight integer, stopped boolean DEFAULT false)
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
COMMENT ON FUNCTION jobledger_internal.worker_beat(text, integer, boolean) IS
    'Runner only: the runner process''s heartbeat with the runs it is executing; with stopped, its clean exit. Returns false if the worker is unknown (call worker_start).';
REVOKE ALL ON FUNCTION jobledger_internal.worker_beat(text, integer, boolean) FROM PUBLIC;

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
                a.application_name = jobledger_internal.run_application_name(r.id))
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

-- from sql/objects/90_schedules.sql
-- Schedules (on pg_cron) and backfills: docs/schedules.md.
--
-- pg_cron fires the ticks.  jobledger.schedule (SECURITY DEFINER, as the
-- extension's owner, a superuser) writes the caller's own schedule and a
-- cron.job row whose command is the fixed call
--     SELECT jobledger_internal.tick('<schedule name as a literal>')
-- run by pg_cron as the calling role (cron.job.username): nothing the caller
-- passes becomes SQL text but the schedule's name, checked against a closed
-- pattern and quoted as a literal.  The tick runs with the owner's rights
-- only, and submits through submit_job, so the job's grant rules apply on
-- every tick.  Nothing here names pg_cron's objects statically: jobledger
-- installs and works without pg_cron, and only schedule() needs it.

-- Whether pg_cron is installed here: schema cron exists and belongs to the
-- extension pg_cron (and is not a look-alike someone else made, whose
-- functions the SECURITY DEFINER functions below would otherwise call).
CREATE OR REPLACE FUNCTION jobledger_internal.pg_cron_installed()
RETURNS boolean
LANGUAGE sql
STABLE
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
    SELECT EXISTS (
        SELECT 1
          FROM pg_catalog.pg_depend AS d
          JOIN pg_catalog.pg_extension AS e ON e.oid = d.refobjid
         WHERE d.classid = 'pg_catalog.pg_namespace'::pg_catalog.regclass
           AND d.objid = pg_catalog.to_regnamespace('cron')
           AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
           AND d.deptype = 'e'
           AND e.extname = 'pg_cron')
$$;
COMMENT ON FUNCTION jobledger_internal.pg_cron_installed() IS
    'Internal: whether pg_cron is installed in this database (schema cron is the extension pg_cron''s).';
REVOKE ALL ON FUNCTION jobledger_internal.pg_cron_installed() FROM PUBLIC;

-- pg_cron's schema, or feature_not_available.
CREATE OR REPLACE FUNCTION jobledger_internal.require_pg_cron()
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
BEGIN
    IF NOT jobledger_internal.pg_cron_installed() THEN
        RAISE EXCEPTION 'schedules need pg_cron, which is not installed in database %', pg_catalog.current_database()
            USING ERRCODE = 'feature_not_supported', DETAIL = 'category: feature_not_available',
                  HINT = 'Install pg_cron (e.g. postgresql-15-cron), set shared_preload_libraries = ''pg_cron'' and '
                         'cron.database_name = ''' || pg_catalog.current_database()
                         || ''' in postgresql.conf, restart, then CREATE EXTENSION pg_cron in this database.';
    END IF;
END
$$;
COMMENT ON FUNCTION jobledger_internal.require_pg_cron() IS
    'Internal: raises feature_not_available (0A000) unless pg_cron is installed in this database.';
REVOKE ALL ON FUNCTION jobledger_internal.require_pg_cron() FROM PUBLIC;

-- The tick a call at `at` belongs to: pg_cron fires cron expressions at the
-- start of a minute, and 'N seconds' schedules every N seconds; a tick that
-- fires twice (or late within its minute) maps to the same tick time.
CREATE OR REPLACE FUNCTION jobledger_internal.tick_time(cron text, at timestamptz)
RETURNS timestamptz
LANGUAGE sql
IMMUTABLE
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
    SELECT CASE
        WHEN seconds.n IS NOT NULL AND seconds.n::integer BETWEEN 1 AND 59
        THEN pg_catalog.to_timestamp(pg_catalog.floor(EXTRACT(epoch FROM tick_time.at) / seconds.n::integer)
                                     * seconds.n::integer)
        ELSE pg_catalog.date_trunc('minute', tick_time.at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
    END
      FROM (SELECT (pg_catalog.regexp_match(tick_time.cron, '^\s*([0-9]{1,2})\s+seconds?\s*$', 'i'))[1] AS n) AS seconds
$$;
COMMENT ON FUNCTION jobledger_internal.tick_time(text, timestamptz) IS
    'Internal: the tick of schedule text cron that a call at time at belongs to (the minute; for ''N seconds'' schedules the N-second slot).';
REVOKE ALL ON FUNCTION jobledger_internal.tick_time(text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION jobledger_internal.tick_time(text, timestamptz) TO PUBLIC;

-- The time zone dates of ticks are taken in: pg_cron's (cron.timezone from
-- pg_cron 1.5; GMT before).
CREATE OR REPLACE FUNCTION jobledger_internal.cron_time_zone()
RETURNS text
LANGUAGE sql
STABLE
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
    SELECT coalesce(NULLIF(pg_catalog.current_setting('cron.timezone', true), ''), 'GMT')
$$;
COMMENT ON FUNCTION jobledger_internal.cron_time_zone() IS
    'Internal: the time zone pg_cron reads schedules in (cron.timezone, else GMT): tick dates are taken there.';
REVOKE ALL ON FUNCTION jobledger_internal.cron_time_zone() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION jobledger_internal.cron_time_zone() TO PUBLIC;

-- The parameters a tick submits: every string value of the form
--   {{tick_time [± N second(s)|minute(s)|hour(s)|day(s)]}}
--   {{tick_date [± N [day(s)|month(s)]]}}
--   {{tick_month_start [± N [day(s)|month(s)]]}}
-- becomes that value (a JSON string: a timestamp with time zone or a date,
-- computed here with date arithmetic); any other string holding '{{' is
-- refused (invalid_argument), at any depth, so a typo never reaches a job as
-- text.  Everything else is passed on unchanged.
CREATE OR REPLACE FUNCTION jobledger_internal.tick_params(params jsonb, tick timestamptz)
RETURNS jsonb
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    result jsonb := '{}';
    key text;
    value jsonb;
    parts text[];
    n integer;
    unit text;
    tick_date date := (tick_params.tick AT TIME ZONE jobledger_internal.cron_time_zone())::date;
    base date;
BEGIN
    IF tick_params.params IS NULL OR pg_catalog.jsonb_typeof(tick_params.params) <> 'object' THEN
        RAISE EXCEPTION 'a schedule''s parameters are a JSON object'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    FOR key, value IN SELECT e.key, e.value FROM pg_catalog.jsonb_each(tick_params.params) AS e LOOP
        IF pg_catalog.jsonb_typeof(value) <> 'string' THEN
            IF pg_catalog.jsonb_path_exists(value, '$.** ? (@.type() == "string" && @ like_regex "[{][{]")') THEN
                RAISE EXCEPTION 'parameter "%": tick expressions ({{...}}) may only be whole top-level values', key
                    USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
            END IF;
            result := result OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(key, value);
            CONTINUE;
        END IF;
        IF pg_catalog.strpos(value OPERATOR(pg_catalog.#>>) '{}', '{{') = 0 THEN
            result := result OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(key, value);
            CONTINUE;
        END IF;
        parts := pg_catalog.regexp_match(value OPERATOR(pg_catalog.#>>) '{}',
            '^\{\{ *(tick_time|tick_date|tick_month_start) *(?:([-+]) *([0-9]{1,5}) *(seconds?|minutes?|hours?|days?|months?)?)? *\}\}$');
        IF parts IS NULL THEN
            RAISE EXCEPTION 'parameter "%": % is not a tick expression', key, value
                USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument',
                      HINT = 'Write {{tick_date}}, {{tick_date - 1}}, {{tick_month_start - 1 month}}, '
                             '{{tick_time}} or {{tick_time - 2 hours}} (docs/schedules.md).';
        END IF;
        n := coalesce(parts[3]::integer, 0) * CASE WHEN parts[2] = '-' THEN -1 ELSE 1 END;
        unit := pg_catalog.rtrim(parts[4], 's');
        IF parts[1] = 'tick_time' THEN
            IF parts[2] IS NOT NULL AND unit IS NULL OR unit = 'month' THEN
                RAISE EXCEPTION 'parameter "%": % needs a unit of seconds, minutes, hours or days', key, value
                    USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument',
                          HINT = 'For example {{tick_time - 2 hours}}.';
            END IF;
            result := result OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(key, pg_catalog.to_jsonb(
                tick_params.tick OPERATOR(pg_catalog.+) pg_catalog.make_interval(
                    days => CASE WHEN unit = 'day' THEN n ELSE 0 END,
                    hours => CASE WHEN unit = 'hour' THEN n ELSE 0 END,
                    mins => CASE WHEN unit = 'minute' THEN n ELSE 0 END,
                    secs => CASE WHEN unit = 'second' THEN n ELSE 0 END)));
        ELSE
            IF unit IN ('second', 'minute', 'hour') THEN
                RAISE EXCEPTION 'parameter "%": % is a date: offsets are days or months', key, value
                    USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
            END IF;
            base := CASE WHEN parts[1] = 'tick_date' THEN tick_date
                         ELSE pg_catalog.date_trunc('month', tick_date)::date END;
            result := result OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(key, pg_catalog.to_jsonb(
                (base OPERATOR(pg_catalog.+) pg_catalog.make_interval(
                    months => CASE WHEN unit = 'month' THEN n ELSE 0 END,
                    days => CASE WHEN unit = 'month' THEN 0 ELSE n END))::date));
        END IF;
    END LOOP;
    RETURN result;
END
$$;
COMMENT ON FUNCTION jobledger_internal.tick_params(jsonb, timestamptz) IS
    'Internal: a schedule''s parameters for the tick at tick: {{tick_time}}, {{tick_date}} and {{tick_month_start}} values (with an offset) computed, anything else holding {{ refused (invalid_argument).';
REVOKE ALL ON FUNCTION jobledger_internal.tick_params(jsonb, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION jobledger_internal.tick_params(jsonb, timestamptz) TO PUBLIC;

-- The idempotency key of a schedule's tick: the same tick submits once.
CREATE OR REPLACE FUNCTION jobledger_internal.tick_key(schedule text, tick timestamptz)
RETURNS text
LANGUAGE sql
IMMUTABLE
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
    SELECT 'schedule ' OPERATOR(pg_catalog.||) tick_key.schedule OPERATOR(pg_catalog.||) ' at '
           OPERATOR(pg_catalog.||) pg_catalog.to_char(tick_key.tick AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
$$;
COMMENT ON FUNCTION jobledger_internal.tick_key(text, timestamptz) IS
    'Internal: the idempotency key a schedule''s tick submits with (''schedule <name> at <tick, UTC>'').';
REVOKE ALL ON FUNCTION jobledger_internal.tick_key(text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION jobledger_internal.tick_key(text, timestamptz) TO PUBLIC;

-- What pg_cron runs.  SECURITY INVOKER: pg_cron connects as the schedule's
-- owner, who sees (row-level security) and finds only its own schedules, and
-- submits as itself.  `at` is for tests and catching up by hand: the owner
-- may as well call submit_job.
CREATE OR REPLACE FUNCTION jobledger_internal.tick(schedule text, at timestamptz DEFAULT NULL)
RETURNS uuid
LANGUAGE plpgsql
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    s jobledger.schedule;
    tick_at timestamptz;
BEGIN
    SELECT * INTO s FROM jobledger.schedule AS x
     WHERE x.owner = jobledger_internal.calling_role() AND x.name = tick.schedule;
    IF NOT FOUND THEN
        RAISE EXCEPTION '% has no schedule "%"', jobledger_internal.calling_role(), tick.schedule
            USING ERRCODE = 'undefined_object', DETAIL = 'category: unknown_schedule';
    END IF;
    tick_at := jobledger_internal.tick_time(s.cron, coalesce(tick.at, pg_catalog.now()));
    RETURN jobledger.submit_job(s.job, jobledger_internal.tick_params(s.params, tick_at),
                                idempotency_key => jobledger_internal.tick_key(s.name, tick_at),
                                priority => s.priority);
END
$$;
COMMENT ON FUNCTION jobledger_internal.tick(text, timestamptz) IS
    'What pg_cron runs on each tick of a schedule, as its owner: submits the job with the tick''s parameters and the idempotency key of the tick (so a tick that fires twice makes one run); at: the time the tick belongs to (default now).';
REVOKE ALL ON FUNCTION jobledger_internal.tick(text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION jobledger_internal.tick(text, timestamptz) TO PUBLIC;

-- pg_cron's job name for a schedule (unique per role in cron.job).
CREATE OR REPLACE FUNCTION jobledger_internal.cron_job_name(schedule text)
RETURNS text
LANGUAGE sql
IMMUTABLE
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
    SELECT 'jobledger ' OPERATOR(pg_catalog.||) cron_job_name.schedule
$$;
COMMENT ON FUNCTION jobledger_internal.cron_job_name(text) IS
    'Internal: the cron.job jobname of a jobledger schedule (pg_cron keeps job names unique per role).';
REVOKE ALL ON FUNCTION jobledger_internal.cron_job_name(text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION jobledger.schedule(
    name text,
    job text,
    cron text,
    params jsonb DEFAULT '{}',
    priority integer DEFAULT 0
)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    owner_role name := jobledger_internal.calling_role();
    cron_id bigint;
BEGIN
    IF schedule.name IS NULL OR NOT (schedule.name ~ '^[A-Za-z_][A-Za-z0-9_.-]*$' AND pg_catalog.length(schedule.name) <= 128) THEN
        RAISE EXCEPTION 'invalid schedule name %', coalesce(pg_catalog.quote_literal(schedule.name), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument',
                  HINT = 'A schedule name is a letter or _ then letters, digits, _ . or -, at most 128 characters.';
    END IF;
    IF schedule.job IS NULL OR schedule.cron IS NULL OR schedule.priority IS NULL THEN
        RAISE EXCEPTION 'schedule needs a job, a cron schedule and a priority'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    IF pg_catalog.length(schedule.cron) > 100 OR schedule.cron !~ '^[0-9A-Za-z*/,$@ -]+$' THEN
        RAISE EXCEPTION 'invalid cron schedule %', pg_catalog.quote_literal(pg_catalog.left(schedule.cron, 100))
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument',
                  HINT = 'pg_cron''s syntax: e.g. ''0 3 * * *'' (03:00 every day) or ''*/5 * * * *''.';
    END IF;
    PERFORM jobledger_internal.require_pg_cron();
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles AS r WHERE r.rolname = owner_role AND r.rolcanlogin) THEN
        RAISE EXCEPTION 'pg_cron runs a schedule''s ticks as its owner, and role % cannot log in', owner_role
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument',
                  HINT = 'Make the schedule as a role with LOGIN that pg_cron may connect as (pg_hba.conf).';
    END IF;
    -- A submit now, undone: the caller must be able to submit the job with
    -- these parameters (evaluated for the current tick), else no schedule.
    BEGIN
        PERFORM jobledger.submit_job(schedule.job,
                                     jobledger_internal.tick_params(schedule.params,
                                         jobledger_internal.tick_time(schedule.cron, pg_catalog.now())),
                                     priority => schedule.priority);
        RAISE EXCEPTION USING ERRCODE = 'JLDRY';
    EXCEPTION WHEN SQLSTATE 'JLDRY' THEN
        NULL;
    END;
    INSERT INTO jobledger.schedule AS s (owner, name, job, cron, params, priority)
    VALUES (owner_role, schedule.name, schedule.job, schedule.cron, schedule.params, schedule.priority)
    ON CONFLICT ON CONSTRAINT schedule_pkey DO UPDATE
       SET job = EXCLUDED.job, cron = EXCLUDED.cron, params = EXCLUDED.params, priority = EXCLUDED.priority,
           updated_at = pg_catalog.now();
    -- pg_cron checks the schedule text itself; its job runs the fixed call
    -- as the owner, in this database (an existing job of that name and
    -- role is updated).
    BEGIN
        cron_id := cron.schedule_in_database(
            jobledger_internal.cron_job_name(schedule.name),
            schedule.cron,
            pg_catalog.format('SELECT jobledger_internal.tick(%L)', schedule.name),
            pg_catalog.current_database(),
            owner_role,
            true);
    EXCEPTION WHEN invalid_parameter_value THEN
        RAISE EXCEPTION 'invalid cron schedule %: %', pg_catalog.quote_literal(schedule.cron), SQLERRM
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument',
                  HINT = 'pg_cron''s syntax: e.g. ''0 3 * * *'' (03:00 every day) or ''*/5 * * * *''.';
    END;
    RETURN cron_id;
END
$$;
COMMENT ON FUNCTION jobledger.schedule(text, text, text, jsonb, integer) IS
    'Makes (or changes) the caller''s schedule name: pg_cron submits job with params, as the caller, on every tick of cron (pg_cron''s syntax); {{tick_date - 1}}-style values are computed per tick; returns pg_cron''s job id. Needs pg_cron (feature_not_available).';
GRANT EXECUTE ON FUNCTION jobledger.schedule(text, text, text, jsonb, integer) TO PUBLIC;

CREATE OR REPLACE FUNCTION jobledger.unschedule(name text)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    owner_role name := jobledger_internal.calling_role();
    cron_id bigint;
    removed integer;
BEGIN
    DELETE FROM jobledger.schedule AS s WHERE s.owner = owner_role AND s.name = unschedule.name;
    GET DIAGNOSTICS removed = ROW_COUNT;
    IF jobledger_internal.pg_cron_installed() THEN
        FOR cron_id IN SELECT j.jobid FROM cron.job AS j
                        WHERE j.jobname = jobledger_internal.cron_job_name(unschedule.name)
                          AND j.username = owner_role
        LOOP
            PERFORM cron.unschedule(cron_id);
            removed := removed + 1;
        END LOOP;
    END IF;
    RETURN removed > 0;
END
$$;
COMMENT ON FUNCTION jobledger.unschedule(text) IS
    'Removes the caller''s schedule name and its pg_cron job; returns whether there was one. Runs already submitted stay.';
GRANT EXECUTE ON FUNCTION jobledger.unschedule(text) TO PUBLIC;

-- What pg_cron knows of the schedules the caller may see: cron.job and
-- cron.job_run_details are pg_cron's, readable by their own role only
-- (and schema cron is not usable by ordinary roles).  Empty without pg_cron.
CREATE OR REPLACE FUNCTION jobledger_internal.schedule_cron_state()
RETURNS TABLE (owner name, name text, cron_job bigint, active boolean, last_tick_at timestamptz,
               last_tick_status text, last_tick_message text)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
BEGIN
    IF NOT jobledger_internal.pg_cron_installed() THEN
        RETURN;
    END IF;
    RETURN QUERY
    SELECT s.owner, s.name, j.jobid, j.active, d.start_time, d.status, d.return_message
      FROM jobledger.schedule AS s
      JOIN cron.job AS j ON j.jobname = jobledger_internal.cron_job_name(s.name) AND j.username = s.owner
      LEFT JOIN LATERAL (SELECT r.start_time, r.status, r.return_message
                           FROM cron.job_run_details AS r
                          WHERE r.jobid = j.jobid
                          ORDER BY r.runid DESC LIMIT 1) AS d ON true
     WHERE pg_catalog.pg_has_role(jobledger_internal.calling_role(), 'pg_read_all_data', 'MEMBER')
        OR coalesce(pg_catalog.pg_has_role(jobledger_internal.calling_role(),
                                           pg_catalog.to_regrole(pg_catalog.quote_ident(s.owner)), 'MEMBER'), false);
END
$$;
COMMENT ON FUNCTION jobledger_internal.schedule_cron_state() IS
    'Internal: pg_cron''s job and last tick of each schedule the calling role may see (for jobledger.schedules).';
REVOKE ALL ON FUNCTION jobledger_internal.schedule_cron_state() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION jobledger_internal.schedule_cron_state() TO PUBLIC;

-- plpgsql, so that the view can be defined before the PL/Python half
-- (plpython/30_schedules.sql) exists.
CREATE OR REPLACE FUNCTION jobledger_internal.next_tick(cron text, after timestamptz, time_zone text)
RETURNS timestamptz
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
BEGIN
    RETURN (jobledger_internal.outcome_value(jobledger_internal.next_tick_py(
                next_tick.cron, pg_catalog.to_char(next_tick.after AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'),
                next_tick.time_zone)) OPERATOR(pg_catalog.#>>) '{}')::timestamptz;
END
$$;
COMMENT ON FUNCTION jobledger_internal.next_tick(text, timestamptz, text) IS
    'Internal: the first tick of pg_cron schedule text cron after after, reading it in time_zone; NULL if it never ticks or is not read (python/jobledger/server/cron.py).';
REVOKE ALL ON FUNCTION jobledger_internal.next_tick(text, timestamptz, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION jobledger_internal.next_tick(text, timestamptz, text) TO PUBLIC;

CREATE OR REPLACE VIEW jobledger.schedules WITH (security_invoker = true) AS
SELECT s.name,
       s.owner,
       s.job,
       s.cron,
       s.params,
       s.priority,
       -- false: pg_cron's job is inactive or missing (e.g. after a restore
       -- into another database: docs/schedules.md).
       coalesce(c.active, false) AS active,
       CASE WHEN c.active THEN jobledger_internal.next_tick(s.cron, pg_catalog.now(),
                                                            jobledger_internal.cron_time_zone()) END AS next_tick,
       c.last_tick_at,
       c.last_tick_status,
       c.last_tick_message,
       r.id AS last_run,
       r.status AS last_run_status,
       r.created_at AS last_run_at,
       c.cron_job,
       s.created_at,
       s.updated_at
  FROM jobledger.schedule AS s
  LEFT JOIN jobledger_internal.schedule_cron_state() AS c ON c.owner = s.owner AND c.name = s.name
  LEFT JOIN LATERAL (SELECT r.id, r.status, r.created_at
                       FROM jobledger.run AS r
                      WHERE r.job = s.job AND r.submitted_by = s.owner
                        AND pg_catalog.left(r.idempotency_key, pg_catalog.length(s.name) + 10)
                            = 'schedule ' || s.name || ' '
                      ORDER BY r.created_at DESC LIMIT 1) AS r ON true;
COMMENT ON VIEW jobledger.schedules IS
    'Schedules the querying role may see: the next tick, pg_cron''s last tick (when, status, message) and the last run a tick submitted with its status.';
GRANT SELECT ON jobledger.schedules TO PUBLIC;

-- Backfill: one run per value from first to last, each with the
-- idempotency key 'backfill <param>=<value>', so a repeated backfill
-- returns the same runs.  The values' kind is the job's declaration of the
-- parameter (date, timestamptz, integer, bigint, numeric), else read off
-- first: an integer, a date (YYYY-MM-DD) or a timestamp.  One transaction:
-- a refused value submits nothing.
CREATE OR REPLACE FUNCTION jobledger.backfill(
    job text,
    param text,
    first text,
    last text,
    step text DEFAULT NULL,
    params jsonb DEFAULT '{}',
    priority integer DEFAULT 0
)
RETURNS TABLE (value jsonb, run uuid)
LANGUAGE plpgsql
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    kind text;
    declared text;
    values_ jsonb[];
    v jsonb;
    limit_ constant integer := 10000;
BEGIN
    IF backfill.job IS NULL OR backfill.param IS NULL OR backfill.first IS NULL OR backfill.last IS NULL
       OR backfill.params IS NULL OR pg_catalog.jsonb_typeof(backfill.params) <> 'object' THEN
        RAISE EXCEPTION 'backfill needs a job, a parameter, a first and a last value, and parameters as a JSON object'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    IF backfill.params ? backfill.param THEN
        RAISE EXCEPTION 'parameter "%" is the one backfilled: leave it out of params', backfill.param
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    SELECT ver.params -> backfill.param ->> 'type' INTO declared
      FROM jobledger.job AS j JOIN jobledger.job_version AS ver ON ver.job = j.name AND ver.version = j.current_version
     WHERE j.name = backfill.job;
    kind := CASE
        WHEN declared IN ('date', 'timestamptz') THEN declared
        WHEN declared IN ('integer', 'bigint', 'numeric') THEN 'integer'
        WHEN declared IS NOT NULL THEN NULL
        WHEN backfill.first ~ '^\s*-?[0-9]+\s*$' THEN 'integer'
        WHEN backfill.first ~ '^\s*[0-9]{4}-[0-9]{2}-[0-9]{2}\s*$' THEN 'date'
        ELSE 'timestamptz' END;
    IF kind IS NULL THEN
        RAISE EXCEPTION 'parameter "%" of job "%" is %: a backfill steps through dates, timestamps or integers',
                        backfill.param, backfill.job, declared
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    BEGIN
        IF kind = 'integer' THEN
            SELECT pg_catalog.array_agg(pg_catalog.to_jsonb(t.g) ORDER BY t.g) INTO values_
              FROM (SELECT pg_catalog.generate_series(backfill.first::bigint, backfill.last::bigint,
                                                      coalesce(backfill.step, '1')::bigint) AS g
                     WHERE coalesce(backfill.step, '1')::bigint > 0 LIMIT limit_ + 1) AS t;
        ELSIF kind = 'date' THEN
            SELECT pg_catalog.array_agg(pg_catalog.to_jsonb(t.g::date) ORDER BY t.g) INTO values_
              FROM (SELECT pg_catalog.generate_series(backfill.first::date::timestamp, backfill.last::date::timestamp,
                                                      coalesce(backfill.step, '1 day')::interval) AS g
                     WHERE coalesce(backfill.step, '1 day')::interval > '0'::interval LIMIT limit_ + 1) AS t;
        ELSE
            SELECT pg_catalog.array_agg(pg_catalog.to_jsonb(t.g) ORDER BY t.g) INTO values_
              FROM (SELECT pg_catalog.generate_series(backfill.first::timestamptz, backfill.last::timestamptz,
                                                      coalesce(backfill.step, '1 day')::interval) AS g
                     WHERE coalesce(backfill.step, '1 day')::interval > '0'::interval LIMIT limit_ + 1) AS t;
        END IF;
    EXCEPTION WHEN data_exception OR program_limit_exceeded THEN
        RAISE EXCEPTION 'cannot step from % to % by %: %', backfill.first, backfill.last,
                        coalesce(backfill.step, 'the default step'), SQLERRM
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument',
                  HINT = 'Dates and timestamps step by an interval (''1 day'', ''1 month''), integers by an integer.';
    END;
    IF values_ IS NULL THEN
        RAISE EXCEPTION 'nothing to backfill from % to % by %', backfill.first, backfill.last,
                        coalesce(backfill.step, 'the default step')
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument',
                  HINT = 'first comes before last, and the step is positive.';
    END IF;
    IF pg_catalog.cardinality(values_) > limit_ THEN
        RAISE EXCEPTION 'a backfill submits at most % runs, and this one would submit more', limit_
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    FOREACH v IN ARRAY values_ LOOP
        value := v;
        run := jobledger.submit_job(backfill.job,
                                    backfill.params OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(backfill.param, v),
                                    idempotency_key => 'backfill ' || backfill.param || '=' || (v OPERATOR(pg_catalog.#>>) '{}'),
                                    priority => backfill.priority);
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION jobledger.backfill(text, text, text, text, text, jsonb, integer) IS
    'Submits job once per value of param from first to last (inclusive) by step (dates and timestamps: an interval, default 1 day; integers: default 1), with params for the others; each run''s idempotency key is ''backfill <param>=<value>'', so a repeated backfill returns the same runs. At most 10,000 values.';
GRANT EXECUTE ON FUNCTION jobledger.backfill(text, text, text, text, text, jsonb, integer) TO PUBLIC;

-- from plpython/10_version.sql
CREATE OR REPLACE FUNCTION jobledger_internal.version_py()
RETURNS jsonb
LANGUAGE plpython3u
STABLE
SET search_path = pg_catalog, jobledger, pg_temp
AS $python$
# jobledger prelude, put into every PL/Python function by sql/assemble.py.
# Once per session (and again after ALTER EXTENSION jobledger UPDATE): load
# this version's package and check it is the one this SQL was built for.
#
# @PYTHON_LIBDIR@/0.5.0 is a symlink to a complete install that make
# install replaces in one rename (plpython/install_package.py).  The session
# resolves it once, puts that content directory on sys.path (imports are
# lazy: every later import of the session comes from the same install) and
# holds a shared lock on its .in-use file until the session ends, so make
# install does not remove it under the session.
#
# A session that loaded another version (a pooled connection across ALTER
# EXTENSION UPDATE) drops it first: the modules loaded from that version's
# directory leave sys.modules, the directory leaves sys.path, its lock is
# released.  Problems are returned as error outcomes (see jobledger.server),
# which the calling SQL function raises; the package may not be importable.
if GD.get("jobledger.version") != "0.5.0":
    import fcntl
    import json
    import os
    import sys
    import time

    def _jobledger_mismatch(message, hint):
        return json.dumps({"error": {"message": message, "sqlstate": "55000",
                                     "detail": "category: version_mismatch", "hint": hint}})

    if "jobledger.version" in GD:
        _jobledger_old = GD.pop("jobledger.version")
        # 0.4.0 and earlier put the version's directory itself on sys.path.
        _jobledger_old_dir = GD.pop("jobledger.path", None) or "@PYTHON_LIBDIR@/" + _jobledger_old
        _jobledger_roots = {_jobledger_old_dir, os.path.realpath(_jobledger_old_dir)}
        # And wherever the old package itself was found.
        _file = getattr(sys.modules.get("jobledger"), "__file__", None)
        if _file:
            _jobledger_roots.add(os.path.dirname(os.path.dirname(_file)))
        _jobledger_roots = tuple(root.rstrip("/") + "/" for root in _jobledger_roots)
        for _name, _module in list(sys.modules.items()):
            _file = getattr(_module, "__file__", None) or ""
            _paths = list(getattr(_module, "__path__", None) or [])
            if (_name == "jobledger" or _name.startswith("jobledger.")
                    or _file.startswith(_jobledger_roots)
                    or any(str(_p).startswith(_jobledger_roots) for _p in _paths)):
                del sys.modules[_name]
        sys.path[:] = [_p for _p in sys.path if _p.rstrip("/") + "/" not in _jobledger_roots]
        for _p in list(sys.path_importer_cache):
            if str(_p).startswith(_jobledger_roots):
                del sys.path_importer_cache[_p]
        if GD.get("jobledger.lock") is not None:
            os.close(GD.pop("jobledger.lock"))
        import importlib
        importlib.invalidate_caches()
        GD["jobledger.reloaded_from"] = _jobledger_old
    _jobledger_link = "@PYTHON_LIBDIR@/0.5.0"
    _jobledger_dir, _jobledger_lock = _jobledger_link, None
    for _attempt in range(50):
        _jobledger_dir = os.path.realpath(_jobledger_link)
        _mark = os.path.join(_jobledger_dir, ".in-use")
        try:
            _jobledger_lock = os.open(_mark, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            if os.path.islink(_jobledger_link) or not os.path.isdir(_jobledger_dir):
                time.sleep(0.01)  # replaced meanwhile, or not installed: look again
                continue
            break  # a plain directory (installed before this layout): nothing to lock
        fcntl.flock(_jobledger_lock, fcntl.LOCK_SH)
        try:
            if os.path.samestat(os.fstat(_jobledger_lock), os.stat(_mark)):
                break  # still in place: make install keeps it while we hold the lock
        except FileNotFoundError:
            pass
        os.close(_jobledger_lock)  # removed by make install meanwhile: look again
        _jobledger_lock = None
    if _jobledger_dir not in sys.path:
        sys.path.insert(0, _jobledger_dir)
    try:
        import jobledger
        import jobledger.server
        _jobledger_problem = None
        if jobledger.__version__ != "0.5.0":
            _jobledger_problem = "the jobledger package in %s is %s, not 0.5.0" % (
                _jobledger_dir, jobledger.__version__)
    except ImportError as _exc:
        _jobledger_problem = "cannot import the jobledger 0.5.0 Python package from %s: %s" % (
            _jobledger_dir, _exc)
    if _jobledger_problem is not None:
        sys.path[:] = [_p for _p in sys.path if _p != _jobledger_dir]
        for _name in [_n for _n in sys.modules if _n == "jobledger" or _n.startswith("jobledger.")]:
            del sys.modules[_name]
        if _jobledger_lock is not None:
            os.close(_jobledger_lock)
        return _jobledger_mismatch(
            _jobledger_problem,
            "Run make install for jobledger 0.5.0 on the database server."
            + (" This session loaded jobledger %s before the update; if this keeps failing after"
               " make install, reconnect." % GD["jobledger.reloaded_from"]
               if "jobledger.reloaded_from" in GD else ""),
        )
    GD["jobledger.path"] = _jobledger_dir
    GD["jobledger.lock"] = _jobledger_lock
    GD["jobledger.version"] = "0.5.0"
import jobledger.server
return jobledger.server.version(plpy)
$python$;
COMMENT ON FUNCTION jobledger_internal.version_py() IS
    'Internal: the outcome of jobledger.version() (see jobledger_internal.outcome_value).';
REVOKE ALL ON FUNCTION jobledger_internal.version_py() FROM PUBLIC;

CREATE OR REPLACE FUNCTION jobledger.version()
RETURNS text
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
    SELECT jobledger_internal.outcome_value(jobledger_internal.version_py()) OPERATOR(pg_catalog.#>>) '{}'::text[]
$$;
COMMENT ON FUNCTION jobledger.version() IS
    'Version of the jobledger Python package this session runs; fails (category version_mismatch) if it is not the installed extension version.';
GRANT EXECUTE ON FUNCTION jobledger.version() TO PUBLIC;

-- from plpython/20_jobs.sql
-- define_job runs with its caller's rights (SECURITY INVOKER): what
-- PostgreSQL works out from the template (output columns, dependencies) is
-- worked out with rights its author has, and template text never reaches
-- the server inside a function that runs with more.  The ledger write is
-- jobledger_internal.record_job_version, which checks everything it needs itself.
CREATE OR REPLACE FUNCTION jobledger_internal.define_job_py(
    name text, query text, destination text, mode text, params jsonb, timeout interval,
    max_attempts integer, description text
)
RETURNS jsonb
LANGUAGE plpython3u
SET search_path = pg_catalog, jobledger, pg_temp
SET standard_conforming_strings = on
AS $python$
# jobledger prelude, put into every PL/Python function by sql/assemble.py.
# Once per session (and again after ALTER EXTENSION jobledger UPDATE): load
# this version's package and check it is the one this SQL was built for.
#
# @PYTHON_LIBDIR@/0.5.0 is a symlink to a complete install that make
# install replaces in one rename (plpython/install_package.py).  The session
# resolves it once, puts that content directory on sys.path (imports are
# lazy: every later import of the session comes from the same install) and
# holds a shared lock on its .in-use file until the session ends, so make
# install does not remove it under the session.
#
# A session that loaded another version (a pooled connection across ALTER
# EXTENSION UPDATE) drops it first: the modules loaded from that version's
# directory leave sys.modules, the directory leaves sys.path, its lock is
# released.  Problems are returned as error outcomes (see jobledger.server),
# which the calling SQL function raises; the package may not be importable.
if GD.get("jobledger.version") != "0.5.0":
    import fcntl
    import json
    import os
    import sys
    import time

    def _jobledger_mismatch(message, hint):
        return json.dumps({"error": {"message": message, "sqlstate": "55000",
                                     "detail": "category: version_mismatch", "hint": hint}})

    if "jobledger.version" in GD:
        _jobledger_old = GD.pop("jobledger.version")
        # 0.4.0 and earlier put the version's directory itself on sys.path.
        _jobledger_old_dir = GD.pop("jobledger.path", None) or "@PYTHON_LIBDIR@/" + _jobledger_old
        _jobledger_roots = {_jobledger_old_dir, os.path.realpath(_jobledger_old_dir)}
        # And wherever the old package itself was found.
        _file = getattr(sys.modules.get("jobledger"), "__file__", None)
        if _file:
            _jobledger_roots.add(os.path.dirname(os.path.dirname(_file)))
        _jobledger_roots = tuple(root.rstrip("/") + "/" for root in _jobledger_roots)
        for _name, _module in list(sys.modules.items()):
            _file = getattr(_module, "__file__", None) or ""
            _paths = list(getattr(_module, "__path__", None) or [])
            if (_name == "jobledger" or _name.startswith("jobledger.")
                    or _file.startswith(_jobledger_roots)
                    or any(str(_p).startswith(_jobledger_roots) for _p in _paths)):
                del sys.modules[_name]
        sys.path[:] = [_p for _p in sys.path if _p.rstrip("/") + "/" not in _jobledger_roots]
        for _p in list(sys.path_importer_cache):
            if str(_p).startswith(_jobledger_roots):
                del sys.path_importer_cache[_p]
        if GD.get("jobledger.lock") is not None:
            os.close(GD.pop("jobledger.lock"))
        import importlib
        importlib.invalidate_caches()
        GD["jobledger.reloaded_from"] = _jobledger_old
    _jobledger_link = "@PYTHON_LIBDIR@/0.5.0"
    _jobledger_dir, _jobledger_lock = _jobledger_link, None
    for _attempt in range(50):
        _jobledger_dir = os.path.realpath(_jobledger_link)
        _mark = os.path.join(_jobledger_dir, ".in-use")
        try:
            _jobledger_lock = os.open(_mark, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            if os.path.islink(_jobledger_link) or not os.path.isdir(_jobledger_dir):
                time.sleep(0.01)  # replaced meanwhile, or not installed: look again
                continue
            break  # a plain directory (installed before this layout): nothing to lock
        fcntl.flock(_jobledger_lock, fcntl.LOCK_SH)
        try:
            if os.path.samestat(os.fstat(_jobledger_lock), os.stat(_mark)):
                break  # still in place: make install keeps it while we hold the lock
        except FileNotFoundError:
            pass
        os.close(_jobledger_lock)  # removed by make install meanwhile: look again
        _jobledger_lock = None
    if _jobledger_dir not in sys.path:
        sys.path.insert(0, _jobledger_dir)
    try:
        import jobledger
        import jobledger.server
        _jobledger_problem = None
        if jobledger.__version__ != "0.5.0":
            _jobledger_problem = "the jobledger package in %s is %s, not 0.5.0" % (
                _jobledger_dir, jobledger.__version__)
    except ImportError as _exc:
        _jobledger_problem = "cannot import the jobledger 0.5.0 Python package from %s: %s" % (
            _jobledger_dir, _exc)
    if _jobledger_problem is not None:
        sys.path[:] = [_p for _p in sys.path if _p != _jobledger_dir]
        for _name in [_n for _n in sys.modules if _n == "jobledger" or _n.startswith("jobledger.")]:
            del sys.modules[_name]
        if _jobledger_lock is not None:
            os.close(_jobledger_lock)
        return _jobledger_mismatch(
            _jobledger_problem,
            "Run make install for jobledger 0.5.0 on the database server."
            + (" This session loaded jobledger %s before the update; if this keeps failing after"
               " make install, reconnect." % GD["jobledger.reloaded_from"]
               if "jobledger.reloaded_from" in GD else ""),
        )
    GD["jobledger.path"] = _jobledger_dir
    GD["jobledger.lock"] = _jobledger_lock
    GD["jobledger.version"] = "0.5.0"
import jobledger.server
return jobledger.server.define_job(plpy, name, query, destination, mode, params, timeout, max_attempts, description)
$python$;
COMMENT ON FUNCTION jobledger_internal.define_job_py(text, text, text, text, jsonb, interval, integer, text) IS
    'Internal: the outcome of jobledger.define_job, with its caller''s rights (see jobledger_internal.outcome_value).';
REVOKE ALL ON FUNCTION jobledger_internal.define_job_py(text, text, text, text, jsonb, interval, integer, text) FROM PUBLIC;  -- the same ACL after an upgrade as after an install
GRANT EXECUTE ON FUNCTION jobledger_internal.define_job_py(text, text, text, text, jsonb, interval, integer, text) TO PUBLIC;

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
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
    SELECT (jobledger_internal.outcome_value(jobledger_internal.define_job_py(
                define_job.name, define_job.query, define_job.destination, define_job.mode,
                define_job.params, define_job.timeout, define_job.max_attempts, define_job.description
            )) OPERATOR(pg_catalog.#>>) '{}'::text[])::integer
$$;
COMMENT ON FUNCTION jobledger.define_job(text, text, text, text, jsonb, interval, integer, text) IS
    'Defines a job (the caller becomes its owner), or a new version of it when anything changed; returns the version. Runs with the caller''s rights. The template is stored exactly as written; PostgreSQL''s own grammar must read it as one plain SELECT with each {placeholder} where a value stands, the parameters'' declarations must match the placeholders, and the output must fit the destination.';
GRANT EXECUTE ON FUNCTION jobledger.define_job(text, text, text, text, jsonb, interval, integer, text) TO PUBLIC;

-- record_job_version's own check of a template: pure Python, nothing of the
-- text reaches the server, so it may run inside that SECURITY DEFINER function.
CREATE OR REPLACE FUNCTION jobledger_internal.check_template_py(query text, params text)
RETURNS jsonb
LANGUAGE plpython3u
IMMUTABLE
SET search_path = pg_catalog, jobledger, pg_temp
AS $python$
# jobledger prelude, put into every PL/Python function by sql/assemble.py.
# Once per session (and again after ALTER EXTENSION jobledger UPDATE): load
# this version's package and check it is the one this SQL was built for.
#
# @PYTHON_LIBDIR@/0.5.0 is a symlink to a complete install that make
# install replaces in one rename (plpython/install_package.py).  The session
# resolves it once, puts that content directory on sys.path (imports are
# lazy: every later import of the session comes from the same install) and
# holds a shared lock on its .in-use file until the session ends, so make
# install does not remove it under the session.
#
# A session that loaded another version (a pooled connection across ALTER
# EXTENSION UPDATE) drops it first: the modules loaded from that version's
# directory leave sys.modules, the directory leaves sys.path, its lock is
# released.  Problems are returned as error outcomes (see jobledger.server),
# which the calling SQL function raises; the package may not be importable.
if GD.get("jobledger.version") != "0.5.0":
    import fcntl
    import json
    import os
    import sys
    import time

    def _jobledger_mismatch(message, hint):
        return json.dumps({"error": {"message": message, "sqlstate": "55000",
                                     "detail": "category: version_mismatch", "hint": hint}})

    if "jobledger.version" in GD:
        _jobledger_old = GD.pop("jobledger.version")
        # 0.4.0 and earlier put the version's directory itself on sys.path.
        _jobledger_old_dir = GD.pop("jobledger.path", None) or "@PYTHON_LIBDIR@/" + _jobledger_old
        _jobledger_roots = {_jobledger_old_dir, os.path.realpath(_jobledger_old_dir)}
        # And wherever the old package itself was found.
        _file = getattr(sys.modules.get("jobledger"), "__file__", None)
        if _file:
            _jobledger_roots.add(os.path.dirname(os.path.dirname(_file)))
        _jobledger_roots = tuple(root.rstrip("/") + "/" for root in _jobledger_roots)
        for _name, _module in list(sys.modules.items()):
            _file = getattr(_module, "__file__", None) or ""
            _paths = list(getattr(_module, "__path__", None) or [])
            if (_name == "jobledger" or _name.startswith("jobledger.")
                    or _file.startswith(_jobledger_roots)
                    or any(str(_p).startswith(_jobledger_roots) for _p in _paths)):
                del sys.modules[_name]
        sys.path[:] = [_p for _p in sys.path if _p.rstrip("/") + "/" not in _jobledger_roots]
        for _p in list(sys.path_importer_cache):
            if str(_p).startswith(_jobledger_roots):
                del sys.path_importer_cache[_p]
        if GD.get("jobledger.lock") is not None:
            os.close(GD.pop("jobledger.lock"))
        import importlib
        importlib.invalidate_caches()
        GD["jobledger.reloaded_from"] = _jobledger_old
    _jobledger_link = "@PYTHON_LIBDIR@/0.5.0"
    _jobledger_dir, _jobledger_lock = _jobledger_link, None
    for _attempt in range(50):
        _jobledger_dir = os.path.realpath(_jobledger_link)
        _mark = os.path.join(_jobledger_dir, ".in-use")
        try:
            _jobledger_lock = os.open(_mark, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            if os.path.islink(_jobledger_link) or not os.path.isdir(_jobledger_dir):
                time.sleep(0.01)  # replaced meanwhile, or not installed: look again
                continue
            break  # a plain directory (installed before this layout): nothing to lock
        fcntl.flock(_jobledger_lock, fcntl.LOCK_SH)
        try:
            if os.path.samestat(os.fstat(_jobledger_lock), os.stat(_mark)):
                break  # still in place: make install keeps it while we hold the lock
        except FileNotFoundError:
            pass
        os.close(_jobledger_lock)  # removed by make install meanwhile: look again
        _jobledger_lock = None
    if _jobledger_dir not in sys.path:
        sys.path.insert(0, _jobledger_dir)
    try:
        import jobledger
        import jobledger.server
        _jobledger_problem = None
        if jobledger.__version__ != "0.5.0":
            _jobledger_problem = "the jobledger package in %s is %s, not 0.5.0" % (
                _jobledger_dir, jobledger.__version__)
    except ImportError as _exc:
        _jobledger_problem = "cannot import the jobledger 0.5.0 Python package from %s: %s" % (
            _jobledger_dir, _exc)
    if _jobledger_problem is not None:
        sys.path[:] = [_p for _p in sys.path if _p != _jobledger_dir]
        for _name in [_n for _n in sys.modules if _n == "jobledger" or _n.startswith("jobledger.")]:
            del sys.modules[_name]
        if _jobledger_lock is not None:
            os.close(_jobledger_lock)
        return _jobledger_mismatch(
            _jobledger_problem,
            "Run make install for jobledger 0.5.0 on the database server."
            + (" This session loaded jobledger %s before the update; if this keeps failing after"
               " make install, reconnect." % GD["jobledger.reloaded_from"]
               if "jobledger.reloaded_from" in GD else ""),
        )
    GD["jobledger.path"] = _jobledger_dir
    GD["jobledger.lock"] = _jobledger_lock
    GD["jobledger.version"] = "0.5.0"
import jobledger.server
return jobledger.server.check_template(plpy, query, params)
$python$;
COMMENT ON FUNCTION jobledger_internal.check_template_py(text, text) IS
    'Internal: the placeholders of a template PostgreSQL''s grammar accepts, as an outcome (see jobledger_internal.outcome_value).';
REVOKE ALL ON FUNCTION jobledger_internal.check_template_py(text, text) FROM PUBLIC;

-- What the upgrade to 0.5.0 asks of a version an older jobledger recorded,
-- run as the version's owner (sql/after/10_check_versions.sql).
CREATE OR REPLACE FUNCTION jobledger_internal.analyse_version_py(job text, query text, params text)
RETURNS jsonb
LANGUAGE plpython3u
SET search_path = pg_catalog, jobledger, pg_temp
SET standard_conforming_strings = on
AS $python$
# jobledger prelude, put into every PL/Python function by sql/assemble.py.
# Once per session (and again after ALTER EXTENSION jobledger UPDATE): load
# this version's package and check it is the one this SQL was built for.
#
# @PYTHON_LIBDIR@/0.5.0 is a symlink to a complete install that make
# install replaces in one rename (plpython/install_package.py).  The session
# resolves it once, puts that content directory on sys.path (imports are
# lazy: every later import of the session comes from the same install) and
# holds a shared lock on its .in-use file until the session ends, so make
# install does not remove it under the session.
#
# A session that loaded another version (a pooled connection across ALTER
# EXTENSION UPDATE) drops it first: the modules loaded from that version's
# directory leave sys.modules, the directory leaves sys.path, its lock is
# released.  Problems are returned as error outcomes (see jobledger.server),
# which the calling SQL function raises; the package may not be importable.
if GD.get("jobledger.version") != "0.5.0":
    import fcntl
    import json
    import os
    import sys
    import time

    def _jobledger_mismatch(message, hint):
        return json.dumps({"error": {"message": message, "sqlstate": "55000",
                                     "detail": "category: version_mismatch", "hint": hint}})

    if "jobledger.version" in GD:
        _jobledger_old = GD.pop("jobledger.version")
        # 0.4.0 and earlier put the version's directory itself on sys.path.
        _jobledger_old_dir = GD.pop("jobledger.path", None) or "@PYTHON_LIBDIR@/" + _jobledger_old
        _jobledger_roots = {_jobledger_old_dir, os.path.realpath(_jobledger_old_dir)}
        # And wherever the old package itself was found.
        _file = getattr(sys.modules.get("jobledger"), "__file__", None)
        if _file:
            _jobledger_roots.add(os.path.dirname(os.path.dirname(_file)))
        _jobledger_roots = tuple(root.rstrip("/") + "/" for root in _jobledger_roots)
        for _name, _module in list(sys.modules.items()):
            _file = getattr(_module, "__file__", None) or ""
            _paths = list(getattr(_module, "__path__", None) or [])
            if (_name == "jobledger" or _name.startswith("jobledger.")
                    or _file.startswith(_jobledger_roots)
                    or any(str(_p).startswith(_jobledger_roots) for _p in _paths)):
                del sys.modules[_name]
        sys.path[:] = [_p for _p in sys.path if _p.rstrip("/") + "/" not in _jobledger_roots]
        for _p in list(sys.path_importer_cache):
            if str(_p).startswith(_jobledger_roots):
                del sys.path_importer_cache[_p]
        if GD.get("jobledger.lock") is not None:
            os.close(GD.pop("jobledger.lock"))
        import importlib
        importlib.invalidate_caches()
        GD["jobledger.reloaded_from"] = _jobledger_old
    _jobledger_link = "@PYTHON_LIBDIR@/0.5.0"
    _jobledger_dir, _jobledger_lock = _jobledger_link, None
    for _attempt in range(50):
        _jobledger_dir = os.path.realpath(_jobledger_link)
        _mark = os.path.join(_jobledger_dir, ".in-use")
        try:
            _jobledger_lock = os.open(_mark, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            if os.path.islink(_jobledger_link) or not os.path.isdir(_jobledger_dir):
                time.sleep(0.01)  # replaced meanwhile, or not installed: look again
                continue
            break  # a plain directory (installed before this layout): nothing to lock
        fcntl.flock(_jobledger_lock, fcntl.LOCK_SH)
        try:
            if os.path.samestat(os.fstat(_jobledger_lock), os.stat(_mark)):
                break  # still in place: make install keeps it while we hold the lock
        except FileNotFoundError:
            pass
        os.close(_jobledger_lock)  # removed by make install meanwhile: look again
        _jobledger_lock = None
    if _jobledger_dir not in sys.path:
        sys.path.insert(0, _jobledger_dir)
    try:
        import jobledger
        import jobledger.server
        _jobledger_problem = None
        if jobledger.__version__ != "0.5.0":
            _jobledger_problem = "the jobledger package in %s is %s, not 0.5.0" % (
                _jobledger_dir, jobledger.__version__)
    except ImportError as _exc:
        _jobledger_problem = "cannot import the jobledger 0.5.0 Python package from %s: %s" % (
            _jobledger_dir, _exc)
    if _jobledger_problem is not None:
        sys.path[:] = [_p for _p in sys.path if _p != _jobledger_dir]
        for _name in [_n for _n in sys.modules if _n == "jobledger" or _n.startswith("jobledger.")]:
            del sys.modules[_name]
        if _jobledger_lock is not None:
            os.close(_jobledger_lock)
        return _jobledger_mismatch(
            _jobledger_problem,
            "Run make install for jobledger 0.5.0 on the database server."
            + (" This session loaded jobledger %s before the update; if this keeps failing after"
               " make install, reconnect." % GD["jobledger.reloaded_from"]
               if "jobledger.reloaded_from" in GD else ""),
        )
    GD["jobledger.path"] = _jobledger_dir
    GD["jobledger.lock"] = _jobledger_lock
    GD["jobledger.version"] = "0.5.0"
import jobledger.server
return jobledger.server.analyse_version(plpy, job, query, params)
$python$;
COMMENT ON FUNCTION jobledger_internal.analyse_version_py(text, text, text) IS
    'Internal: a job version checked under the current template rules with the caller''s rights (placeholders, output columns by kind of value), as an outcome.';
GRANT EXECUTE ON FUNCTION jobledger_internal.analyse_version_py(text, text, text) TO PUBLIC;

CREATE OR REPLACE FUNCTION jobledger_internal.submit_job_py(
    job text, params jsonb, idempotency_key text, priority integer, run_after timestamptz, max_attempts integer
)
RETURNS jsonb
LANGUAGE plpython3u
SET search_path = pg_catalog, jobledger, pg_temp
AS $python$
# jobledger prelude, put into every PL/Python function by sql/assemble.py.
# Once per session (and again after ALTER EXTENSION jobledger UPDATE): load
# this version's package and check it is the one this SQL was built for.
#
# @PYTHON_LIBDIR@/0.5.0 is a symlink to a complete install that make
# install replaces in one rename (plpython/install_package.py).  The session
# resolves it once, puts that content directory on sys.path (imports are
# lazy: every later import of the session comes from the same install) and
# holds a shared lock on its .in-use file until the session ends, so make
# install does not remove it under the session.
#
# A session that loaded another version (a pooled connection across ALTER
# EXTENSION UPDATE) drops it first: the modules loaded from that version's
# directory leave sys.modules, the directory leaves sys.path, its lock is
# released.  Problems are returned as error outcomes (see jobledger.server),
# which the calling SQL function raises; the package may not be importable.
if GD.get("jobledger.version") != "0.5.0":
    import fcntl
    import json
    import os
    import sys
    import time

    def _jobledger_mismatch(message, hint):
        return json.dumps({"error": {"message": message, "sqlstate": "55000",
                                     "detail": "category: version_mismatch", "hint": hint}})

    if "jobledger.version" in GD:
        _jobledger_old = GD.pop("jobledger.version")
        # 0.4.0 and earlier put the version's directory itself on sys.path.
        _jobledger_old_dir = GD.pop("jobledger.path", None) or "@PYTHON_LIBDIR@/" + _jobledger_old
        _jobledger_roots = {_jobledger_old_dir, os.path.realpath(_jobledger_old_dir)}
        # And wherever the old package itself was found.
        _file = getattr(sys.modules.get("jobledger"), "__file__", None)
        if _file:
            _jobledger_roots.add(os.path.dirname(os.path.dirname(_file)))
        _jobledger_roots = tuple(root.rstrip("/") + "/" for root in _jobledger_roots)
        for _name, _module in list(sys.modules.items()):
            _file = getattr(_module, "__file__", None) or ""
            _paths = list(getattr(_module, "__path__", None) or [])
            if (_name == "jobledger" or _name.startswith("jobledger.")
                    or _file.startswith(_jobledger_roots)
                    or any(str(_p).startswith(_jobledger_roots) for _p in _paths)):
                del sys.modules[_name]
        sys.path[:] = [_p for _p in sys.path if _p.rstrip("/") + "/" not in _jobledger_roots]
        for _p in list(sys.path_importer_cache):
            if str(_p).startswith(_jobledger_roots):
                del sys.path_importer_cache[_p]
        if GD.get("jobledger.lock") is not None:
            os.close(GD.pop("jobledger.lock"))
        import importlib
        importlib.invalidate_caches()
        GD["jobledger.reloaded_from"] = _jobledger_old
    _jobledger_link = "@PYTHON_LIBDIR@/0.5.0"
    _jobledger_dir, _jobledger_lock = _jobledger_link, None
    for _attempt in range(50):
        _jobledger_dir = os.path.realpath(_jobledger_link)
        _mark = os.path.join(_jobledger_dir, ".in-use")
        try:
            _jobledger_lock = os.open(_mark, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            if os.path.islink(_jobledger_link) or not os.path.isdir(_jobledger_dir):
                time.sleep(0.01)  # replaced meanwhile, or not installed: look again
                continue
            break  # a plain directory (installed before this layout): nothing to lock
        fcntl.flock(_jobledger_lock, fcntl.LOCK_SH)
        try:
            if os.path.samestat(os.fstat(_jobledger_lock), os.stat(_mark)):
                break  # still in place: make install keeps it while we hold the lock
        except FileNotFoundError:
            pass
        os.close(_jobledger_lock)  # removed by make install meanwhile: look again
        _jobledger_lock = None
    if _jobledger_dir not in sys.path:
        sys.path.insert(0, _jobledger_dir)
    try:
        import jobledger
        import jobledger.server
        _jobledger_problem = None
        if jobledger.__version__ != "0.5.0":
            _jobledger_problem = "the jobledger package in %s is %s, not 0.5.0" % (
                _jobledger_dir, jobledger.__version__)
    except ImportError as _exc:
        _jobledger_problem = "cannot import the jobledger 0.5.0 Python package from %s: %s" % (
            _jobledger_dir, _exc)
    if _jobledger_problem is not None:
        sys.path[:] = [_p for _p in sys.path if _p != _jobledger_dir]
        for _name in [_n for _n in sys.modules if _n == "jobledger" or _n.startswith("jobledger.")]:
            del sys.modules[_name]
        if _jobledger_lock is not None:
            os.close(_jobledger_lock)
        return _jobledger_mismatch(
            _jobledger_problem,
            "Run make install for jobledger 0.5.0 on the database server."
            + (" This session loaded jobledger %s before the update; if this keeps failing after"
               " make install, reconnect." % GD["jobledger.reloaded_from"]
               if "jobledger.reloaded_from" in GD else ""),
        )
    GD["jobledger.path"] = _jobledger_dir
    GD["jobledger.lock"] = _jobledger_lock
    GD["jobledger.version"] = "0.5.0"
import jobledger.server
return jobledger.server.submit_job(plpy, job, params, idempotency_key, priority, run_after, max_attempts)
$python$;
COMMENT ON FUNCTION jobledger_internal.submit_job_py(text, jsonb, text, integer, timestamptz, integer) IS
    'Internal: the outcome of jobledger.submit_job (see jobledger_internal.outcome_value).';
REVOKE ALL ON FUNCTION jobledger_internal.submit_job_py(text, jsonb, text, integer, timestamptz, integer) FROM PUBLIC;

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
    SELECT (jobledger_internal.outcome_value(jobledger_internal.submit_job_py(
                submit_job.job, submit_job.params, submit_job.idempotency_key, submit_job.priority,
                submit_job.run_after, submit_job.max_attempts
            )) OPERATOR(pg_catalog.#>>) '{}'::text[])::uuid
$$;
COMMENT ON FUNCTION jobledger.submit_job(text, jsonb, text, integer, timestamptz, integer) IS
    'Validates the parameters, renders the query with each value as one typed literal, checks the output against the destination and records a pending run; returns its id. The same idempotency_key for the same job returns the existing run.';
GRANT EXECUTE ON FUNCTION jobledger.submit_job(text, jsonb, text, integer, timestamptz, integer) TO PUBLIC;

-- from plpython/30_schedules.sql
-- When a schedule ticks next (python/jobledger/server/cron.py), for the
-- next_tick column of jobledger.schedules (sql/objects/90_schedules.sql).
CREATE OR REPLACE FUNCTION jobledger_internal.next_tick_py(cron text, after text, time_zone text)
RETURNS jsonb
LANGUAGE plpython3u
STABLE
SET search_path = pg_catalog, jobledger, pg_temp
AS $python$
# jobledger prelude, put into every PL/Python function by sql/assemble.py.
# Once per session (and again after ALTER EXTENSION jobledger UPDATE): load
# this version's package and check it is the one this SQL was built for.
#
# @PYTHON_LIBDIR@/0.5.0 is a symlink to a complete install that make
# install replaces in one rename (plpython/install_package.py).  The session
# resolves it once, puts that content directory on sys.path (imports are
# lazy: every later import of the session comes from the same install) and
# holds a shared lock on its .in-use file until the session ends, so make
# install does not remove it under the session.
#
# A session that loaded another version (a pooled connection across ALTER
# EXTENSION UPDATE) drops it first: the modules loaded from that version's
# directory leave sys.modules, the directory leaves sys.path, its lock is
# released.  Problems are returned as error outcomes (see jobledger.server),
# which the calling SQL function raises; the package may not be importable.
if GD.get("jobledger.version") != "0.5.0":
    import fcntl
    import json
    import os
    import sys
    import time

    def _jobledger_mismatch(message, hint):
        return json.dumps({"error": {"message": message, "sqlstate": "55000",
                                     "detail": "category: version_mismatch", "hint": hint}})

    if "jobledger.version" in GD:
        _jobledger_old = GD.pop("jobledger.version")
        # 0.4.0 and earlier put the version's directory itself on sys.path.
        _jobledger_old_dir = GD.pop("jobledger.path", None) or "@PYTHON_LIBDIR@/" + _jobledger_old
        _jobledger_roots = {_jobledger_old_dir, os.path.realpath(_jobledger_old_dir)}
        # And wherever the old package itself was found.
        _file = getattr(sys.modules.get("jobledger"), "__file__", None)
        if _file:
            _jobledger_roots.add(os.path.dirname(os.path.dirname(_file)))
        _jobledger_roots = tuple(root.rstrip("/") + "/" for root in _jobledger_roots)
        for _name, _module in list(sys.modules.items()):
            _file = getattr(_module, "__file__", None) or ""
            _paths = list(getattr(_module, "__path__", None) or [])
            if (_name == "jobledger" or _name.startswith("jobledger.")
                    or _file.startswith(_jobledger_roots)
                    or any(str(_p).startswith(_jobledger_roots) for _p in _paths)):
                del sys.modules[_name]
        sys.path[:] = [_p for _p in sys.path if _p.rstrip("/") + "/" not in _jobledger_roots]
        for _p in list(sys.path_importer_cache):
            if str(_p).startswith(_jobledger_roots):
                del sys.path_importer_cache[_p]
        if GD.get("jobledger.lock") is not None:
            os.close(GD.pop("jobledger.lock"))
        import importlib
        importlib.invalidate_caches()
        GD["jobledger.reloaded_from"] = _jobledger_old
    _jobledger_link = "@PYTHON_LIBDIR@/0.5.0"
    _jobledger_dir, _jobledger_lock = _jobledger_link, None
    for _attempt in range(50):
        _jobledger_dir = os.path.realpath(_jobledger_link)
        _mark = os.path.join(_jobledger_dir, ".in-use")
        try:
            _jobledger_lock = os.open(_mark, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            if os.path.islink(_jobledger_link) or not os.path.isdir(_jobledger_dir):
                time.sleep(0.01)  # replaced meanwhile, or not installed: look again
                continue
            break  # a plain directory (installed before this layout): nothing to lock
        fcntl.flock(_jobledger_lock, fcntl.LOCK_SH)
        try:
            if os.path.samestat(os.fstat(_jobledger_lock), os.stat(_mark)):
                break  # still in place: make install keeps it while we hold the lock
        except FileNotFoundError:
            pass
        os.close(_jobledger_lock)  # removed by make install meanwhile: look again
        _jobledger_lock = None
    if _jobledger_dir not in sys.path:
        sys.path.insert(0, _jobledger_dir)
    try:
        import jobledger
        import jobledger.server
        _jobledger_problem = None
        if jobledger.__version__ != "0.5.0":
            _jobledger_problem = "the jobledger package in %s is %s, not 0.5.0" % (
                _jobledger_dir, jobledger.__version__)
    except ImportError as _exc:
        _jobledger_problem = "cannot import the jobledger 0.5.0 Python package from %s: %s" % (
            _jobledger_dir, _exc)
    if _jobledger_problem is not None:
        sys.path[:] = [_p for _p in sys.path if _p != _jobledger_dir]
        for _name in [_n for _n in sys.modules if _n == "jobledger" or _n.startswith("jobledger.")]:
            del sys.modules[_name]
        if _jobledger_lock is not None:
            os.close(_jobledger_lock)
        return _jobledger_mismatch(
            _jobledger_problem,
            "Run make install for jobledger 0.5.0 on the database server."
            + (" This session loaded jobledger %s before the update; if this keeps failing after"
               " make install, reconnect." % GD["jobledger.reloaded_from"]
               if "jobledger.reloaded_from" in GD else ""),
        )
    GD["jobledger.path"] = _jobledger_dir
    GD["jobledger.lock"] = _jobledger_lock
    GD["jobledger.version"] = "0.5.0"
import jobledger.server
return jobledger.server.next_tick(plpy, cron, after, time_zone)
$python$;
COMMENT ON FUNCTION jobledger_internal.next_tick_py(text, text, text) IS
    'Internal: the outcome of jobledger_internal.next_tick (see jobledger_internal.outcome_value).';
REVOKE ALL ON FUNCTION jobledger_internal.next_tick_py(text, text, text) FROM PUBLIC;  -- the same ACL after an upgrade as after an install
GRANT EXECUTE ON FUNCTION jobledger_internal.next_tick_py(text, text, text) TO PUBLIC;

-- from sql/after/10_check_versions.sql
-- Versions recorded by an older jobledger are checked under today's rules,
-- each with its owner's rights (SET LOCAL ROLE: nothing from a template
-- runs with more), and the outcome is kept in job_version_check.  Versions
-- that would now be refused are listed in a WARNING and in the view
-- jobledger.refused_versions; they stay in the ledger, and their owners
-- define the jobs again.  Only current versions: no other is submitted.
-- A fresh install has no versions; an upgrade checks each once.
DO $check_versions$
DECLARE
    v record;
    outcome jsonb;
    refused text := '';
BEGIN
    FOR v IN
        SELECT jv.job, jv.version, jv.query, jv.params, j.owner
          FROM jobledger.job AS j
          JOIN jobledger.job_version AS jv ON jv.job = j.name AND jv.version = j.current_version
         WHERE NOT EXISTS (SELECT 1 FROM jobledger.job_version_check AS c
                            WHERE c.job = jv.job AND c.version = jv.version)
         ORDER BY jv.job
    LOOP
        BEGIN
            IF pg_catalog.to_regrole(pg_catalog.quote_ident(v.owner)) IS NULL THEN
                outcome := pg_catalog.jsonb_build_object('error', pg_catalog.jsonb_build_object(
                    'message', pg_catalog.format('its owner %s no longer exists', v.owner)));
            ELSE
                EXECUTE pg_catalog.format('SET LOCAL ROLE %I', v.owner);
                outcome := jobledger_internal.analyse_version_py(v.job, v.query, v.params::pg_catalog.text);
                RESET ROLE;
            END IF;
        EXCEPTION WHEN OTHERS THEN
            outcome := pg_catalog.jsonb_build_object('error', pg_catalog.jsonb_build_object('message', SQLERRM));
        END;
        INSERT INTO jobledger.job_version_check (job, version, placeholders, query_end, shapes, dependencies, problem)
        VALUES (v.job, v.version, outcome OPERATOR(pg_catalog.#>) '{value,placeholders}',
                (outcome OPERATOR(pg_catalog.#>>) '{value,query_end}')::pg_catalog.int4,
                outcome OPERATOR(pg_catalog.#>) '{value,shapes}',
                outcome OPERATOR(pg_catalog.#>) '{value,dependencies}',
                outcome OPERATOR(pg_catalog.#>>) '{error,message}');
        IF outcome OPERATOR(pg_catalog.?) 'error' THEN
            refused := refused || pg_catalog.format(E'\n  %s version %s: %s', v.job, v.version,
                                                     outcome OPERATOR(pg_catalog.#>>) '{error,message}');
        END IF;
    END LOOP;
    IF refused <> '' THEN
        RAISE WARNING 'jobledger: these job versions are refused under the new template rules: %', refused
            USING HINT = 'Their owners define the jobs again; SELECT * FROM jobledger.refused_versions lists them.';
    END IF;
END
$check_versions$;
