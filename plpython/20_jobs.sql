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
LANGUAGE plpython3u
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $python$
@PRELUDE@
return jobledger.server.define_job(plpy, name, query, destination, mode, params, timeout, max_attempts, description)
$python$;
COMMENT ON FUNCTION jobledger.define_job(text, text, text, text, jsonb, interval, integer, text) IS
    'Defines a job (the caller becomes its owner), or a new version of it when anything changed; returns the version. The template is checked (one SELECT, placeholders where values stand), the parameters'' declarations must match the placeholders, and the output must fit the destination.';
GRANT EXECUTE ON FUNCTION jobledger.define_job(text, text, text, text, jsonb, interval, integer, text) TO PUBLIC;

CREATE OR REPLACE FUNCTION jobledger.submit_job(
    job text,
    params jsonb DEFAULT '{}',
    idempotency_key text DEFAULT NULL,
    priority integer DEFAULT 0,
    run_after timestamptz DEFAULT NULL,
    max_attempts integer DEFAULT NULL
)
RETURNS uuid
LANGUAGE plpython3u
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $python$
@PRELUDE@
return jobledger.server.submit_job(plpy, job, params, idempotency_key, priority, run_after, max_attempts)
$python$;
COMMENT ON FUNCTION jobledger.submit_job(text, jsonb, text, integer, timestamptz, integer) IS
    'Validates the parameters, renders the query with each value as one typed literal, checks the output against the destination and records a pending run; returns its id. The same idempotency_key for the same job returns the existing run.';
GRANT EXECUTE ON FUNCTION jobledger.submit_job(text, jsonb, text, integer, timestamptz, integer) TO PUBLIC;
