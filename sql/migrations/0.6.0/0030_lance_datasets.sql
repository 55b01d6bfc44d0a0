-- 0.6.0: lance: destinations (jobledger.lake.lance_dataset).  The dataset
-- registry (0010) records Lance datasets as it records delta: tables: the
-- runner emits a run's lance_commit output in the transaction that completes
-- the run, and the same trigger (sql/objects/72_lake_datasets.sql) records it.
ALTER TABLE jobledger.lake_dataset DROP CONSTRAINT lake_dataset_format_check;
ALTER TABLE jobledger.lake_dataset ADD CONSTRAINT lake_dataset_format_check CHECK (format IN ('delta', 'lance'));
COMMENT ON TABLE jobledger.lake_dataset IS
    'Datasets jobledger writes outside the database (delta: tables, lance: datasets): their latest version and its Arrow schema, as the last run that committed saw them. submit_job compares queries with it.';
COMMENT ON COLUMN jobledger.lake_dataset.format IS 'delta or lance.';
