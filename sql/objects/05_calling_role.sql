-- No SET search_path, unlike every other function: a SQL function with a
-- SET clause is never inlined, and this one is asked on every submit_job,
-- where running it as a function call cost more than the rest of its query.
-- Inlined, its body is planned within its caller, which always pins
-- search_path; every name in it is qualified, the operator too, so it means
-- the same wherever it is planned.  Executable by PUBLIC: define_job runs
-- as its caller and asks it (it tells a role only its own name).
CREATE OR REPLACE FUNCTION jobledger_internal.calling_role()
RETURNS name
LANGUAGE sql
STABLE
AS $$
    -- SECURITY DEFINER changes current_user but not the session's role
    -- setting, so this is the role that called the API even from inside it.
    SELECT CASE WHEN pg_catalog.current_setting('role') OPERATOR(pg_catalog.=) 'none'
                THEN SESSION_USER
                ELSE pg_catalog.current_setting('role')::pg_catalog.name
           END
$$;
COMMENT ON FUNCTION jobledger_internal.calling_role() IS
    'The role calling the jobledger API: the session''s SET ROLE role, else the session user (unchanged inside SECURITY DEFINER functions).';
REVOKE ALL ON FUNCTION jobledger_internal.calling_role() FROM PUBLIC;  -- the same ACL after an upgrade as after an install
GRANT EXECUTE ON FUNCTION jobledger_internal.calling_role() TO PUBLIC;
