-- The runner's state transitions: claim, complete, fail, heartbeat, release.
--
-- Only runners call these (REVOKE ... FROM PUBLIC; grant EXECUTE to the
-- runner's role, see README "The runner").  Every transition of a claimed
-- run is fenced (jobledger_internal.fenced_run, 15_run_transitions.sql): it
-- applies only while the run is still `running` with the caller's attempt
-- and worker, so a runner that lost its run (reconciled after its lease,
-- cancelled) can never overwrite what happened since.  docs/state-machine.md
-- draws every transition.

CREATE OR REPLACE FUNCTION jobledger_internal.claim_runs(worker text, max_runs integer, prefer_job text)
RETURNS TABLE (
    id uuid,
    job text,
    job_version integer,
    attempt integer,
    max_attempts integer,
    rendered_sql text,
    parameters jsonb,
    mode text,
    owner name,
    timeout_ms bigint,
    destination text,
    destination_schema name,
    destination_table name,
    primary_key name[],
    created_at timestamptz,
    started_at timestamptz
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    -- The connection calling this is the one that executes what it claims:
    -- its pid and backend_start let reconcile_orphaned see it die, and let
    -- cancel_run signal exactly it.
    my_start timestamptz := jobledger_internal.backend_start();
    -- The claim's own time, not its transaction's: a runner may claim its
    -- next run in the transaction that completes the previous one.
    claimed_at timestamptz := pg_catalog.clock_timestamp();
    candidate record;
    exclusive boolean;
    key text;
    -- What this call took, and what it found full (docs/runner.md,
    -- "Concurrency and pause").
    taken uuid[] := '{}';
    full_jobs text[] := '{}';
    busy_destinations text[] := '{}';
    serialised boolean := false;
    got uuid;
    -- Affinity (docs/runner.md, "Affinity"): prefer_job's first runnable
    -- run, if it is as good as the best one (same priority), is tried
    -- before the others.
    preferred record;
    use_preferred boolean := false;
    -- A declared cursor is planned for its first rows (cursor_tuple_fraction),
    -- as a claim reads only a few: the plan walks run_claim_idx in order.
    candidates CURSOR (due timestamptz) FOR
        SELECT r.id, r.job, j.max_running, v.mode, v.destination
          FROM jobledger.run AS r
          JOIN jobledger.job AS j ON j.name = r.job
          JOIN jobledger.job_version AS v ON v.job = r.job AND v.version = r.job_version
         WHERE r.status = 'pending'
           -- A sub-select, not the bare parameter: the planner cannot see
           -- the time, so the generic plan costs what a custom one does and
           -- plpgsql keeps it, instead of planning every claim.
           AND r.run_after <= (SELECT due)
           AND j.paused_at IS NULL
         ORDER BY r.priority DESC, r.run_after, r.created_at;
BEGIN
    IF claim_runs.worker IS NULL OR claim_runs.worker = '' THEN
        RAISE EXCEPTION 'claim_runs needs a worker name'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    IF claim_runs.max_runs IS NULL OR claim_runs.max_runs NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'max_runs must be between 1 and 1000, not %', claim_runs.max_runs
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;

    -- 1. The runnable pending runs, best first: highest priority, then the
    --    earliest due, then the oldest.  This matches run_claim_idx
    --    (partial: status = 'pending') column for column, so the scan walks
    --    the index in order and stops as soon as enough runs are taken (a
    --    loop's query is read a few rows at a time).  Runs of a paused job
    --    are passed over (pause_job).  Nothing is locked here: step 3 locks
    --    each run it takes.
    --    Affinity: with prefer_job (the job this executor just ran), that
    --    job's first due pending run comes first, if its priority is the
    --    best one pending: it passes over older runs of that priority only,
    --    never a higher priority, and goes through the same checks (2, 3).
    --    Two index probes: the best pending run's priority (the head of
    --    run_claim_idx), and the job's first run at it (run_job_claim_idx:
    --    priority, job, then claim order).
    IF claim_runs.prefer_job IS NOT NULL THEN
        -- The run alone first, then its job and version: joined before the
        -- LIMIT, the planner may fetch and sort every pending run of the job.
        SELECT r.id, r.job, j.max_running, v.mode, v.destination INTO preferred
          FROM (SELECT p.id, p.job, p.job_version
                  FROM jobledger.run AS p
                 WHERE p.status = 'pending'
                   AND p.job = claim_runs.prefer_job
                   AND p.run_after <= (SELECT claimed_at)
                   AND p.priority = (SELECT h.priority
                                       FROM jobledger.run AS h
                                       JOIN jobledger.job AS hj ON hj.name = h.job
                                      WHERE h.status = 'pending'
                                        AND h.run_after <= (SELECT claimed_at)
                                        AND hj.paused_at IS NULL
                                      ORDER BY h.priority DESC, h.run_after, h.created_at
                                      LIMIT 1)
                 ORDER BY p.run_after, p.created_at
                 LIMIT 1) AS r
          JOIN jobledger.job AS j ON j.name = r.job
          JOIN jobledger.job_version AS v ON v.job = r.job AND v.version = r.job_version
         WHERE j.paused_at IS NULL;
        use_preferred := FOUND;
    END IF;
    OPEN candidates(claimed_at);
    LOOP
        IF use_preferred THEN
            candidate := preferred;
            use_preferred := false;
        ELSE
            FETCH candidates INTO candidate;
            EXIT WHEN NOT FOUND;
            CONTINUE WHEN candidate.id = ANY (taken);  -- the preferred run, met again
        END IF;
        exclusive := candidate.mode IN ('overwrite', 'merge');
        IF candidate.max_running IS NOT NULL OR exclusive THEN
            -- 2. A limited run (its job has max_running, or it overwrites or
            --    merges a destination): whether it may start depends on what
            --    is running, and two claimers counting at once would both
            --    see room for one more.  So such claims take one lock, held
            --    until the claim's transaction ends, and count after it: a
            --    statement that starts once the lock is ours sees every
            --    claim committed before (READ COMMITTED, as runners use),
            --    and our own claims of this call.  Claims of unlimited runs
            --    never take it.  The holder never waits for anything while
            --    holding it (step 3 skips locked rows), so it cannot
            --    deadlock.
            IF NOT serialised THEN
                PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('jobledger.claim_runs limits', 0));
                serialised := true;
            END IF;
            IF candidate.job = ANY (full_jobs) THEN
                CONTINUE;
            END IF;
            IF candidate.max_running IS NOT NULL
               AND (SELECT pg_catalog.count(*) FROM jobledger.run AS o
                     WHERE o.status = 'running' AND o.job = candidate.job) >= candidate.max_running THEN
                full_jobs := full_jobs || candidate.job;
                CONTINUE;
            END IF;
            IF exclusive THEN
                -- Overwrite and merge runs of one destination run one at a
                -- time (append runs are not held back).
                key := jobledger_internal.destination_key(candidate.destination);
                IF key = ANY (busy_destinations)
                   OR EXISTS (SELECT 1
                                FROM jobledger.run AS o
                                JOIN jobledger.job_version AS ov ON ov.job = o.job AND ov.version = o.job_version
                               WHERE o.status = 'running'
                                 AND ov.mode IN ('overwrite', 'merge')
                                 AND jobledger_internal.destination_key(ov.destination) = key) THEN
                    busy_destinations := busy_destinations || key;
                    CONTINUE;
                END IF;
            END IF;
        END IF;
        -- 3. Take it, FOR UPDATE SKIP LOCKED: a run another claimer is
        --    taking right now is skipped, not waited for, so concurrent
        --    runners never block each other nor take the same run.  Locked,
        --    the row is its newest version: it must still be pending and
        --    due.  (The lock by primary key only: with the status in its
        --    WHERE the planner may prefer walking run_claim_idx.)
        WITH locked AS (
            SELECT l.id, l.status, l.run_after FROM jobledger.run AS l
             WHERE l.id = candidate.id
               FOR UPDATE SKIP LOCKED
        ),
        claimed AS (
            -- Mark it running: the next attempt, this worker and backend,
            -- the start time (also the first heartbeat).
            UPDATE jobledger.run AS r
               SET status = 'running',
                   attempt = r.attempt + 1,
                   worker = claim_runs.worker,
                   backend_pid = pg_catalog.pg_backend_pid(),
                   backend_start = my_start,
                   started_at = claimed_at,
                   heartbeat_at = claimed_at,
                   cancel_requested = false,
                   -- An attempt reports its own progress (report_progress).
                   rows_written = NULL,
                   progress = NULL
              FROM locked AS k
             WHERE r.id = k.id AND k.status = 'pending' AND k.run_after <= claimed_at
            RETURNING r.id, r.attempt
        ),
        opened AS (
            -- 4. Open the attempt's row in the history.
            INSERT INTO jobledger.run_attempt (run, attempt, worker, backend_pid, started_at)
            SELECT c.id, c.attempt, claim_runs.worker, pg_catalog.pg_backend_pid(), claimed_at
              FROM claimed AS c
        )
        SELECT c.id INTO got FROM claimed AS c;
        CONTINUE WHEN got IS NULL;
        taken := taken || got;
        got := NULL;
        EXIT WHEN pg_catalog.cardinality(taken) >= claim_runs.max_runs;
    END LOOP;
    CLOSE candidates;

    RETURN QUERY
    -- 5. What the runner needs to execute each run: the job version's mode,
    --    owner and timeout, and the destination as the catalog has it now
    --    (NULL if it was dropped since the run was submitted), with its
    --    primary key for merge.
    SELECT c.id, c.job, c.job_version, c.attempt, c.max_attempts, c.rendered_sql, c.parameters,
           v.mode, j.owner,
           (EXTRACT(epoch FROM v.timeout) * 1000)::bigint,
           v.destination, n.nspname, t.relname,
           CASE WHEN v.mode = 'merge' THEN
               (SELECT pg_catalog.array_agg(a.attname ORDER BY k.ord)
                  FROM pg_catalog.pg_index AS i
                 CROSS JOIN LATERAL pg_catalog.unnest(i.indkey) WITH ORDINALITY AS k (attnum, ord)
                  JOIN pg_catalog.pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                 WHERE i.indrelid = t.oid AND i.indisprimary)
           END,
           c.created_at, c.started_at
      FROM jobledger.run AS c
      JOIN jobledger.job_version AS v ON v.job = c.job AND v.version = c.job_version
      JOIN jobledger.job AS j ON j.name = c.job
      -- Destinations outside the database (result, parquet:<directory>) are
      -- no table names: to_regclass would raise on them.
      LEFT JOIN pg_catalog.pg_class AS t
        ON t.oid = CASE WHEN jobledger_internal.destination_kind(v.destination) OPERATOR(pg_catalog.=) 'table'
                        THEN pg_catalog.to_regclass(v.destination) END
      LEFT JOIN pg_catalog.pg_namespace AS n ON n.oid = t.relnamespace
     WHERE c.id = ANY (ARRAY(SELECT pg_catalog.unnest(taken)))  -- a sub-select: planned once, as above
     ORDER BY c.priority DESC, c.run_after, c.created_at;
