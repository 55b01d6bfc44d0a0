-- What a job's query uses that its owner may not use (any more): the one
-- rule for define_job (right after PostgreSQL named the dependencies) and
-- for every submit_job (privileges can be revoked after define).
-- Dependencies are names (jobledger.job_version_check.dependencies): a
-- relation with the column used (NULL: the whole row) or a function's
-- signature.  Something that no longer exists cannot be used either.
-- No SET search_path, like calling_role: a SQL function with a SET clause
-- is planned again on every call, and submit_job asks this on every call;
-- without one PostgreSQL inlines it into its caller's (cached, path-pinned)
-- plan.  Every name in it is qualified, operators too.
CREATE OR REPLACE FUNCTION jobledger_internal.denied_dependencies(owner name, dependencies jsonb)
RETURNS TABLE (what text)
LANGUAGE sql
STABLE
AS $$
    WITH role AS (
        SELECT pg_catalog.to_regrole(pg_catalog.quote_ident(denied_dependencies.owner)) AS oid
    ), deps AS (
        SELECT d OPERATOR(pg_catalog.->>) 'schema' AS nsp, d OPERATOR(pg_catalog.->>) 'relation' AS rel,
               d OPERATOR(pg_catalog.->>) 'column' AS col, d OPERATOR(pg_catalog.->>) 'function' AS fn
          FROM pg_catalog.jsonb_array_elements(coalesce(denied_dependencies.dependencies, '[]'::pg_catalog.jsonb)) AS d
    ), resolved AS (
        SELECT deps.*, c.oid AS rel_oid, c.relnamespace AS rel_nsp, p.oid AS fn_oid, p.pronamespace AS fn_nsp
          FROM deps
          LEFT JOIN pg_catalog.pg_namespace AS n ON n.nspname OPERATOR(pg_catalog.=) deps.nsp
          LEFT JOIN pg_catalog.pg_class AS c
                 ON c.relnamespace OPERATOR(pg_catalog.=) n.oid AND c.relname OPERATOR(pg_catalog.=) deps.rel
          LEFT JOIN pg_catalog.pg_proc AS p ON p.oid OPERATOR(pg_catalog.=) pg_catalog.to_regprocedure(deps.fn)
    )
    SELECT CASE
             WHEN r.fn IS NOT NULL THEN pg_catalog.format('function %s', r.fn)
             WHEN r.rel_oid IS NOT NULL
                  AND NOT coalesce(pg_catalog.has_schema_privilege(role.oid, r.rel_nsp, 'USAGE'), false)
               THEN pg_catalog.format('schema %I', r.nsp)
             WHEN r.col IS NOT NULL THEN pg_catalog.format('column %I of table %I.%I', r.col, r.nsp, r.rel)
             ELSE pg_catalog.format('table %I.%I', r.nsp, r.rel)
           END OPERATOR(pg_catalog.||)
           CASE WHEN coalesce(r.fn_oid, r.rel_oid) IS NULL THEN ' (it no longer exists)' ELSE '' END
      FROM resolved AS r, role
     WHERE CASE
             WHEN r.fn IS NOT NULL
               THEN NOT coalesce(pg_catalog.has_function_privilege(role.oid, r.fn_oid, 'EXECUTE')
                                 AND pg_catalog.has_schema_privilege(role.oid, r.fn_nsp, 'USAGE'), false)
             WHEN r.col IS NOT NULL
               THEN NOT coalesce(pg_catalog.has_schema_privilege(role.oid, r.rel_nsp, 'USAGE')
                                 AND pg_catalog.has_column_privilege(role.oid, r.rel_oid, r.col, 'SELECT'), false)
             ELSE NOT coalesce(pg_catalog.has_schema_privilege(role.oid, r.rel_nsp, 'USAGE')
                               AND pg_catalog.has_any_column_privilege(role.oid, r.rel_oid, 'SELECT'), false)
           END
     ORDER BY 1
$$;
COMMENT ON FUNCTION jobledger_internal.denied_dependencies(name, jsonb) IS
    'What of a job''s dependencies (relations, columns, functions, by name) the owner may not use, or that no longer exists; define_job and every submit_job ask it.';
REVOKE ALL ON FUNCTION jobledger_internal.denied_dependencies(name, jsonb) FROM PUBLIC;  -- the same ACL after an upgrade as after an install
-- PUBLIC: define_job runs with its caller's rights and asks it; it tells only
-- what PostgreSQL's has_*_privilege functions tell everyone.
GRANT EXECUTE ON FUNCTION jobledger_internal.denied_dependencies(name, jsonb) TO PUBLIC;
