-- 0.6.0: the datasets jobledger writes outside the database (delta: tables),
-- as the ledger last saw them: what submit_job compares a query with, without
-- reaching the storage (the server has no credentials for it, nor should it).
--
-- Written only by the trigger on jobledger.output (sql/objects/72_lake_datasets.sql)
-- when a runner emits a run's delta_commit output, i.e. in the transaction
-- that completes the run: the row and the run's success commit together.
-- Read by everyone who may see the run that last committed to it (row-level
-- security reuses the run's visibility, like output); the preflight reads it
-- as the extension's owner.
CREATE TABLE jobledger.lake_dataset (
    uri text PRIMARY KEY,
    format text NOT NULL CHECK (format IN ('delta')),
    arrow_schema jsonb NOT NULL CHECK (pg_catalog.jsonb_typeof(arrow_schema) = 'array'),
    latest_version bigint NOT NULL CHECK (latest_version >= 0),
    run uuid REFERENCES jobledger.run (id) ON DELETE SET NULL,
    updated_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp()
);
COMMENT ON TABLE jobledger.lake_dataset IS
    'Datasets jobledger writes outside the database (delta: tables): their latest version and its Arrow schema, as the last run that committed saw them. submit_job compares queries with it.';
COMMENT ON COLUMN jobledger.lake_dataset.uri IS 'The table''s location: an absolute directory or s3://bucket/prefix.';
COMMENT ON COLUMN jobledger.lake_dataset.format IS 'delta.';
COMMENT ON COLUMN jobledger.lake_dataset.arrow_schema IS
    'Its columns as stored, [[name, Arrow type description], ...] (jobledger.core.arrow_types).';
COMMENT ON COLUMN jobledger.lake_dataset.latest_version IS 'The newest table version a jobledger run committed.';
COMMENT ON COLUMN jobledger.lake_dataset.run IS 'The run that committed latest_version (NULL once pruned).';
COMMENT ON COLUMN jobledger.lake_dataset.updated_at IS 'When latest_version was recorded.';

ALTER TABLE jobledger.lake_dataset ENABLE ROW LEVEL SECURITY;
CREATE POLICY lake_dataset_visible ON jobledger.lake_dataset FOR SELECT USING (
    EXISTS (SELECT 1 FROM jobledger.run AS r WHERE r.id = lake_dataset.run)
);
GRANT SELECT ON jobledger.lake_dataset TO PUBLIC;

SELECT pg_catalog.pg_extension_config_dump('jobledger.lake_dataset', '');
