-- The ledger write of define_job, the only part of it that runs with the
-- extension owner's rights.  Anyone may call it directly, so it trusts no
-- argument: under one lock on the job name it decides the owner (the
-- calling role for a new job; for an existing one the caller must be a
-- member of its owner, checked right before the version is written), and it
-- checks the template itself (jobledger_internal.check_template_py: PostgreSQL's
-- grammar in process, nothing executed).  The analysis (output columns by
-- kind of value) is stored as given: it only decides what submit_job
-- refuses early, and runs execute with the owner's rights whatever it says.
CREATE OR REPLACE FUNCTION jobledger_internal.record_job_version(
    job_name text, query text, destination text, mode text,
    params jsonb, timeout interval, max_attempts integer, description text, analysis jsonb
)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    caller name := jobledger_internal.calling_role();
    job_owner name;
    current jobledger.job_version;
    next_version integer;
    checked jsonb;
BEGIN
    IF job_name IS NULL OR query IS NULL OR destination IS NULL OR mode IS NULL THEN
        RAISE EXCEPTION 'a job needs a name, a query, a destination and a mode'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    IF timeout IS NOT NULL AND (timeout < interval '1 millisecond' OR timeout > interval '2147483647 milliseconds') THEN
        RAISE EXCEPTION 'timeout % is out of range: from 1 millisecond to 24 days 20:31:23.647 (statement_timeout''s range)', timeout
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    checked := jobledger_internal.outcome_value(jobledger_internal.check_template_py(query, params::text));
    -- One lock on the name for the owner check and the version insert: a
    -- definition that waited cannot become a version of a job someone else
    -- created meanwhile.
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('jobledger.job ' || job_name, 0));
    INSERT INTO jobledger.job AS j (name, owner, description)
    VALUES (job_name, caller, record_job_version.description)
    ON CONFLICT (name) DO NOTHING;
    SELECT j.owner INTO job_owner FROM jobledger.job AS j WHERE j.name = job_name FOR UPDATE;
    IF NOT (pg_catalog.to_regrole(pg_catalog.quote_ident(job_owner)) IS NOT NULL
            AND pg_catalog.pg_has_role(caller, pg_catalog.to_regrole(pg_catalog.quote_ident(job_owner)), 'MEMBER')) THEN
        RAISE EXCEPTION 'job "%" exists and % may not change it', job_name, caller
            USING ERRCODE = 'insufficient_privilege', DETAIL = 'category: permission_denied',
                  HINT = 'Only its owner (or a member of the owner role) defines new versions; choose another name.';
    END IF;
    SELECT v.* INTO current
      FROM jobledger.job AS j JOIN jobledger.job_version AS v ON v.job = j.name AND v.version = j.current_version
     WHERE j.name = job_name;
    IF record_job_version.description IS NOT NULL THEN
        UPDATE jobledger.job AS j SET description = record_job_version.description, updated_at = pg_catalog.now()
         WHERE j.name = job_name AND j.description IS DISTINCT FROM record_job_version.description;
    END IF;
    IF current.version IS NOT NULL
       AND current.query = record_job_version.query
       AND current.params IS NOT DISTINCT FROM record_job_version.params
       AND current.destination = record_job_version.destination
       AND current.mode = record_job_version.mode
       AND current.timeout IS NOT DISTINCT FROM record_job_version.timeout
       AND current.max_attempts = record_job_version.max_attempts
       AND EXISTS (SELECT 1 FROM jobledger.job_version_check AS c
                    WHERE c.job = job_name AND c.version = current.version AND c.problem IS NULL) THEN
        RETURN current.version;
    END IF;
    SELECT coalesce(max(v.version), 0) + 1 INTO next_version FROM jobledger.job_version AS v WHERE v.job = job_name;
    INSERT INTO jobledger.job_version (job, version, query, params, destination, mode, timeout, max_attempts, created_by)
    VALUES (job_name, next_version, record_job_version.query, record_job_version.params,
            record_job_version.destination, record_job_version.mode, record_job_version.timeout,
            record_job_version.max_attempts, caller);
    INSERT INTO jobledger.job_version_check (job, version, placeholders, query_end, shapes, dependencies)
    VALUES (job_name, next_version, checked -> 'placeholders', (checked ->> 'query_end')::integer,
            coalesce(analysis -> 'shapes', '{}'), coalesce(analysis -> 'dependencies', '[]'));
    UPDATE jobledger.job AS j SET current_version = next_version, updated_at = pg_catalog.now() WHERE j.name = job_name;
    RETURN next_version;
END
$$;
COMMENT ON FUNCTION jobledger_internal.record_job_version(text, text, text, text, jsonb, interval, integer, text, jsonb) IS
    'Internal to define_job: writes the job and, if anything changed, its next version; checks the owner under a lock on the name and the template itself.';
GRANT EXECUTE ON FUNCTION jobledger_internal.record_job_version(text, text, text, text, jsonb, interval, integer, text, jsonb) TO PUBLIC;

CREATE OR REPLACE FUNCTION jobledger_internal.owned_job(job_name text)
RETURNS jobledger.job
LANGUAGE plpgsql
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    job_row jobledger.job;
    role_name name := jobledger_internal.calling_role();
