-- Who may write where in the lake (docs/security.md, "Lake destinations"):
-- the grants of location prefixes to roles (jobledger.lake_grant, migration
-- 0.6.0/0040), the superusers' functions that change them, the view, and
-- the one question define_job, submit_job and the runner ask.

-- Whether the job owner (a role name) may have the runner write the lake
-- location uri (normalised: jobledger.core.destinations.lake_uri).  A
-- superuser may write anywhere (as a superuser may write server files);
-- anyone else needs a grant of a prefix covering uri, by whole path
-- components, to PUBLIC or to a role whose privileges the owner has
-- (pg_has_role USAGE: itself, or a group it inherits from; membership
-- without INHERIT does not count, as for table privileges).  A role that
-- does not exist may write nowhere.  Executable by everyone: it tells what
-- the (readable) grants and pg_roles say; define_job asks it as its caller,
-- the runner as its own role.
CREATE OR REPLACE FUNCTION jobledger_internal.lake_write_allowed(owner name, uri text)
RETURNS boolean
LANGUAGE sql
STABLE
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
    SELECT coalesce((
        SELECT r.rolsuper OR EXISTS (
                   SELECT 1
                     FROM jobledger.lake_grant AS g
                    WHERE (lake_write_allowed.uri = g.prefix
                           OR pg_catalog.starts_with(lake_write_allowed.uri, g.prefix || '/'))
                      AND (g.grantee = 0
                           OR (EXISTS (SELECT 1 FROM pg_catalog.pg_roles AS gr WHERE gr.oid = g.grantee)
                               AND pg_catalog.pg_has_role(r.oid, g.grantee, 'USAGE'))))
          FROM pg_catalog.pg_roles AS r
         WHERE r.rolname = lake_write_allowed.owner), false)
$$;
COMMENT ON FUNCTION jobledger_internal.lake_write_allowed(name, text) IS
    'Whether jobs owned by owner may write the lake location uri: a superuser, or a grant (jobledger.lake_grants) to PUBLIC or to a role whose privileges owner has, of a prefix covering uri by whole path components.';
REVOKE ALL ON FUNCTION jobledger_internal.lake_write_allowed(name, text) FROM PUBLIC;  -- the same ACL after an upgrade as after an install
GRANT EXECUTE ON FUNCTION jobledger_internal.lake_write_allowed(name, text) TO PUBLIC;

-- The grantee of allow/disallow_lake_prefix: 'public' (PUBLIC, 0) or an
-- existing role, by its name as stored (not an SQL identifier: no quotes,
-- no case folding).  Grants of roles dropped since are removed first, so a
-- later role that happened to get the same oid inherits nothing.
CREATE OR REPLACE FUNCTION jobledger_internal.lake_grantee(role name, what text)
RETURNS oid
LANGUAGE plpgsql
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    found oid;
BEGIN
    PERFORM jobledger_internal.require_superuser(what);
    DELETE FROM jobledger.lake_grant AS g
     WHERE g.grantee <> 0 AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles AS r WHERE r.oid = g.grantee);
    IF lake_grantee.role = 'public' THEN
        RETURN 0;
    END IF;
    SELECT r.oid INTO found FROM pg_catalog.pg_roles AS r WHERE r.rolname = lake_grantee.role;
    IF found IS NULL THEN
        RAISE EXCEPTION 'role % does not exist', pg_catalog.quote_literal(coalesce(lake_grantee.role::text, 'NULL'))
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument',
                  HINT = 'Name a role as it is stored (no quotes), or ''public'' for every role.';
    END IF;
    RETURN found;
END
$$;
COMMENT ON FUNCTION jobledger_internal.lake_grantee(name, text) IS
    'Internal to allow_lake_prefix and disallow_lake_prefix: permission_denied unless the caller is a superuser; the oid of role (0 for public); drops the grants of roles that no longer exist.';
REVOKE ALL ON FUNCTION jobledger_internal.lake_grantee(name, text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION jobledger.allow_lake_prefix(role name, prefix text)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    role_oid oid := jobledger_internal.lake_grantee(allow_lake_prefix.role, 'allow_lake_prefix');
    normalised text := jobledger_internal.outcome_value(jobledger_internal.lake_prefix_py(allow_lake_prefix.prefix))
                           OPERATOR(pg_catalog.#>>) '{}'::text[];
BEGIN
    INSERT INTO jobledger.lake_grant (grantee, prefix, granted_by)
    VALUES (role_oid::regrole, normalised, jobledger_internal.calling_role())
    ON CONFLICT DO NOTHING;
END
$$;
COMMENT ON FUNCTION jobledger.allow_lake_prefix(name, text) IS
    'Lets jobs owned by role (or by a role that has its privileges; ''public'': every role) write lake destinations (delta:, lance:) at prefix or below it: a local directory or s3://bucket[/prefix], by whole path components. Superusers only.';
GRANT EXECUTE ON FUNCTION jobledger.allow_lake_prefix(name, text) TO PUBLIC;

CREATE OR REPLACE FUNCTION jobledger.disallow_lake_prefix(role name, prefix text)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    role_oid oid := jobledger_internal.lake_grantee(disallow_lake_prefix.role, 'disallow_lake_prefix');
    normalised text := jobledger_internal.outcome_value(jobledger_internal.lake_prefix_py(disallow_lake_prefix.prefix))
                           OPERATOR(pg_catalog.#>>) '{}'::text[];
    removed integer;
BEGIN
    DELETE FROM jobledger.lake_grant AS g WHERE g.grantee = role_oid::regrole AND g.prefix = normalised;
    GET DIAGNOSTICS removed = ROW_COUNT;
    RETURN removed > 0;
END
$$;
COMMENT ON FUNCTION jobledger.disallow_lake_prefix(name, text) IS
    'Takes back allow_lake_prefix(role, prefix): define_job and submit_job refuse, and runners do not start, writes it alone covered (runs already writing finish); returns whether it was granted. Superusers only.';
GRANT EXECUTE ON FUNCTION jobledger.disallow_lake_prefix(name, text) TO PUBLIC;

CREATE OR REPLACE VIEW jobledger.lake_grants WITH (security_invoker = true) AS
SELECT CASE WHEN g.grantee = 0 THEN 'public' ELSE r.rolname::text END AS role,
       g.prefix,
       g.granted_by,
       g.granted_at
  FROM jobledger.lake_grant AS g
  LEFT JOIN pg_catalog.pg_roles AS r ON r.oid = g.grantee
 WHERE g.grantee = 0 OR r.oid IS NOT NULL;
COMMENT ON VIEW jobledger.lake_grants IS
    'Who may write where in the lake: each role (public: every role) and the location prefix its jobs may write (jobledger.allow_lake_prefix). Superusers need none.';
GRANT SELECT ON jobledger.lake_grants TO PUBLIC;
