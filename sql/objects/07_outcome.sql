-- PL/Python cannot raise a clean PostgreSQL error: an exception leaving a
-- PL/Python function is reported as "plpy.Error: <message>" with a Python
-- traceback as its CONTEXT.  So each PL/Python entry point (the *_py
-- functions in plpython/) returns an outcome instead, {"value": v} or
-- {"error": {"message", "sqlstate", "detail", "hint"}}, and the public SQL
-- function passes it through this, which raises the error as PostgreSQL's
-- own: the message as written, the SQLSTATE, DETAIL with the category line.
CREATE OR REPLACE FUNCTION jobledger_internal.outcome_value(outcome jsonb)
RETURNS jsonb
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    error jsonb := outcome -> 'error';
BEGIN
    IF error IS NULL THEN
        RETURN outcome -> 'value';
    END IF;
    IF error ->> 'hint' IS NULL THEN
        RAISE EXCEPTION USING MESSAGE = error ->> 'message', ERRCODE = error ->> 'sqlstate',
                              DETAIL = coalesce(error ->> 'detail', '');
    END IF;
    RAISE EXCEPTION USING MESSAGE = error ->> 'message', ERRCODE = error ->> 'sqlstate',
                          DETAIL = coalesce(error ->> 'detail', ''), HINT = error ->> 'hint';
END
$$;
COMMENT ON FUNCTION jobledger_internal.outcome_value(jsonb) IS
    'Internal: the value of a PL/Python entry point''s outcome, or its error raised as a PostgreSQL error (message, SQLSTATE, DETAIL, HINT).';
-- PUBLIC: define_job runs with its caller's rights and raises through it.
REVOKE ALL ON FUNCTION jobledger_internal.outcome_value(jsonb) FROM PUBLIC;  -- the same ACL after an upgrade as after an install
GRANT EXECUTE ON FUNCTION jobledger_internal.outcome_value(jsonb) TO PUBLIC;