BEGIN
    IF job_name IS NULL THEN
        RAISE EXCEPTION 'a job name is needed'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    SELECT j.* INTO job_row FROM jobledger.job AS j WHERE j.name = job_name FOR UPDATE;
    -- A job the caller may not see (row-level security on jobledger.job)
    -- looks absent: the same error, nothing about its owner.
    IF NOT FOUND OR NOT (
           pg_catalog.pg_has_role(role_name, 'pg_read_all_data', 'MEMBER')
           OR coalesce(pg_catalog.pg_has_role(role_name, pg_catalog.to_regrole(pg_catalog.quote_ident(job_row.owner)),
                                              'MEMBER'), false)
           OR EXISTS (SELECT 1 FROM jobledger.job_grant AS g
                       WHERE g.job = job_row.name
                         AND coalesce(pg_catalog.pg_has_role(role_name,
                                          pg_catalog.to_regrole(pg_catalog.quote_ident(g.grantee)), 'MEMBER'),
                                      false))) THEN
        RAISE EXCEPTION 'there is no job "%"', job_name
            USING ERRCODE = 'undefined_object', DETAIL = 'category: unknown_job';
    END IF;
    IF NOT coalesce(pg_catalog.pg_has_role(role_name, pg_catalog.to_regrole(pg_catalog.quote_ident(job_row.owner)),
                                           'MEMBER'), false) THEN
        RAISE EXCEPTION '% may not change job "%": only its owner (or a member of the owner role) may', role_name, job_name
            USING ERRCODE = 'insufficient_privilege', DETAIL = 'category: permission_denied';
    END IF;
    RETURN job_row;
END
$$;
COMMENT ON FUNCTION jobledger_internal.owned_job(text) IS
    'Internal: the job, locked, if the calling role is its owner or a member of it; else unknown_job (also for a job the caller may not see) or permission_denied.';
REVOKE ALL ON FUNCTION jobledger_internal.owned_job(text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION jobledger.grant_job(job text, role pg_catalog.regrole)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
BEGIN
    IF grant_job.role IS NULL THEN
        RAISE EXCEPTION 'grant_job needs a role'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    PERFORM jobledger_internal.owned_job(grant_job.job);
    -- The role's own name, as pg_roles has it: regrole's text is quoted
    -- when the name needs quotes, and grants are matched by name.
    INSERT INTO jobledger.job_grant (job, grantee, granted_by)
    SELECT grant_job.job, r.rolname, jobledger_internal.calling_role()
      FROM pg_catalog.pg_roles AS r WHERE r.oid = grant_job.role
    ON CONFLICT DO NOTHING;
END
$$;
COMMENT ON FUNCTION jobledger.grant_job(text, pg_catalog.regrole) IS
    'Lets role (and its members) submit runs of job. Only the job''s owner (or a member of it) may grant.';
GRANT EXECUTE ON FUNCTION jobledger.grant_job(text, pg_catalog.regrole) TO PUBLIC;

CREATE OR REPLACE FUNCTION jobledger.revoke_job(job text, role pg_catalog.regrole)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    removed integer;
BEGIN
    IF revoke_job.role IS NULL THEN
        RAISE EXCEPTION 'revoke_job needs a role'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    PERFORM jobledger_internal.owned_job(revoke_job.job);
    DELETE FROM jobledger.job_grant AS g
     WHERE g.job = revoke_job.job
       AND g.grantee = (SELECT r.rolname FROM pg_catalog.pg_roles AS r WHERE r.oid = revoke_job.role);
    GET DIAGNOSTICS removed = ROW_COUNT;
    RETURN removed > 0;
END
$$;
COMMENT ON FUNCTION jobledger.revoke_job(text, pg_catalog.regrole) IS
    'Takes back grant_job; returns whether there was a grant. Only the job''s owner (or a member of it) may revoke.';
GRANT EXECUTE ON FUNCTION jobledger.revoke_job(text, pg_catalog.regrole) TO PUBLIC;

CREATE OR REPLACE FUNCTION jobledger.drop_job(name text)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
BEGIN
    PERFORM jobledger_internal.owned_job(drop_job.name);
    IF EXISTS (SELECT 1 FROM jobledger.run AS r WHERE r.job = drop_job.name AND r.status IN ('pending', 'running')) THEN
        RAISE EXCEPTION 'job "%" has pending or running runs', drop_job.name
            USING ERRCODE = 'object_in_use', DETAIL = 'category: job_busy',
                  HINT = 'Cancel them or let them finish, then drop the job.';
    END IF;
    -- The job's history goes with it: its runs, their attempts, its versions.
    DELETE FROM jobledger.run AS r WHERE r.job = drop_job.name;
    DELETE FROM jobledger.job AS j WHERE j.name = drop_job.name;
END
$$;
COMMENT ON FUNCTION jobledger.drop_job(text) IS
    'Drops a job with its versions, grants and finished runs; refused (job_busy) while runs are pending or running. Only its owner (or a member of it) may.';
GRANT EXECUTE ON FUNCTION jobledger.drop_job(text) TO PUBLIC;
