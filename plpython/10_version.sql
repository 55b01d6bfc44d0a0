CREATE OR REPLACE FUNCTION jobledger_internal.version_py()
RETURNS jsonb
LANGUAGE plpython3u
STABLE
SET search_path = pg_catalog, jobledger, pg_temp
AS $python$
@PRELUDE@
return jobledger.server.version(plpy)
$python$;
COMMENT ON FUNCTION jobledger_internal.version_py() IS
    'Internal: the outcome of jobledger.version() (see jobledger_internal.outcome_value).';
REVOKE ALL ON FUNCTION jobledger_internal.version_py() FROM PUBLIC;

CREATE OR REPLACE FUNCTION jobledger.version()
RETURNS text
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
    SELECT jobledger_internal.outcome_value(jobledger_internal.version_py()) OPERATOR(pg_catalog.#>>) '{}'::text[]
$$;
COMMENT ON FUNCTION jobledger.version() IS
    'Version of the jobledger Python package this session runs; fails (category version_mismatch) if it is not the installed extension version.';
GRANT EXECUTE ON FUNCTION jobledger.version() TO PUBLIC;
