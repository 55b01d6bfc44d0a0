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
