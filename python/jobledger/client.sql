-- The SQL of jobledger.client, one named block each (jobledger.core.named_sql).

-- name: submit
-- A psycopg.sql template: options is what submit_option makes of each
-- option the caller gave, so that the function's own defaults apply to the
-- others.
SELECT jobledger.submit_job(%(job)s, %(params)s::jsonb{options})

-- name: submit_option
-- A psycopg.sql template: name is the option (sql.Identifier), value its
-- placeholder (sql.Placeholder).
, {name} => {value}

-- name: status
SELECT v.*, r.snapshot_id, r.error_sqlstate FROM jobledger.runs AS v JOIN jobledger.run AS r ON r.id = v.id
 WHERE v.id = %s

-- name: result_arrow
SELECT jobledger.result_arrow(%s)

-- name: listen
-- Every change of a run's status, announced when it commits
-- (jobledger_internal.run_state_notify; payload {"run", "status", "attempt"}).
LISTEN jobledger_run_state

-- name: unlisten
UNLISTEN jobledger_run_state
