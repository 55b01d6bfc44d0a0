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
       r.idempotency_key,
       -- 0.6.0: the dataset or table version a lake run committed (time travel).
       r.snapshot_id
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
           FILTER (WHERE r.status = 'succeeded') AS p95_duration,
       -- 0.6.0: the runner's figures of succeeded runs (run.metrics, checked
       -- by complete_run: numbers only).  Runs without the figure (older
       -- runners, a destination kind that does not measure it) are left out.
       percentile_cont(0.5) WITHIN GROUP (ORDER BY r.rows_written)
           FILTER (WHERE r.status = 'succeeded') AS p50_rows,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY r.rows_written)
           FILTER (WHERE r.status = 'succeeded') AS p95_rows,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY (r.metrics -> 'first_row_ms')::double precision)
           FILTER (WHERE r.status = 'succeeded') AS p50_first_row_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY (r.metrics -> 'first_row_ms')::double precision)
           FILTER (WHERE r.status = 'succeeded') AS p95_first_row_ms,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY (r.metrics -> 'bytes')::double precision)
           FILTER (WHERE r.status = 'succeeded') AS p50_bytes,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY (r.metrics -> 'bytes')::double precision)
           FILTER (WHERE r.status = 'succeeded') AS p95_bytes
  FROM jobledger.job AS j
  LEFT JOIN jobledger.run AS r ON r.job = j.name
 GROUP BY j.name, j.current_version;
COMMENT ON VIEW jobledger.job_stats IS
    'Per job: runs by status, last success and failure, median and 95th percentile of successful runs'' duration, rows written, time to first row and bytes written (the last two from run.metrics, where measured). Counts the jobs and runs the querying role may see.';
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
