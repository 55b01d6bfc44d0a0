-- Retention: prune deletes finished runs (with their attempts) by age, with
-- separate ages for successes and for failures (failed and cancelled runs),
-- and/or keeps only the newest keep_last finished runs of each job.  A
-- pending or running run is never deleted, however old.
CREATE OR REPLACE FUNCTION jobledger.prune(
    succeeded_older_than interval,
    failed_older_than interval,
    keep_last integer DEFAULT NULL,
    job text DEFAULT NULL
)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    by_age integer := 0;
    by_count integer := 0;
BEGIN
    IF succeeded_older_than IS NULL AND failed_older_than IS NULL AND keep_last IS NULL THEN
        RAISE EXCEPTION 'prune needs a rule: succeeded_older_than, failed_older_than or keep_last'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    IF succeeded_older_than < interval '0' OR failed_older_than < interval '0' THEN
        RAISE EXCEPTION 'prune needs non-negative ages'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    IF keep_last < 0 THEN
        RAISE EXCEPTION 'keep_last must not be negative, not %', keep_last
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    -- By age (run_status_idx: status, finished_at).  A NULL age matches nothing.
    -- Attempts go with their runs (ON DELETE CASCADE).
    DELETE FROM jobledger.run AS r
     WHERE ((r.status = 'succeeded' AND r.finished_at < now() - succeeded_older_than)
            OR (r.status IN ('failed', 'cancelled') AND r.finished_at < now() - failed_older_than))
       AND (prune.job IS NULL OR r.job = prune.job);
    GET DIAGNOSTICS by_age = ROW_COUNT;
    IF keep_last IS NOT NULL THEN
        -- The per-job cap: finished runs past the newest keep_last of their job.
        DELETE FROM jobledger.run AS r
         USING (SELECT f.id,
                       row_number() OVER (PARTITION BY f.job ORDER BY f.finished_at DESC, f.id DESC) AS newest
                  FROM jobledger.run AS f
                 WHERE f.status IN ('succeeded', 'failed', 'cancelled')
                   AND (prune.job IS NULL OR f.job = prune.job)) AS ranked
         WHERE r.id = ranked.id
           AND ranked.newest > keep_last;
        GET DIAGNOSTICS by_count = ROW_COUNT;
    END IF;
    RETURN by_age + by_count;
END
$$;
COMMENT ON FUNCTION jobledger.prune(interval, interval, integer, text) IS
    'Deletes finished runs with their attempts: succeeded runs that finished more than succeeded_older_than ago, failed and cancelled ones more than failed_older_than ago, and the runs of each job past its newest keep_last finished ones (NULL: that rule is off); optionally only those of one job. Never touches pending or running runs. Returns how many runs it deleted.';
REVOKE ALL ON FUNCTION jobledger.prune(interval, interval, integer, text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION jobledger.prune(
    older_than interval,
    job text DEFAULT NULL
)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
BEGIN
    IF older_than IS NULL OR older_than < interval '0' THEN
        RAISE EXCEPTION 'prune needs a non-negative age, not %', coalesce(older_than::pg_catalog.text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    RETURN jobledger.prune(older_than, older_than, NULL, prune.job);
END
$$;
COMMENT ON FUNCTION jobledger.prune(interval, text) IS
    'Deletes terminal runs (succeeded, failed, cancelled) that finished more than older_than ago, with their attempts; optionally only those of one job. Never touches pending or running runs. Returns how many runs it deleted. The same as prune(older_than, older_than, NULL, job).';
REVOKE ALL ON FUNCTION jobledger.prune(interval, text) FROM PUBLIC;
