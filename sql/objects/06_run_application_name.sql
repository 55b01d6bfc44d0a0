-- What a backend executing a run shows in pg_stat_activity.application_name
-- for the length of the run's transaction.  cancel_run, reconcile_orphaned
-- and the active_runs view recognise the backend by it (with its pid and
-- backend_start).  Every role may read pg_stat_activity's application_name,
-- so it must not name the run: it is a digest of the run's id, which only
-- those who may see the run know.
CREATE OR REPLACE FUNCTION jobledger_internal.run_application_name(run uuid)
RETURNS text
LANGUAGE sql
IMMUTABLE
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
    SELECT 'jobledger run ' OPERATOR(pg_catalog.||)
           pg_catalog.left(pg_catalog.md5('jobledger run ' OPERATOR(pg_catalog.||) run_application_name.run::pg_catalog.text), 20)
$$;
COMMENT ON FUNCTION jobledger_internal.run_application_name(uuid) IS
    'The application_name of the backend executing a run: a digest of the run''s id that tells nobody else which run it is.';
REVOKE ALL ON FUNCTION jobledger_internal.run_application_name(uuid) FROM PUBLIC;  -- the same ACL after an upgrade as after an install
-- PUBLIC: the runner sets it as the job's owner (after SET ROLE), in either runner mode.
GRANT EXECUTE ON FUNCTION jobledger_internal.run_application_name(uuid) TO PUBLIC;
