-- The runner's operational SQL (presence, metrics, retention), one named
-- block each, loaded by jobledger.runner.process like queries.sql.

-- name: worker_start
SELECT jobledger_internal.worker_start(%(worker)s, %(hostname)s, %(pid)s, %(version)s, %(concurrency)s, %(lease)s)

-- name: worker_beat
SELECT jobledger_internal.worker_beat(%(worker)s, %(runs_in_flight)s, %(stopped)s) AS known

-- name: queue_depth
-- Pending runs by job, ready now or waiting for run_after; every job the
-- runner's role may see, zeros included.
SELECT j.name AS job,
       count(r.id) FILTER (WHERE r.run_after <= pg_catalog.now()) AS ready,
       count(r.id) FILTER (WHERE r.run_after > pg_catalog.now()) AS scheduled
  FROM jobledger.job AS j
  LEFT JOIN jobledger.run AS r ON r.job = j.name AND r.status = 'pending'
 GROUP BY j.name
 ORDER BY j.name

-- name: run_status
-- After a fenced attempt: was it cancelled, or did another runner take it?
SELECT r.status::text AS status FROM jobledger.run AS r WHERE r.id = %(run)s

-- name: prune
SELECT jobledger.prune(succeeded_older_than => %(succeeded)s, failed_older_than => %(failed)s,
                       keep_last => %(keep_last)s) AS deleted
