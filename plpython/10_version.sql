CREATE OR REPLACE FUNCTION jobledger.version()
RETURNS text
LANGUAGE plpython3u
STABLE
SET search_path = pg_catalog, jobledger, pg_temp
AS $python$
@PRELUDE@
return jobledger.server.version(plpy)
$python$;
COMMENT ON FUNCTION jobledger.version() IS
    'Version of the jobledger Python package this session runs; fails (category version_mismatch) if it is not the installed extension version.';
GRANT EXECUTE ON FUNCTION jobledger.version() TO PUBLIC;
