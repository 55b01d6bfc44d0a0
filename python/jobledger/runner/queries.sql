-- The runner's SQL, one named block each (loaded by jobledger.runner.queries).
-- Values are always bound (%(name)s); the statements that need identifiers
-- (the destination, its columns) are psycopg.sql templates ({name}) filled
-- with sql.Identifier.  The job's rendered SQL is the only text spliced in,
-- and it comes from the ledger, where submit_job stored it.

-- name: extension_version
-- The installed extension: the runner needs the functions of 0.3.0.
SELECT e.extversion
  FROM pg_catalog.pg_extension AS e
 WHERE e.extname = 'jobledger'

-- name: default_lease
-- The lease reconcile_orphaned applies when not told one (see its comment).
SELECT coalesce(nullif(pg_catalog.current_setting('jobledger.lease', true), ''),
                '1 minute')::interval AS lease

-- name: backend_identity
-- The server backend this statement ran on (runner.pooling): a connection of
-- its own has one backend for its whole life; behind a pooler in transaction
-- mode, consecutive transactions may run on different ones.
SELECT a.pid, a.backend_start
  FROM pg_catalog.pg_stat_activity AS a
 WHERE a.pid = pg_catalog.pg_backend_pid()

-- name: pinned_by_startup
-- Whether the settings of the startup packet's options reached the server
-- (runner.session.pin): extra_float_digits is pinned there and set by
-- nothing else (a pooler that drops "options" leaves it at its default).
SELECT s.source = 'client' AS pinned
  FROM pg_catalog.pg_settings AS s
 WHERE s.name = 'extra_float_digits'

-- name: session_reset
-- What a run left in its session goes (runner.session.RESET): DISCARD ALL
-- without its DISCARD PLANS, statement by statement in DISCARD ALL's
-- documented order (no statement may hold a semicolon: they are split on it).
CLOSE ALL;
SET SESSION AUTHORIZATION DEFAULT;
RESET ALL;
DEALLOCATE ALL;
UNLISTEN *;
SELECT pg_catalog.pg_advisory_unlock_all();
DISCARD TEMP;
DISCARD SEQUENCES

-- name: pin_setting
-- A pinned setting, when the startup packet could not carry it
-- (runner.session.pin; a psycopg.sql template: name and value are composed).
SET {name} = {value}

-- name: listen
LISTEN jobledger_runs

-- name: claim_runs
-- Every column but the parameters, which the runner never decodes (a jsonb
-- number may have more digits than Python reads): only the JSON type of each
-- value, which is what the output columns of the rendered SQL may depend on.
SELECT c.id, c.job, c.job_version, c.attempt, c.max_attempts, c.rendered_sql,
       (SELECT pg_catalog.string_agg(p.key || ':' || pg_catalog.jsonb_typeof(p.value), ',' ORDER BY p.key)
          FROM pg_catalog.jsonb_each(CASE WHEN pg_catalog.jsonb_typeof(c.parameters) = 'object'
                                          THEN c.parameters END) AS p) AS parameter_shape,
       c.mode, c.owner, c.timeout_ms, c.destination, c.destination_schema, c.destination_table,
       c.primary_key, c.created_at, c.started_at
  FROM jobledger_internal.claim_runs(%(worker)s, %(max_runs)s) AS c

-- name: lake_create_lock
-- Runs that find their lake table missing and may create it take this lock
-- (to the end of the run's transaction) and look again: two first runs into
-- one new table would otherwise both commit its version 0, and one would
-- fail.  Every runner shares the database, so this serialises them all.
SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('jobledger.lake create ' || %(uri)s, 0))

-- name: claim_runs_affinity
-- claim_runs with affinity (0.6.0): prefer_job's next run first at equal priority.
SELECT c.id, c.job, c.job_version, c.attempt, c.max_attempts, c.rendered_sql,
       (SELECT pg_catalog.string_agg(p.key || ':' || pg_catalog.jsonb_typeof(p.value), ',' ORDER BY p.key)
          FROM pg_catalog.jsonb_each(CASE WHEN pg_catalog.jsonb_typeof(c.parameters) = 'object'
                                          THEN c.parameters END) AS p) AS parameter_shape,
       c.mode, c.owner, c.timeout_ms, c.destination, c.destination_schema, c.destination_table,
       c.primary_key, c.created_at, c.started_at
  FROM jobledger_internal.claim_runs(%(worker)s, %(max_runs)s, %(prefer_job)s) AS c

