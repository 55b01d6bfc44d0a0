-- 0.4.0: outputs, an append-only log of what each run produced (its stored
-- result, the manifest of the dataset version it published, ...).
--
-- Written only by jobledger.emit_output (the runner, from the connection
-- executing the run); read by everyone who may see the run (row-level
-- security reuses the run's visibility, like run_attempt); deleted only with
-- the run (ON DELETE CASCADE: prune and drop_job take the outputs along).

-- seq orders outputs across the whole table: taken from one sequence, so it
-- strictly increases in the order outputs are inserted (a sequence is not
-- rolled back, so there may be gaps).  An explicit sequence rather than an
-- identity column so that pg_dump can be told to dump its position
-- (pg_extension_config_dump below), or restored outputs would collide.
CREATE SEQUENCE jobledger.output_seq AS bigint;
COMMENT ON SEQUENCE jobledger.output_seq IS 'Numbers jobledger.output.seq: insertion order across all outputs.';

CREATE TABLE jobledger.output (
    id uuid PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
    run uuid NOT NULL REFERENCES jobledger.run (id) ON DELETE CASCADE,
    attempt integer NOT NULL CHECK (attempt >= 1),
    seq bigint NOT NULL DEFAULT pg_catalog.nextval('jobledger.output_seq') UNIQUE,
    name text NOT NULL CHECK (name ~ '^[A-Za-z0-9_][A-Za-z0-9_.:/-]*$' AND pg_catalog.length(name) <= 200),
    content_type text NOT NULL CHECK (content_type ~ '^[a-z]+/[A-Za-z0-9.+_-]+$'),
    data bytea NOT NULL,
    size bigint GENERATED ALWAYS AS (pg_catalog.octet_length(data)) STORED,
    parent_outputs uuid[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp()
);
ALTER SEQUENCE jobledger.output_seq OWNED BY jobledger.output.seq;
COMMENT ON TABLE jobledger.output IS
    'Outputs of runs, append-only: stored results, dataset manifests. Visible like their run; deleted with it.';
COMMENT ON COLUMN jobledger.output.run IS 'The run that produced it.';
COMMENT ON COLUMN jobledger.output.attempt IS 'The attempt of the run that produced it.';
COMMENT ON COLUMN jobledger.output.seq IS 'Strictly increasing across the table: the order outputs were inserted in.';
COMMENT ON COLUMN jobledger.output.name IS 'What it is, e.g. result (Arrow IPC stream), result.json, manifest.';
COMMENT ON COLUMN jobledger.output.content_type IS 'Media type of data, e.g. application/vnd.apache.arrow.stream.';
COMMENT ON COLUMN jobledger.output.data IS 'The content.';
COMMENT ON COLUMN jobledger.output.size IS 'octet_length(data).';
COMMENT ON COLUMN jobledger.output.parent_outputs IS 'Outputs this one was derived from (lineage), oldest first.';

CREATE INDEX output_run_seq_idx ON jobledger.output (run, seq);
COMMENT ON INDEX jobledger.output_run_seq_idx IS 'A run''s outputs in insertion order.';
CREATE INDEX output_name_seq_idx ON jobledger.output (name, seq DESC);
COMMENT ON INDEX jobledger.output_name_seq_idx IS 'The newest output of a name (latest_output).';

ALTER TABLE jobledger.output ENABLE ROW LEVEL SECURITY;
CREATE POLICY output_visible ON jobledger.output FOR SELECT USING (
    EXISTS (SELECT 1 FROM jobledger.run AS r WHERE r.id = output.run)
);
GRANT SELECT ON jobledger.output TO PUBLIC;

SELECT pg_catalog.pg_extension_config_dump('jobledger.output', '');
SELECT pg_catalog.pg_extension_config_dump('jobledger.output_seq', '');

COMMENT ON COLUMN jobledger.job_version.destination IS
    'Where the rows go: a table (schema-qualified), result (kept with the run as an output), or parquet:<absolute directory>[?create_if_missing=true] (a Parquet dataset).';
COMMENT ON COLUMN jobledger.run.snapshot_id IS
    'For parquet: destinations, the dataset version the run published (its manifest number).';
COMMENT ON COLUMN jobledger.run.progress IS
    'Percent done, 0..100, as reported by the runner during long writes (an estimate from the query plan until the end); 100 once succeeded.';