END
$$;
COMMENT ON FUNCTION jobledger_internal.claim_runs(text, integer, text) IS
    'Runner only: claims up to max_runs runnable pending runs (priority, then age; FOR UPDATE SKIP LOCKED) of jobs not paused, within each job''s max_running and one overwrite or merge run per destination at a time, marks them running with this worker, the next attempt and the calling connection''s backend (which must be the one that executes them), opens their attempts, and returns what executing them needs. With prefer_job (affinity: the job the caller just ran), that job''s first due run is taken first if its priority is the best pending one; NULL: none.';
REVOKE ALL ON FUNCTION jobledger_internal.claim_runs(text, integer, text) FROM PUBLIC;

-- The form without affinity (runners of 0.3.0 to 0.5.0, and roles granted
-- only this one).
CREATE OR REPLACE FUNCTION jobledger_internal.claim_runs(worker text, max_runs integer DEFAULT 1)
RETURNS TABLE (
    id uuid,
    job text,
    job_version integer,
    attempt integer,
    max_attempts integer,
    rendered_sql text,
    parameters jsonb,
    mode text,
    owner name,
    timeout_ms bigint,
    destination text,
    destination_schema name,
    destination_table name,
    primary_key name[],
    created_at timestamptz,
    started_at timestamptz
)
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
    SELECT * FROM jobledger_internal.claim_runs(claim_runs.worker, claim_runs.max_runs, NULL::pg_catalog.text)