-- name: claim_affinity_available
-- Whether this database has claim_runs with affinity and the runner may call it.
SELECT CASE WHEN pg_catalog.to_regprocedure('jobledger_internal.claim_runs(text, integer, text)') IS NULL THEN false
            ELSE pg_catalog.has_function_privilege('jobledger_internal.claim_runs(text, integer, text)', 'EXECUTE')
       END

-- name: run_context
-- The start of a run's transaction: everything LOCAL, so it ends with it.
-- The job owner's role; its timeout (0: none); the search_path the template
-- was checked with; and the run's application_name (a digest of its id),
-- which is how cancel_run and reconcile_orphaned know this backend executes
-- this run.
SELECT pg_catalog.set_config('role', %(owner)s, true),
       pg_catalog.set_config('statement_timeout', %(timeout_ms)s, true),
       pg_catalog.set_config('search_path', %(search_path)s, true),
       pg_catalog.set_config('application_name', jobledger_internal.run_application_name(%(run)s), true)

-- name: describe_context
-- Finding the columns a run's query produces: parsed (never executed) as the
-- job's owner (parsing checks USAGE on schemas) with the template's search_path.
SELECT pg_catalog.set_config('role', %(owner)s, true),
       pg_catalog.set_config('search_path', %(search_path)s, true)

-- name: append
INSERT INTO {destination} ({columns}) (
{query}
)

-- name: overwrite_lock
-- overwrite, step 1: one overwrite of a table at a time.  SHARE ROW EXCLUSIVE
-- conflicts with itself and with writers, not with readers.  Without it, two
-- overwrites running together would both keep their rows: under READ
-- COMMITTED the second DELETE waits for the first, then skips the rows it
-- deleted and cannot see the ones it inserted.  (Needs DELETE, which the
-- owner of an overwrite job has.)
LOCK TABLE {destination} IN SHARE ROW EXCLUSIVE MODE

-- name: overwrite_delete
-- overwrite, step 2: DELETE, not TRUNCATE.  Readers keep seeing the old rows
-- (MVCC) until the run commits, then the new ones, never an empty or partial
-- table; TRUNCATE would take ACCESS EXCLUSIVE and is not MVCC-safe.  The
-- query runs after this, so it must not read its own destination.
DELETE FROM {destination}

-- name: merge
-- Upsert on the primary key, updating every other column the query produces.
INSERT INTO {destination} ({columns}) (
{query}
)
ON CONFLICT ({key}) DO UPDATE SET {assignments}

-- name: merge_keys_only
-- The query produces key columns only: new keys are inserted, known ones kept.
INSERT INTO {destination} ({columns}) (
{query}
)
ON CONFLICT ({key}) DO NOTHING

-- name: merge_assignment
{column} = EXCLUDED.{column}

-- name: reset_role
-- After the write: back to the runner's own role (complete_run and the next
-- claim are the runner's, not the owner's; 'none' is what RESET ROLE sets),
-- neither the job's timeout nor any timeout the job set for itself applies
-- to the runner's own statements, and their names resolve in pg_catalog
-- only, whatever the job created.  (What the job set for the session is gone
-- after the COMMIT: runner.session.)
SELECT pg_catalog.set_config('role', 'none', true),
       pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true),
       pg_catalog.set_config('statement_timeout', '0', true),
       pg_catalog.set_config('lock_timeout', '0', true),
       pg_catalog.set_config('idle_in_transaction_session_timeout', '0', true)

-- name: complete_run
-- The six-argument form (0.6.0): no snapshot for a table, the run's metrics.
SELECT jobledger_internal.complete_run(%(run)s, %(attempt)s, %(worker)s, %(rows_written)s, NULL::pg_catalog.text,
                                       %(metrics)s::pg_catalog.jsonb)

-- name: fail_run
SELECT jobledger_internal.fail_run(%(run)s, %(attempt)s, %(worker)s, %(error)s, %(sqlstate)s, %(category)s,
                          %(retry)s, %(backoff)s) AS status

-- name: release_run
SELECT jobledger_internal.release_run(%(run)s, %(attempt)s, %(worker)s) AS released

