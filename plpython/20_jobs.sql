-- define_job runs with its caller's rights (SECURITY INVOKER): what
-- PostgreSQL works out from the template (output columns, dependencies) is
-- worked out with rights its author has, and template text never reaches
-- the server inside a function that runs with more.  The ledger write is
-- jobledger_internal.record_job_version, which checks everything it needs itself.
CREATE OR REPLACE FUNCTION jobledger_internal.define_job_py(
    name text, query text, destination text, mode text, params jsonb, timeout interval,
    max_attempts integer, description text
)
RETURNS jsonb
LANGUAGE plpython3u
SET search_path = pg_catalog, jobledger, pg_temp
SET standard_conforming_strings = on
AS $python$
@PRELUDE@
return jobledger.server.define_job(plpy, name, query, destination, mode, params, timeout, max_attempts, description)
$python$;
COMMENT ON FUNCTION jobledger_internal.define_job_py(text, text, text, text, jsonb, interval, integer, text) IS
    'Internal: the outcome of jobledger.define_job, with its caller''s rights (see jobledger_internal.outcome_value).';
REVOKE ALL ON FUNCTION jobledger_internal.define_job_py(text, text, text, text, jsonb, interval, integer, text) FROM PUBLIC;  -- the same ACL after an upgrade as after an install
GRANT EXECUTE ON FUNCTION jobledger_internal.define_job_py(text, text, text, text, jsonb, interval, integer, text) TO PUBLIC;

CREATE OR REPLACE FUNCTION jobledger.define_job(
    name text,
    query text,
    destination text,
    mode text DEFAULT 'append',
    params jsonb DEFAULT NULL,
    timeout interval DEFAULT NULL,
    max_attempts integer DEFAULT 3,
    description text DEFAULT NULL
)
RETURNS integer
LANGUAGE sql
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
    SELECT (jobledger_internal.outcome_value(jobledger_internal.define_job_py(
                define_job.name, define_job.query, define_job.destination, define_job.mode,
                define_job.params, define_job.timeout, define_job.max_attempts, define_job.description
            )) OPERATOR(pg_catalog.#>>) '{}'::text[])::integer
$$;
COMMENT ON FUNCTION jobledger.define_job(text, text, text, text, jsonb, interval, integer, text) IS
    'Defines a job (the caller becomes its owner), or a new version of it when anything changed; returns the version. Runs with the caller''s rights. The template is stored exactly as written; PostgreSQL''s own grammar must read it as one plain SELECT with each {placeholder} where a value stands, the parameters'' declarations must match the placeholders, and the output must fit the destination.';
GRANT EXECUTE ON FUNCTION jobledger.define_job(text, text, text, text, jsonb, interval, integer, text) TO PUBLIC;

-- record_job_version's own check of a template: pure Python, nothing of the
-- text reaches the server, so it may run inside that SECURITY DEFINER function.
CREATE OR REPLACE FUNCTION jobledger_internal.check_template_py(query text, params text)
RETURNS jsonb
LANGUAGE plpython3u
IMMUTABLE
SET search_path = pg_catalog, jobledger, pg_temp
AS $python$
@PRELUDE@
return jobledger.server.check_template(plpy, query, params)
$python$;
COMMENT ON FUNCTION jobledger_internal.check_template_py(text, text) IS
    'Internal: the placeholders of a template PostgreSQL''s grammar accepts, as an outcome (see jobledger_internal.outcome_value).';
REVOKE ALL ON FUNCTION jobledger_internal.check_template_py(text, text) FROM PUBLIC;

-- What the upgrade to 0.5.0 asks of a version an older jobledger recorded,
-- run as the version's owner (sql/after/10_check_versions.sql).
CREATE OR REPLACE FUNCTION jobledger_internal.analyse_version_py(job text, query text, params text)
RETURNS jsonb
LANGUAGE plpython3u
SET search_path = pg_catalog, jobledger, pg_temp
SET standard_conforming_strings = on
AS $python$
@PRELUDE@
return jobledger.server.analyse_version(plpy, job, query, params)
$python$;
COMMENT ON FUNCTION jobledger_internal.analyse_version_py(text, text, text) IS
    'Internal: a job version checked under the current template rules with the caller''s rights (placeholders, output columns by kind of value), as an outcome.';
GRANT EXECUTE ON FUNCTION jobledger_internal.analyse_version_py(text, text, text) TO PUBLIC;

CREATE OR REPLACE FUNCTION jobledger_internal.submit_job_py(
    job text, params jsonb, idempotency_key text, priority integer, run_after timestamptz, max_attempts integer
)
RETURNS jsonb
LANGUAGE plpython3u
SET search_path = pg_catalog, jobledger, pg_temp
AS $python$
@PRELUDE@
return jobledger.server.submit_job(plpy, job, params, idempotency_key, priority, run_after, max_attempts)
$python$;
COMMENT ON FUNCTION jobledger_internal.submit_job_py(text, jsonb, text, integer, timestamptz, integer) IS
    'Internal: the outcome of jobledger.submit_job (see jobledger_internal.outcome_value).';
REVOKE ALL ON FUNCTION jobledger_internal.submit_job_py(text, jsonb, text, integer, timestamptz, integer) FROM PUBLIC;

CREATE OR REPLACE FUNCTION jobledger.submit_job(
    job text,
    params jsonb DEFAULT '{}',
    idempotency_key text DEFAULT NULL,
    priority integer DEFAULT 0,
    run_after timestamptz DEFAULT NULL,
    max_attempts integer DEFAULT NULL
)
RETURNS uuid
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
    SELECT (jobledger_internal.outcome_value(jobledger_internal.submit_job_py(
                submit_job.job, submit_job.params, submit_job.idempotency_key, submit_job.priority,
                submit_job.run_after, submit_job.max_attempts
            )) OPERATOR(pg_catalog.#>>) '{}'::text[])::uuid
$$;
COMMENT ON FUNCTION jobledger.submit_job(text, jsonb, text, integer, timestamptz, integer) IS
    'Validates the parameters, renders the query with each value as one typed literal, checks the output against the destination and records a pending run; returns its id. The same idempotency_key for the same job returns the existing run.';
GRANT EXECUTE ON FUNCTION jobledger.submit_job(text, jsonb, text, integer, timestamptz, integer) TO PUBLIC;
