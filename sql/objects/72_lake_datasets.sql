-- The dataset registry (jobledger.lake_dataset, 0.6.0) follows the runs
-- that commit to delta: tables and lance: datasets.  The runner emits a run's
-- delta_commit or lance_commit output ({"uri", "format", "version",
-- "schema"}, format the output's prefix) in the transaction that completes
-- the run; emit_output lets only the connection executing the run's current
-- attempt do that, and this trigger accepts only the format and location of
-- the run's own destination (<format>:<uri>, nothing or ?options after it).
-- A version older than the one recorded (a slower concurrent committer)
-- changes nothing; a commit in another format than the one recorded (the
-- location was reused) replaces the row.
CREATE OR REPLACE FUNCTION jobledger_internal.record_lake_dataset()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    commit jsonb := pg_catalog.convert_from(NEW.data, 'UTF8')::jsonb;
    kind text := pg_catalog.split_part(NEW.name, '_', 1);
    location text;
    destination text;
BEGIN
    location := kind OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) (commit ->> 'uri');
    SELECT v.destination INTO destination
      FROM jobledger.run AS r
      JOIN jobledger.job_version AS v ON v.job = r.job AND v.version = r.job_version
     WHERE r.id = NEW.run;
    IF destination IS NULL
       OR (commit ->> 'format') IS DISTINCT FROM kind
       OR location IS NULL
       OR NOT pg_catalog.starts_with(destination, location)
       OR pg_catalog.substr(destination, pg_catalog.length(location) + 1, 1) NOT IN ('', '?') THEN
        RAISE EXCEPTION '% of run % names %, which is not its destination', NEW.name, NEW.run,
            coalesce(commit ->> 'format', '?') OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||)
            coalesce(commit ->> 'uri', '?')
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    INSERT INTO jobledger.lake_dataset AS d (uri, format, arrow_schema, latest_version, run)
    VALUES (commit ->> 'uri', commit ->> 'format', commit -> 'schema', (commit ->> 'version')::bigint, NEW.run)
    ON CONFLICT (uri) DO UPDATE
       SET format = excluded.format, arrow_schema = excluded.arrow_schema,
           latest_version = excluded.latest_version, run = excluded.run,
           updated_at = pg_catalog.clock_timestamp()
     WHERE d.latest_version < excluded.latest_version OR d.format <> excluded.format;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION jobledger_internal.record_lake_dataset() IS
    'Internal trigger: records a run''s delta_commit or lance_commit output in jobledger.lake_dataset (newer versions only, the run''s own destination only).';
REVOKE ALL ON FUNCTION jobledger_internal.record_lake_dataset() FROM PUBLIC;

CREATE OR REPLACE TRIGGER output_records_lake_dataset
    AFTER INSERT ON jobledger.output
    FOR EACH ROW WHEN (NEW.name IN ('delta_commit', 'lance_commit'))
    EXECUTE FUNCTION jobledger_internal.record_lake_dataset();
