-- A lake grant's prefix, validated and normalised by the rule lake
-- destinations are parsed with (jobledger.core.destinations.lake_prefix),
-- for allow_lake_prefix and disallow_lake_prefix (sql/objects/73_lake_grants.sql).
CREATE OR REPLACE FUNCTION jobledger_internal.lake_prefix_py(prefix text)
RETURNS jsonb
LANGUAGE plpython3u
IMMUTABLE
SET search_path = pg_catalog, jobledger, pg_temp
AS $python$
@PRELUDE@
return jobledger.server.lake_prefix(plpy, prefix)
$python$;
COMMENT ON FUNCTION jobledger_internal.lake_prefix_py(text) IS
    'Internal: the normalised form of a lake grant''s prefix (a local directory or s3://bucket[/prefix]), as an outcome (see jobledger_internal.outcome_value).';
REVOKE ALL ON FUNCTION jobledger_internal.lake_prefix_py(text) FROM PUBLIC;
