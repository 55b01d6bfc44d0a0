-- The jobledger command's SQL (commands/*.py), one named block each.
-- Everything reads through the views and tables as the connecting role, so
-- row-level security decides what each user sees.

-- name: extension_version
SELECT e.extversion FROM pg_catalog.pg_extension AS e WHERE e.extname = 'jobledger'

-- name: run_exists
SELECT r.id FROM jobledger.run AS r WHERE r.id = %(id)s

-- name: runs_with_prefix
-- uuids order as their hex text, so a prefix is a range of run_pkey.
SELECT r.id FROM jobledger.run AS r WHERE r.id BETWEEN %(low)s AND %(high)s ORDER BY r.id LIMIT 3

-- name: job_params
SELECT v.params
  FROM jobledger.job AS j
  JOIN jobledger.job_version AS v ON v.job = j.name AND v.version = j.current_version
 WHERE j.name = %(job)s

-- name: submit
SELECT jobledger.submit_job(%(job)s, %(params)s::jsonb, idempotency_key => %(key)s, priority => %(priority)s,
                            run_after => %(run_after)s, max_attempts => %(max_attempts)s) AS id

-- name: run_state
SELECT r.status::text AS status, r.attempt, r.max_attempts, r.rows_written, r.error, r.error_category,
       r.error_sqlstate, r.created_at, r.started_at, r.finished_at, r.worker,
       coalesce(r.finished_at, pg_catalog.now()) - coalesce(r.started_at, r.created_at) AS elapsed
  FROM jobledger.run AS r WHERE r.id = %(id)s

-- name: runs
SELECT v.id, v.job, v.version, v.status::text AS status, v.attempt, v.max_attempts, v.created_at, v.started_at,
       v.finished_at, v.duration, v.queued_for, v.rows_written, v.worker, v.error_category, v.error, v.parameters,
       v.submitted_by
  FROM jobledger.runs AS v
 WHERE (%(job)s::text IS NULL OR v.job = %(job)s)
   AND (%(statuses)s::text[] IS NULL OR v.status::text = ANY (%(statuses)s::text[]))
 ORDER BY v.created_at DESC, v.id
 LIMIT %(limit)s

-- name: show_run
SELECT v.*, v.status::text AS status, r.rendered_sql, r.error_sqlstate, r.idempotency_key, r.snapshot_id,
       r.metrics, r.backend_pid, r.heartbeat_at, r.cancel_requested, jv.destination, jv.mode
  FROM jobledger.runs AS v
  JOIN jobledger.run AS r ON r.id = v.id
  LEFT JOIN jobledger.job_version AS jv ON jv.job = r.job AND jv.version = r.job_version
 WHERE v.id = %(id)s

-- name: attempts
SELECT a.attempt, a.status::text AS status, a.worker, a.backend_pid, a.started_at, a.finished_at,
       a.finished_at - a.started_at AS took, a.error, a.error_sqlstate
  FROM jobledger.run_attempt AS a WHERE a.run = %(id)s ORDER BY a.attempt

-- name: cancel
SELECT jobledger.cancel_run(%(id)s) AS cancelled

-- name: retry
SELECT jobledger.retry_run(%(id)s) AS id

-- name: jobs
-- max_running and paused_at came with 0.6.0: read through to_jsonb, which
-- has only the columns there are, they are NULL on older versions.
SELECT j.name, j.owner, j.description, j.current_version, v.mode, v.destination, v.timeout, v.max_attempts,
       (pg_catalog.to_jsonb(j) ->> 'max_running')::integer AS max_running,
       (pg_catalog.to_jsonb(j) ->> 'paused_at')::timestamptz AS paused_at,
       s.runs, s.pending, s.running, s.succeeded, s.failed, s.cancelled, s.last_success, s.last_failure,
       s.p50_duration
  FROM jobledger.job AS j
  LEFT JOIN jobledger.job_version AS v ON v.job = j.name AND v.version = j.current_version
  LEFT JOIN jobledger.job_stats AS s ON s.job = j.name
 ORDER BY j.name

-- name: job
SELECT j.name, j.owner, j.description, j.current_version, j.created_at, j.updated_at
  FROM jobledger.job AS j WHERE j.name = %(name)s

-- name: job_versions
SELECT v.version, v.query, v.params, v.destination, v.mode, v.timeout::text AS timeout, v.max_attempts,
       v.created_by, v.created_at
  FROM jobledger.job_version AS v WHERE v.job = %(name)s ORDER BY v.version

