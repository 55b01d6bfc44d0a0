CREATE OR REPLACE FUNCTION jobledger.prune(
    older_than interval,
    job text DEFAULT NULL
)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    deleted integer;
BEGIN
    IF older_than IS NULL OR older_than < interval '0' THEN
        RAISE EXCEPTION 'prune needs a non-negative age, not %', coalesce(older_than::pg_catalog.text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    -- Only terminal runs: a pending or running run is never pruned, however
    -- old.  Their attempts go with them (ON DELETE CASCADE).
    DELETE FROM jobledger.run AS r
     WHERE r.status IN ('succeeded', 'failed', 'cancelled')
       AND r.finished_at < now() - older_than
       AND (prune.job IS NULL OR r.job = prune.job);
    GET DIAGNOSTICS deleted = ROW_COUNT;
    RETURN deleted;
END
$$;
COMMENT ON FUNCTION jobledger.prune(interval, text) IS
    'Deletes terminal runs (succeeded, failed, cancelled) that finished more than older_than ago, with their attempts; optionally only those of one job. Never touches pending or running runs. Returns how many runs it deleted.';
REVOKE ALL ON FUNCTION jobledger.prune(interval, text) FROM PUBLIC;