$$;
COMMENT ON FUNCTION jobledger_internal.claim_runs(text, integer) IS
    'Runner only: claim_runs without affinity; see the three-argument form.';
REVOKE ALL ON FUNCTION jobledger_internal.claim_runs(text, integer) FROM PUBLIC;


CREATE OR REPLACE FUNCTION jobledger_internal.check_metrics(metrics jsonb)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
BEGIN
    -- What a run's metrics may be: NULL, or a small JSON object of
    -- non-negative numbers (jobledger.job_stats casts them; an owner's
    -- connection may call complete_attached_run with anything).
    IF check_metrics.metrics IS NULL THEN
        RETURN;
    END IF;
    IF pg_catalog.jsonb_typeof(check_metrics.metrics) <> 'object'
       OR (SELECT pg_catalog.count(*) FROM pg_catalog.jsonb_each(check_metrics.metrics)) > 32
       OR EXISTS (SELECT 1 FROM pg_catalog.jsonb_each(check_metrics.metrics) AS e (key, value)
                   WHERE pg_catalog.jsonb_typeof(e.value) <> 'number'
                      OR e.value::text::numeric < 0
                      OR pg_catalog.length(e.key) > 63) THEN
        RAISE EXCEPTION 'a run''s metrics must be a JSON object of at most 32 non-negative numbers'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
