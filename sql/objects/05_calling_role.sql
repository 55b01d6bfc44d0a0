CREATE OR REPLACE FUNCTION jobledger.calling_role()
RETURNS name
LANGUAGE sql
STABLE
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
    -- SECURITY DEFINER changes current_user but not the session's role
    -- setting, so this is the role that called the API even from inside it.
    SELECT CASE pg_catalog.current_setting('role')
               WHEN 'none' THEN SESSION_USER
               ELSE pg_catalog.current_setting('role')
           END::pg_catalog.name
$$;
COMMENT ON FUNCTION jobledger.calling_role() IS
    'The role calling the jobledger API: the session''s SET ROLE role, else the session user (unchanged inside SECURITY DEFINER functions).';
REVOKE ALL ON FUNCTION jobledger.calling_role() FROM PUBLIC;
