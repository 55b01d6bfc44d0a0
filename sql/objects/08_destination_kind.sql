-- What kind of destination a stored job_version.destination is: 'table',
-- 'result', 'parquet', 'delta' or 'lance' (jobledger.core.destinations describes them, and
-- its kind() is the same rule for Python).  The one rule for SQL that reads
-- stored destinations: submit_job's query asks it before looking a table up
-- (to_regclass would raise on the others), and so may the runner's claim.
-- define_job stores table names schema-qualified (public.result), so a
-- stored destination is exactly 'result', or starts with 'parquet:', 'delta:' or
-- 'lance:', only when it is no table.
--
-- No SET search_path, like calling_role (05): a SQL function with a SET
-- clause is never inlined, and a function call here would be planned anew in
-- every submit_job.  Inlined, its body is planned within its caller, which
-- always pins search_path; every name in it is qualified, the operator too,
-- so it means the same wherever it is planned.  STABLE rather than
-- IMMUTABLE, as the other inlined functions (it is pure either way).
CREATE OR REPLACE FUNCTION jobledger_internal.destination_kind(destination text)
RETURNS text
LANGUAGE sql
STABLE
PARALLEL SAFE
AS $$
    SELECT CASE WHEN destination_kind.destination OPERATOR(pg_catalog.=) 'result' THEN 'result'
                WHEN pg_catalog.starts_with(destination_kind.destination, 'parquet:') THEN 'parquet'
                WHEN pg_catalog.starts_with(destination_kind.destination, 'delta:') THEN 'delta'
                WHEN pg_catalog.starts_with(destination_kind.destination, 'lance:') THEN 'lance'
                WHEN destination_kind.destination IS NOT NULL THEN 'table'
           END
$$;
COMMENT ON FUNCTION jobledger_internal.destination_kind(text) IS
    'The kind of a stored job destination: table, result, parquet (for parquet:<directory>), delta (for delta:<uri>) or lance (for lance:<uri>).';
REVOKE ALL ON FUNCTION jobledger_internal.destination_kind(text) FROM PUBLIC;

-- Which destination a stored job_version.destination writes, for comparing
-- two of them (claim_runs: overwrite and merge runs of one destination never
-- run at once).  A table by its oid, so that public.t and a later rename are
-- one table; a parquet dataset by its directory (without the ?options).
CREATE OR REPLACE FUNCTION jobledger_internal.destination_key(destination text)
RETURNS text
LANGUAGE sql
STABLE
PARALLEL SAFE
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
    SELECT CASE jobledger_internal.destination_kind(destination_key.destination)
               WHEN 'table' THEN coalesce('table ' || pg_catalog.to_regclass(destination_key.destination)::oid::text,
                                          'name ' || destination_key.destination)
               WHEN 'parquet' THEN 'parquet ' || pg_catalog.split_part(destination_key.destination, '?', 1)
               ELSE destination_key.destination
           END
$$;
COMMENT ON FUNCTION jobledger_internal.destination_key(text) IS
    'Internal to claim_runs: what a stored job destination writes (a table by oid, a parquet dataset by directory), so that two destinations naming the same one compare equal.';
REVOKE ALL ON FUNCTION jobledger_internal.destination_key(text) FROM PUBLIC;
