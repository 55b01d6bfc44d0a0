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
