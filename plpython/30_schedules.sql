-- When a schedule ticks next (python/jobledger/server/cron.py), for the
-- next_tick column of jobledger.schedules (sql/objects/90_schedules.sql).
CREATE OR REPLACE FUNCTION jobledger_internal.next_tick_py(cron text, after text, time_zone text)
RETURNS jsonb
LANGUAGE plpython3u
STABLE
SET search_path = pg_catalog, jobledger, pg_temp
AS $python$
@PRELUDE@
return jobledger.server.next_tick(plpy, cron, after, time_zone)
$python$;
COMMENT ON FUNCTION jobledger_internal.next_tick_py(text, text, text) IS
    'Internal: the outcome of jobledger_internal.next_tick (see jobledger_internal.outcome_value).';
REVOKE ALL ON FUNCTION jobledger_internal.next_tick_py(text, text, text) FROM PUBLIC;  -- the same ACL after an upgrade as after an install
GRANT EXECUTE ON FUNCTION jobledger_internal.next_tick_py(text, text, text) TO PUBLIC;
