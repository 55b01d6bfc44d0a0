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