END
$$;
COMMENT ON FUNCTION jobledger_internal.check_metrics(jsonb) IS
    'Internal: raises invalid_argument unless metrics is NULL or a JSON object of at most 32 non-negative numbers (keys of at most 63 characters).';
REVOKE ALL ON FUNCTION jobledger_internal.check_metrics(jsonb) FROM PUBLIC;


CREATE OR REPLACE FUNCTION jobledger_internal.complete_run(
    run uuid, attempt integer, worker text, rows_written bigint, snapshot_id text, metrics jsonb DEFAULT NULL
)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    -- clock_timestamp(): now() is when the run's transaction began.
    finished timestamptz := pg_catalog.clock_timestamp();
BEGIN
    -- Called in the transaction that wrote the destination.  The fence: only
    -- a run still running with this attempt on this worker succeeds; any
    -- other raises, so that the write rolls back with it.
    PERFORM jobledger_internal.fence(complete_run.run, complete_run.attempt, complete_run.worker,
        'The run was cancelled, or taken over after its lease expired; this attempt''s writes roll back.');
    PERFORM jobledger_internal.check_metrics(complete_run.metrics);
    UPDATE jobledger.run AS r
       SET status = 'succeeded',
           finished_at = finished,
           heartbeat_at = finished,
           rows_written = complete_run.rows_written,
           snapshot_id = complete_run.snapshot_id,
           -- The attempt's figures (docs/runner.md, "Run metrics"); NULL
           -- from a caller that measured nothing.
           metrics = complete_run.metrics,
           -- A run that reported progress, or published a version, ends at 100.
           progress = CASE WHEN r.progress IS NOT NULL OR complete_run.snapshot_id IS NOT NULL THEN 100 END,
           error = NULL,
           error_sqlstate = NULL,
           error_category = NULL
     WHERE r.id = complete_run.run;
    PERFORM jobledger_internal.close_attempt(complete_run.run, complete_run.attempt, 'succeeded', finished);
END
$$;
COMMENT ON FUNCTION jobledger_internal.complete_run(uuid, integer, text, bigint, text, jsonb) IS
    'Runner only, in the transaction that wrote the destination (or, for a destination outside the database, that records what was published): flips the run to succeeded with rows_written, snapshot_id (the dataset version published, else NULL) and metrics (the attempt''s figures: a JSON object of non-negative numbers, else NULL) if it is still running with this attempt on this worker; otherwise raises (category run_fenced) so that the whole transaction, write included, rolls back.';
REVOKE ALL ON FUNCTION jobledger_internal.complete_run(uuid, integer, text, bigint, text, jsonb) FROM PUBLIC;

-- 0.3.0's signature, for table destinations (the runners of 0.3.0 to 0.5.0;
-- those of 0.6.0 call the six-argument form, with their metrics).
CREATE OR REPLACE FUNCTION jobledger_internal.complete_run(run uuid, attempt integer, worker text, rows_written bigint)
RETURNS void
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
    SELECT jobledger_internal.complete_run(complete_run.run, complete_run.attempt, complete_run.worker,
                                  complete_run.rows_written, NULL::pg_catalog.text, NULL::pg_catalog.jsonb)
$$;
COMMENT ON FUNCTION jobledger_internal.complete_run(uuid, integer, text, bigint) IS
    'Runner only: complete_run with no snapshot_id and no metrics (table destinations, runners before 0.6.0); see the six-argument form.';
REVOKE ALL ON FUNCTION jobledger_internal.complete_run(uuid, integer, text, bigint) FROM PUBLIC;


