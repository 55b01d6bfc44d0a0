-- What kind of destination a stored job_version.destination is: 'table',
-- 'result' or 'parquet' (jobledger.core.destinations describes them).  The
-- one rule for SQL that reads stored destinations: submit_job's query asks
-- it before looking a table up (to_regclass would raise on the others), and
-- so may the runner's claim.  define_job stores table names schema-qualified
-- (public.result), so a stored destination is exactly 'result', or starts
-- with 'parquet:', only when it is no table.
CREATE OR REPLACE FUNCTION jobledger_internal.destination_kind(destination text)
RETURNS text
LANGUAGE sql
IMMUTABLE STRICT
PARALLEL SAFE
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
    SELECT CASE WHEN destination_kind.destination OPERATOR(pg_catalog.=) 'result' THEN 'result'
                WHEN pg_catalog.starts_with(destination_kind.destination, 'parquet:') THEN 'parquet'
                ELSE 'table'
           END
$$;
COMMENT ON FUNCTION jobledger_internal.destination_kind(text) IS
    'The kind of a stored job destination: table, result or parquet (for parquet:<directory>).';
REVOKE ALL ON FUNCTION jobledger_internal.destination_kind(text) FROM PUBLIC;