-- name: heartbeat
SELECT jobledger_internal.heartbeat(%(worker)s, %(runs)s::uuid[]) AS touched

-- name: reconcile_orphaned
SELECT jobledger.reconcile_orphaned(%(reason)s, %(lease)s) AS changed

-- name: lake_write_allowed
-- Whether the run's owner may write the lake location it is about to write
-- (runner.lake.check_lake_writer, right before writing; the grants may have
-- changed since submit_job asked the same).  Executable by every role.
SELECT jobledger_internal.lake_write_allowed(%(owner)s, %(uri)s) AS ok

-- name: lake_settings
-- What the database says about result and parquet runs, from the runner's
-- own session (ALTER DATABASE/ROLE ... SET jobledger.result_max_bytes = '16MB'):
-- the size cap of a stored result, how long old dataset files are kept for
-- readers of earlier versions, how often a long write reports its progress.
SELECT pg_catalog.pg_size_bytes(coalesce(nullif(pg_catalog.current_setting('jobledger.result_max_bytes', true), ''),
                                         '64MB')) AS result_max_bytes,
       coalesce(nullif(pg_catalog.current_setting('jobledger.parquet_retention', true), ''),
                '1 day')::interval AS parquet_retention,
       coalesce(nullif(pg_catalog.current_setting('jobledger.progress_interval', true), ''),
                '1 second')::interval AS progress_interval

-- name: explain
-- The planner's row estimate, for progress: planned as the owner, never run.
EXPLAIN (FORMAT JSON) {query}

-- name: emit_output
SELECT jobledger_internal.emit_output(%(run)s, %(name)s, %(content_type)s, %(data)s, %(parents)s::uuid[]) AS id

-- name: lock_run
SELECT jobledger_internal.lock_run(%(run)s, %(attempt)s, %(worker)s)

-- name: report_progress
SELECT jobledger_internal.report_progress(%(run)s, %(attempt)s, %(worker)s, %(rows_written)s, %(progress)s) AS reported

-- name: complete_run_snapshot
SELECT jobledger_internal.complete_run(%(run)s, %(attempt)s, %(worker)s, %(rows_written)s, %(snapshot_id)s,
                                       %(metrics)s::pg_catalog.jsonb)

-- ---- --connect-as-owner (runner.owners): on the job owner's connection ----

-- name: attach_run
-- Before the run's transaction, in one of its own: this backend executes the run.
SELECT jobledger_internal.attach_run(%(run)s, %(attempt)s, %(worker)s)

-- name: complete_attached_run
SELECT jobledger_internal.complete_attached_run(%(run)s, %(attempt)s, %(worker)s, %(rows_written)s, NULL::pg_catalog.text,
                                                %(metrics)s::pg_catalog.jsonb)

-- name: complete_attached_run_snapshot
SELECT jobledger_internal.complete_attached_run(%(run)s, %(attempt)s, %(worker)s, %(rows_written)s, %(snapshot_id)s,
                                                %(metrics)s::pg_catalog.jsonb)

-- name: emit_attached_output
SELECT jobledger_internal.emit_attached_output(%(run)s, %(attempt)s, %(worker)s, %(name)s, %(content_type)s, %(data)s,
                                      %(parents)s::uuid[]) AS id

-- name: lock_attached_run
SELECT jobledger_internal.lock_attached_run(%(run)s, %(attempt)s, %(worker)s)

-- ---- webhooks (runner.webhooks): on a connection of their own ----

-- name: webhook_hold
-- In the delivery's transaction, before the claim: a runner frozen during
-- its POST (SIGSTOP, a hung machine) loses its transaction, and the row's
-- lock with it, this long after the POST's timeout, whatever the server's
-- idle_in_transaction_session_timeout (which could also cut a slow POST short).
SELECT pg_catalog.set_config('idle_in_transaction_session_timeout', %(hold_ms)s, true)

-- name: claim_webhook_deliveries
-- Due deliveries, locked until this transaction ends (the POST happens inside it).
SELECT d.id, d.url, d.payload, d.attempts
  FROM jobledger_internal.claim_webhook_deliveries(%(max_deliveries)s) AS d

-- name: record_webhook_attempt
SELECT jobledger_internal.record_webhook_attempt(%(delivery)s, %(http_status)s, %(error)s, %(max_attempts)s)
