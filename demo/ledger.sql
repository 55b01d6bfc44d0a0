-- jobledger demo, part 3: what the runner did, as anyone with psql sees it.
\set ON_ERROR_STOP 1
\pset footer off
\echo
\echo '== The ledger: jobledger.runs'
SELECT job, status, attempt, rows_written, snapshot_id, worker,
       round(extract(epoch FROM duration) * 1000, 1) AS ms, error_category, error, parameters
  FROM jobledger.runs ORDER BY created_at;
\echo '== Attempts: jobledger.run_attempt'
SELECT r.job, a.attempt, a.status, a.worker, a.finished_at - a.started_at AS took, a.error
  FROM jobledger.run_attempt AS a JOIN jobledger.run AS r ON r.id = a.run ORDER BY a.started_at;
\echo '== Per job: jobledger.job_stats'
SELECT job, runs, pending, running, succeeded, failed, cancelled, p50_duration FROM jobledger.job_stats ORDER BY job;
\echo '== Runners: jobledger.workers'
SELECT worker, state, version, concurrency, runs_in_flight, last_heartbeat - started_at AS ran_for FROM jobledger.workers;
\echo '== What the runs wrote'
SELECT picked_for, count(*) AS orders, min(amount) AS smallest, max(amount) AS largest
  FROM reports.big_orders GROUP BY picked_for ORDER BY picked_for;
SELECT * FROM reports.daily_revenue ORDER BY day;
SELECT * FROM reports.customer_totals ORDER BY customer_id LIMIT 5;
\echo '== The result kept with the top_customers run: jobledger.result_json(run)'
SELECT jsonb_pretty(jobledger.result_json(r.id)) AS top_customers
  FROM jobledger.run AS r WHERE r.job = 'top_customers' AND r.status = 'succeeded';