CREATE OR REPLACE FUNCTION jobledger_internal.fail_run(
    run uuid,
    attempt integer,
    worker text,
    error text,
    error_sqlstate text DEFAULT NULL,
    error_category text DEFAULT 'execution_error',
    retry boolean DEFAULT false,
    backoff interval DEFAULT '1 second'
)
RETURNS jobledger.run_status
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    current jobledger.run;
BEGIN
    IF fail_run.error IS NULL OR fail_run.error = '' THEN
        RAISE EXCEPTION 'fail_run needs an error'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    IF fail_run.backoff IS NULL OR fail_run.backoff < interval '0' THEN
        RAISE EXCEPTION 'the backoff must not be negative'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    -- The fence (and the lock): a run that is no longer this attempt's was
    -- decided by someone else (cancel_run, reconcile_orphaned); leave it.
    current := jobledger_internal.fenced_run(fail_run.run, fail_run.attempt, fail_run.worker);
    IF current.id IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM jobledger_internal.close_attempt(fail_run.run, fail_run.attempt, 'failed', pg_catalog.clock_timestamp(),
                                             fail_run.error, fail_run.error_sqlstate);
    IF NOT (fail_run.retry AND current.attempt < current.max_attempts) THEN
        PERFORM jobledger_internal.fail_for_good(fail_run.run, fail_run.error, fail_run.error_sqlstate,
                                                 fail_run.error_category);
        RETURN 'failed';
    END IF;
    -- A retry waits backoff * 2^(attempt - 1), at most an hour.  The error
    -- stays on the run while the retry is pending, so psql shows why.
    PERFORM jobledger_internal.back_to_pending(
        fail_run.run, current.attempt,
        pg_catalog.clock_timestamp() + LEAST(fail_run.backoff * pg_catalog.power(2, current.attempt - 1),
                                             interval '1 hour'),
        fail_run.error, fail_run.error_sqlstate, fail_run.error_category);
    RETURN 'pending';
END
$$;
COMMENT ON FUNCTION jobledger_internal.fail_run(uuid, integer, text, text, text, text, boolean, interval) IS
    'Runner only: records a failed attempt (error, SQLSTATE, category). With retry and attempts left the run goes back to pending after backoff * 2^(attempt-1) (at most an hour), else it fails. Fenced like complete_run; returns the new status, or NULL if the run was no longer this attempt''s.';
REVOKE ALL ON FUNCTION jobledger_internal.fail_run(uuid, integer, text, text, text, text, boolean, interval) FROM PUBLIC;


CREATE OR REPLACE FUNCTION jobledger_internal.heartbeat(worker text, runs uuid[])
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    touched integer;
BEGIN
    -- SKIP LOCKED: a locked run is being completed, failed or cancelled right
    -- now; its heartbeat no longer matters and the caller must not wait.
    UPDATE jobledger.run AS r
       SET heartbeat_at = pg_catalog.clock_timestamp()
     WHERE r.id IN (SELECT l.id
                      FROM jobledger.run AS l
                     WHERE l.id = ANY (heartbeat.runs)
                       AND l.status = 'running'
                       AND l.worker = heartbeat.worker
                       FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS touched = ROW_COUNT;
    RETURN touched;
END
$$;
COMMENT ON FUNCTION jobledger_internal.heartbeat(text, uuid[]) IS
    'Runner only: advances heartbeat_at of the given runs still running on this worker, so reconcile_orphaned''s lease does not take them; returns how many.';
REVOKE ALL ON FUNCTION jobledger_internal.heartbeat(text, uuid[]) FROM PUBLIC;


CREATE OR REPLACE FUNCTION jobledger_internal.release_run(run uuid, attempt integer, worker text)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    current jobledger.run := jobledger_internal.fenced_run(release_run.run, release_run.attempt, release_run.worker);
BEGIN
    -- A runner shutting down gives back a run it had to interrupt: the
    -- attempt rolled back and was nobody's fault, so it does not count (the
    -- run keeps its place in line, its attempts and the error of an earlier
    -- one) and leaves no history.
    IF current.id IS NULL THEN
        RETURN false;
    END IF;
    PERFORM jobledger_internal.back_to_pending(release_run.run, current.attempt - 1, current.run_after,
                                               current.error, current.error_sqlstate, current.error_category);
    DELETE FROM jobledger.run_attempt AS a WHERE a.run = release_run.run AND a.attempt = release_run.attempt;
    RETURN true;
END
$$;
COMMENT ON FUNCTION jobledger_internal.release_run(uuid, integer, text) IS
    'Runner only, when shutting down: puts a run it interrupted back to pending without counting the attempt. Fenced like complete_run; returns whether it did.';
REVOKE ALL ON FUNCTION jobledger_internal.release_run(uuid, integer, text) FROM PUBLIC;