-- name: normalise_job_file
-- A job file's values as define_job would record them, for the comparison:
-- the destination as a qualified name (resolved with the templates'
-- search_path, pg_catalog then public), params as jsonb, the timeout as an
-- interval.  A destination that does not exist stays as written (applying
-- then fails with destination_missing).
SELECT coalesce((SELECT pg_catalog.format('%%I.%%I', n.nspname, c.relname)
                   FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
                  WHERE c.oid = pg_catalog.to_regclass(%(destination)s)), %(destination)s) AS destination,
       %(params)s::jsonb AS params,
       %(timeout)s::interval::text AS timeout

-- name: define
SELECT jobledger.define_job(%(name)s, %(query)s, %(destination)s, %(mode)s, %(params)s::jsonb,
                            %(timeout)s::interval, %(max_attempts)s, %(description)s) AS version

-- name: prune
SELECT jobledger.prune(succeeded_older_than => %(succeeded)s, failed_older_than => %(failed)s,
                       keep_last => %(keep_last)s, job => %(job)s) AS deleted

-- name: server
SELECT pg_catalog.current_setting('server_version') AS server_version,
       pg_catalog.current_database() AS database,
       (SELECT e.extversion FROM pg_catalog.pg_extension AS e WHERE e.extname = 'jobledger') AS extension_version,
       (SELECT pg_catalog.string_agg(v.version, ', ' ORDER BY v.version)
          FROM pg_catalog.pg_available_extension_versions AS v
         WHERE v.name = 'jobledger' AND NOT v.installed) AS other_versions_available

-- name: workers
SELECT w.worker, w.state, w.hostname, w.pid, w.version, w.concurrency, w.runs_in_flight, w.started_at,
       w.last_heartbeat, w.heartbeat_age
  FROM jobledger.workers AS w
 ORDER BY w.state = 'alive' DESC, w.last_heartbeat DESC

-- name: queue
SELECT r.job,
       count(*) FILTER (WHERE r.status = 'pending' AND r.run_after <= pg_catalog.now()) AS ready,
       count(*) FILTER (WHERE r.status = 'pending' AND r.run_after > pg_catalog.now()) AS scheduled,
       count(*) FILTER (WHERE r.status = 'running') AS running,
       min(r.created_at) FILTER (WHERE r.status = 'pending') AS oldest_pending,
       -- 0.6.0's, NULL before (as in the block jobs).
       (SELECT (pg_catalog.to_jsonb(j) ->> 'max_running')::integer
          FROM jobledger.job AS j WHERE j.name = r.job) AS max_running,
       coalesce((SELECT pg_catalog.to_jsonb(j) ->> 'paused_at' IS NOT NULL
                   FROM jobledger.job AS j WHERE j.name = r.job), false) AS paused
  FROM jobledger.run AS r
 WHERE r.status IN ('pending', 'running')
 GROUP BY r.job
 ORDER BY r.job

-- name: paused_jobs
-- Paused jobs (pause_job, 0.6.0; none before), with or without runs waiting.
SELECT j.name AS job, (pg_catalog.to_jsonb(j) ->> 'paused_at')::timestamptz AS paused_at,
       pg_catalog.to_jsonb(j) ->> 'paused_by' AS paused_by
  FROM jobledger.job AS j
 WHERE pg_catalog.to_jsonb(j) ->> 'paused_at' IS NOT NULL
 ORDER BY j.name

-- name: pause
SELECT jobledger.pause_job(%(name)s) AS changed

-- name: resume
SELECT jobledger.resume_job(%(name)s) AS changed

-- name: set_max_running
SELECT jobledger.set_max_running(%(name)s, %(max_running)s)

-- name: oldest_pending
SELECT r.id, r.job, r.created_at, r.run_after, pg_catalog.now() - r.created_at AS age
  FROM jobledger.run AS r
 WHERE r.status = 'pending'
 ORDER BY r.created_at, r.id
 LIMIT 1

-- name: schedules
SELECT name, owner, job, cron, params, priority, active, next_tick, last_tick_at, last_tick_status,
       last_tick_message, last_run, last_run_status, last_run_at
  FROM jobledger.schedules
 ORDER BY owner, name

-- name: backfill
SELECT value, run
  FROM jobledger.backfill(%(job)s, %(param)s, %(first)s, %(last)s, %(step)s, %(params)s::jsonb,
                          priority => %(priority)s)
