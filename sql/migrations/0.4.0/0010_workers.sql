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
