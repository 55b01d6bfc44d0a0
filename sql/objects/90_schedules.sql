-- Schedules (on pg_cron) and backfills: docs/schedules.md.
--
-- pg_cron fires the ticks.  jobledger.schedule (SECURITY DEFINER, as the
-- extension's owner, a superuser) writes the caller's own schedule and a
-- cron.job row whose command is the fixed call
--     SELECT jobledger_internal.tick('<schedule name as a literal>')
-- run by pg_cron as the calling role (cron.job.username): nothing the caller
-- passes becomes SQL text but the schedule's name, checked against a closed
-- pattern and quoted as a literal.  The tick runs with the owner's rights
-- only, and submits through submit_job, so the job's grant rules apply on
-- every tick.  Nothing here names pg_cron's objects statically: jobledger
-- installs and works without pg_cron, and only schedule() needs it.

-- Whether pg_cron is installed here: schema cron exists and belongs to the
-- extension pg_cron (and is not a look-alike someone else made, whose
-- functions the SECURITY DEFINER functions below would otherwise call).
CREATE OR REPLACE FUNCTION jobledger_internal.pg_cron_installed()
RETURNS boolean
LANGUAGE sql
STABLE
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
    SELECT EXISTS (
        SELECT 1
          FROM pg_catalog.pg_depend AS d
          JOIN pg_catalog.pg_extension AS e ON e.oid = d.refobjid
         WHERE d.classid = 'pg_catalog.pg_namespace'::pg_catalog.regclass
           AND d.objid = pg_catalog.to_regnamespace('cron')
           AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
           AND d.deptype = 'e'
           AND e.extname = 'pg_cron')
$$;
COMMENT ON FUNCTION jobledger_internal.pg_cron_installed() IS
    'Internal: whether pg_cron is installed in this database (schema cron is the extension pg_cron''s).';
REVOKE ALL ON FUNCTION jobledger_internal.pg_cron_installed() FROM PUBLIC;

-- pg_cron's schema, or feature_not_available.
CREATE OR REPLACE FUNCTION jobledger_internal.require_pg_cron()
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
BEGIN
    IF NOT jobledger_internal.pg_cron_installed() THEN
        RAISE EXCEPTION 'schedules need pg_cron, which is not installed in database %', pg_catalog.current_database()
            USING ERRCODE = 'feature_not_supported', DETAIL = 'category: feature_not_available',
                  HINT = 'Install pg_cron (e.g. postgresql-15-cron), set shared_preload_libraries = ''pg_cron'' and '
                         'cron.database_name = ''' || pg_catalog.current_database()
                         || ''' in postgresql.conf, restart, then CREATE EXTENSION pg_cron in this database.';
    END IF;
END
$$;
COMMENT ON FUNCTION jobledger_internal.require_pg_cron() IS
    'Internal: raises feature_not_available (0A000) unless pg_cron is installed in this database.';
REVOKE ALL ON FUNCTION jobledger_internal.require_pg_cron() FROM PUBLIC;

-- The tick a call at `at` belongs to: pg_cron fires cron expressions at the
-- start of a minute, and 'N seconds' schedules every N seconds; a tick that
-- fires twice (or late within its minute) maps to the same tick time.
CREATE OR REPLACE FUNCTION jobledger_internal.tick_time(cron text, at timestamptz)
RETURNS timestamptz
LANGUAGE sql
IMMUTABLE
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
    SELECT CASE
        WHEN seconds.n IS NOT NULL AND seconds.n::integer BETWEEN 1 AND 59
        THEN pg_catalog.to_timestamp(pg_catalog.floor(EXTRACT(epoch FROM tick_time.at) / seconds.n::integer)
                                     * seconds.n::integer)
        ELSE pg_catalog.date_trunc('minute', tick_time.at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
    END
      FROM (SELECT (pg_catalog.regexp_match(tick_time.cron, '^\s*([0-9]{1,2})\s+seconds?\s*$', 'i'))[1] AS n) AS seconds
$$;
COMMENT ON FUNCTION jobledger_internal.tick_time(text, timestamptz) IS
    'Internal: the tick of schedule text cron that a call at time at belongs to (the minute; for ''N seconds'' schedules the N-second slot).';
REVOKE ALL ON FUNCTION jobledger_internal.tick_time(text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION jobledger_internal.tick_time(text, timestamptz) TO PUBLIC;

-- The time zone dates of ticks are taken in: pg_cron's (cron.timezone from
-- pg_cron 1.5; GMT before).
CREATE OR REPLACE FUNCTION jobledger_internal.cron_time_zone()
RETURNS text
LANGUAGE sql
STABLE
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
    SELECT coalesce(NULLIF(pg_catalog.current_setting('cron.timezone', true), ''), 'GMT')
$$;
COMMENT ON FUNCTION jobledger_internal.cron_time_zone() IS
    'Internal: the time zone pg_cron reads schedules in (cron.timezone, else GMT): tick dates are taken there.';
REVOKE ALL ON FUNCTION jobledger_internal.cron_time_zone() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION jobledger_internal.cron_time_zone() TO PUBLIC;

-- The parameters a tick submits: every string value of the form
--   {{tick_time [± N second(s)|minute(s)|hour(s)|day(s)]}}
--   {{tick_date [± N [day(s)|month(s)]]}}
--   {{tick_month_start [± N [day(s)|month(s)]]}}
-- becomes that value (a JSON string: a timestamp with time zone or a date,
-- computed here with date arithmetic); any other string holding '{{' is
-- refused (invalid_argument), at any depth, so a typo never reaches a job as
-- text.  Everything else is passed on unchanged.
CREATE OR REPLACE FUNCTION jobledger_internal.tick_params(params jsonb, tick timestamptz)
RETURNS jsonb
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    result jsonb := '{}';
    key text;
    value jsonb;
    parts text[];
    n integer;
    unit text;
    tick_date date := (tick_params.tick AT TIME ZONE jobledger_internal.cron_time_zone())::date;
    base date;
BEGIN
    IF tick_params.params IS NULL OR pg_catalog.jsonb_typeof(tick_params.params) <> 'object' THEN
        RAISE EXCEPTION 'a schedule''s parameters are a JSON object'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    FOR key, value IN SELECT e.key, e.value FROM pg_catalog.jsonb_each(tick_params.params) AS e LOOP
        IF pg_catalog.jsonb_typeof(value) <> 'string' THEN
            IF pg_catalog.jsonb_path_exists(value, '$.** ? (@.type() == "string" && @ like_regex "[{][{]")') THEN
                RAISE EXCEPTION 'parameter "%": tick expressions ({{...}}) may only be whole top-level values', key
                    USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
            END IF;
            result := result OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(key, value);
            CONTINUE;
        END IF;
        IF pg_catalog.strpos(value OPERATOR(pg_catalog.#>>) '{}', '{{') = 0 THEN
            result := result OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(key, value);
            CONTINUE;
        END IF;
        parts := pg_catalog.regexp_match(value OPERATOR(pg_catalog.#>>) '{}',
            '^\{\{ *(tick_time|tick_date|tick_month_start) *(?:([-+]) *([0-9]{1,5}) *(seconds?|minutes?|hours?|days?|months?)?)? *\}\}$');
        IF parts IS NULL THEN
            RAISE EXCEPTION 'parameter "%": % is not a tick expression', key, value
                USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument',
                      HINT = 'Write {{tick_date}}, {{tick_date - 1}}, {{tick_month_start - 1 month}}, '
                             '{{tick_time}} or {{tick_time - 2 hours}} (docs/schedules.md).';
        END IF;
        n := coalesce(parts[3]::integer, 0) * CASE WHEN parts[2] = '-' THEN -1 ELSE 1 END;
        unit := pg_catalog.rtrim(parts[4], 's');
        IF parts[1] = 'tick_time' THEN
            IF parts[2] IS NOT NULL AND unit IS NULL OR unit = 'month' THEN
                RAISE EXCEPTION 'parameter "%": % needs a unit of seconds, minutes, hours or days', key, value
                    USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument',
                          HINT = 'For example {{tick_time - 2 hours}}.';
            END IF;
            result := result OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(key, pg_catalog.to_jsonb(
                tick_params.tick OPERATOR(pg_catalog.+) pg_catalog.make_interval(
                    days => CASE WHEN unit = 'day' THEN n ELSE 0 END,
                    hours => CASE WHEN unit = 'hour' THEN n ELSE 0 END,
                    mins => CASE WHEN unit = 'minute' THEN n ELSE 0 END,
                    secs => CASE WHEN unit = 'second' THEN n ELSE 0 END)));
        ELSE
            IF unit IN ('second', 'minute', 'hour') THEN
                RAISE EXCEPTION 'parameter "%": % is a date: offsets are days or months', key, value
                    USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
            END IF;
            base := CASE WHEN parts[1] = 'tick_date' THEN tick_date
                         ELSE pg_catalog.date_trunc('month', tick_date)::date END;
            result := result OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(key, pg_catalog.to_jsonb(
                (base OPERATOR(pg_catalog.+) pg_catalog.make_interval(
                    months => CASE WHEN unit = 'month' THEN n ELSE 0 END,
                    days => CASE WHEN unit = 'month' THEN 0 ELSE n END))::date));
        END IF;
    END LOOP;
    RETURN result;
END
$$;
COMMENT ON FUNCTION jobledger_internal.tick_params(jsonb, timestamptz) IS
    'Internal: a schedule''s parameters for the tick at tick: {{tick_time}}, {{tick_date}} and {{tick_month_start}} values (with an offset) computed, anything else holding {{ refused (invalid_argument).';
REVOKE ALL ON FUNCTION jobledger_internal.tick_params(jsonb, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION jobledger_internal.tick_params(jsonb, timestamptz) TO PUBLIC;

-- The idempotency key of a schedule's tick: the same tick submits once.
CREATE OR REPLACE FUNCTION jobledger_internal.tick_key(schedule text, tick timestamptz)
RETURNS text
LANGUAGE sql
IMMUTABLE
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
    SELECT 'schedule ' OPERATOR(pg_catalog.||) tick_key.schedule OPERATOR(pg_catalog.||) ' at '
           OPERATOR(pg_catalog.||) pg_catalog.to_char(tick_key.tick AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
$$;
COMMENT ON FUNCTION jobledger_internal.tick_key(text, timestamptz) IS
    'Internal: the idempotency key a schedule''s tick submits with (''schedule <name> at <tick, UTC>'').';
REVOKE ALL ON FUNCTION jobledger_internal.tick_key(text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION jobledger_internal.tick_key(text, timestamptz) TO PUBLIC;

-- What pg_cron runs.  SECURITY INVOKER: pg_cron connects as the schedule's
-- owner, who sees (row-level security) and finds only its own schedules, and
-- submits as itself.  `at` is for tests and catching up by hand: the owner
-- may as well call submit_job.
CREATE OR REPLACE FUNCTION jobledger_internal.tick(schedule text, at timestamptz DEFAULT NULL)
RETURNS uuid
LANGUAGE plpgsql
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    s jobledger.schedule;
    tick_at timestamptz;
BEGIN
    SELECT * INTO s FROM jobledger.schedule AS x
     WHERE x.owner = jobledger_internal.calling_role() AND x.name = tick.schedule;
    IF NOT FOUND THEN
        RAISE EXCEPTION '% has no schedule "%"', jobledger_internal.calling_role(), tick.schedule
            USING ERRCODE = 'undefined_object', DETAIL = 'category: unknown_schedule';
    END IF;
    tick_at := jobledger_internal.tick_time(s.cron, coalesce(tick.at, pg_catalog.now()));
    RETURN jobledger.submit_job(s.job, jobledger_internal.tick_params(s.params, tick_at),
                                idempotency_key => jobledger_internal.tick_key(s.name, tick_at),
                                priority => s.priority);
END
$$;
COMMENT ON FUNCTION jobledger_internal.tick(text, timestamptz) IS
    'What pg_cron runs on each tick of a schedule, as its owner: submits the job with the tick''s parameters and the idempotency key of the tick (so a tick that fires twice makes one run); at: the time the tick belongs to (default now).';
REVOKE ALL ON FUNCTION jobledger_internal.tick(text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION jobledger_internal.tick(text, timestamptz) TO PUBLIC;

-- pg_cron's job name for a schedule (unique per role in cron.job).
CREATE OR REPLACE FUNCTION jobledger_internal.cron_job_name(schedule text)
RETURNS text
LANGUAGE sql
IMMUTABLE
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
    SELECT 'jobledger ' OPERATOR(pg_catalog.||) cron_job_name.schedule
$$;
COMMENT ON FUNCTION jobledger_internal.cron_job_name(text) IS
    'Internal: the cron.job jobname of a jobledger schedule (pg_cron keeps job names unique per role).';
REVOKE ALL ON FUNCTION jobledger_internal.cron_job_name(text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION jobledger.schedule(
    name text,
    job text,
    cron text,
    params jsonb DEFAULT '{}',
    priority integer DEFAULT 0
)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    owner_role name := jobledger_internal.calling_role();
    cron_id bigint;
BEGIN
    IF schedule.name IS NULL OR NOT (schedule.name ~ '^[A-Za-z_][A-Za-z0-9_.-]*$' AND pg_catalog.length(schedule.name) <= 128) THEN
        RAISE EXCEPTION 'invalid schedule name %', coalesce(pg_catalog.quote_literal(schedule.name), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument',
                  HINT = 'A schedule name is a letter or _ then letters, digits, _ . or -, at most 128 characters.';
    END IF;
    IF schedule.job IS NULL OR schedule.cron IS NULL OR schedule.priority IS NULL THEN
        RAISE EXCEPTION 'schedule needs a job, a cron schedule and a priority'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    IF pg_catalog.length(schedule.cron) > 100 OR schedule.cron !~ '^[0-9A-Za-z*/,$@ -]+$' THEN
        RAISE EXCEPTION 'invalid cron schedule %', pg_catalog.quote_literal(pg_catalog.left(schedule.cron, 100))
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument',
                  HINT = 'pg_cron''s syntax: e.g. ''0 3 * * *'' (03:00 every day) or ''*/5 * * * *''.';
    END IF;
    PERFORM jobledger_internal.require_pg_cron();
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles AS r WHERE r.rolname = owner_role AND r.rolcanlogin) THEN
        RAISE EXCEPTION 'pg_cron runs a schedule''s ticks as its owner, and role % cannot log in', owner_role
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument',
                  HINT = 'Make the schedule as a role with LOGIN that pg_cron may connect as (pg_hba.conf).';
    END IF;
    -- A submit now, undone: the caller must be able to submit the job with
    -- these parameters (evaluated for the current tick), else no schedule.
    BEGIN
        PERFORM jobledger.submit_job(schedule.job,
                                     jobledger_internal.tick_params(schedule.params,
                                         jobledger_internal.tick_time(schedule.cron, pg_catalog.now())),
                                     priority => schedule.priority);
        RAISE EXCEPTION USING ERRCODE = 'JLDRY';
    EXCEPTION WHEN SQLSTATE 'JLDRY' THEN
        NULL;
    END;
    INSERT INTO jobledger.schedule AS s (owner, name, job, cron, params, priority)
    VALUES (owner_role, schedule.name, schedule.job, schedule.cron, schedule.params, schedule.priority)
    ON CONFLICT ON CONSTRAINT schedule_pkey DO UPDATE
       SET job = EXCLUDED.job, cron = EXCLUDED.cron, params = EXCLUDED.params, priority = EXCLUDED.priority,
           updated_at = pg_catalog.now();
    -- pg_cron checks the schedule text itself; its job runs the fixed call
    -- as the owner, in this database (an existing job of that name and
    -- role is updated).
    BEGIN
        cron_id := cron.schedule_in_database(
            jobledger_internal.cron_job_name(schedule.name),
            schedule.cron,
            pg_catalog.format('SELECT jobledger_internal.tick(%L)', schedule.name),
            pg_catalog.current_database(),
            owner_role,
            true);
    EXCEPTION WHEN invalid_parameter_value THEN
        RAISE EXCEPTION 'invalid cron schedule %: %', pg_catalog.quote_literal(schedule.cron), SQLERRM
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument',
                  HINT = 'pg_cron''s syntax: e.g. ''0 3 * * *'' (03:00 every day) or ''*/5 * * * *''.';
    END;
    RETURN cron_id;
END
$$;
COMMENT ON FUNCTION jobledger.schedule(text, text, text, jsonb, integer) IS
    'Makes (or changes) the caller''s schedule name: pg_cron submits job with params, as the caller, on every tick of cron (pg_cron''s syntax); {{tick_date - 1}}-style values are computed per tick; returns pg_cron''s job id. Needs pg_cron (feature_not_available).';
GRANT EXECUTE ON FUNCTION jobledger.schedule(text, text, text, jsonb, integer) TO PUBLIC;

CREATE OR REPLACE FUNCTION jobledger.unschedule(name text)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    owner_role name := jobledger_internal.calling_role();
    cron_id bigint;
    removed integer;
BEGIN
    DELETE FROM jobledger.schedule AS s WHERE s.owner = owner_role AND s.name = unschedule.name;
    GET DIAGNOSTICS removed = ROW_COUNT;
    IF jobledger_internal.pg_cron_installed() THEN
        FOR cron_id IN SELECT j.jobid FROM cron.job AS j
                        WHERE j.jobname = jobledger_internal.cron_job_name(unschedule.name)
                          AND j.username = owner_role
        LOOP
            PERFORM cron.unschedule(cron_id);
            removed := removed + 1;
        END LOOP;
    END IF;
    RETURN removed > 0;
END
$$;
COMMENT ON FUNCTION jobledger.unschedule(text) IS
    'Removes the caller''s schedule name and its pg_cron job; returns whether there was one. Runs already submitted stay.';
GRANT EXECUTE ON FUNCTION jobledger.unschedule(text) TO PUBLIC;

-- What pg_cron knows of the schedules the caller may see: cron.job and
-- cron.job_run_details are pg_cron's, readable by their own role only
-- (and schema cron is not usable by ordinary roles).  Empty without pg_cron.
CREATE OR REPLACE FUNCTION jobledger_internal.schedule_cron_state()
RETURNS TABLE (owner name, name text, cron_job bigint, active boolean, last_tick_at timestamptz,
               last_tick_status text, last_tick_message text)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
BEGIN
    IF NOT jobledger_internal.pg_cron_installed() THEN
        RETURN;
    END IF;
    RETURN QUERY
    SELECT s.owner, s.name, j.jobid, j.active, d.start_time, d.status, d.return_message
      FROM jobledger.schedule AS s
      JOIN cron.job AS j ON j.jobname = jobledger_internal.cron_job_name(s.name) AND j.username = s.owner
      LEFT JOIN LATERAL (SELECT r.start_time, r.status, r.return_message
                           FROM cron.job_run_details AS r
                          WHERE r.jobid = j.jobid
                          ORDER BY r.runid DESC LIMIT 1) AS d ON true
     WHERE pg_catalog.pg_has_role(jobledger_internal.calling_role(), 'pg_read_all_data', 'MEMBER')
        OR coalesce(pg_catalog.pg_has_role(jobledger_internal.calling_role(),
                                           pg_catalog.to_regrole(pg_catalog.quote_ident(s.owner)), 'MEMBER'), false);
END
$$;
COMMENT ON FUNCTION jobledger_internal.schedule_cron_state() IS
    'Internal: pg_cron''s job and last tick of each schedule the calling role may see (for jobledger.schedules).';
REVOKE ALL ON FUNCTION jobledger_internal.schedule_cron_state() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION jobledger_internal.schedule_cron_state() TO PUBLIC;

-- plpgsql, so that the view can be defined before the PL/Python half
-- (plpython/30_schedules.sql) exists.
CREATE OR REPLACE FUNCTION jobledger_internal.next_tick(cron text, after timestamptz, time_zone text)
RETURNS timestamptz
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
BEGIN
    RETURN (jobledger_internal.outcome_value(jobledger_internal.next_tick_py(
                next_tick.cron, pg_catalog.to_char(next_tick.after AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'),
                next_tick.time_zone)) OPERATOR(pg_catalog.#>>) '{}')::timestamptz;
END
$$;
COMMENT ON FUNCTION jobledger_internal.next_tick(text, timestamptz, text) IS
    'Internal: the first tick of pg_cron schedule text cron after after, reading it in time_zone; NULL if it never ticks or is not read (python/jobledger/server/cron.py).';
REVOKE ALL ON FUNCTION jobledger_internal.next_tick(text, timestamptz, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION jobledger_internal.next_tick(text, timestamptz, text) TO PUBLIC;

CREATE OR REPLACE VIEW jobledger.schedules WITH (security_invoker = true) AS
SELECT s.name,
       s.owner,
       s.job,
       s.cron,
       s.params,
       s.priority,
       -- false: pg_cron's job is inactive or missing (e.g. after a restore
       -- into another database: docs/schedules.md).
       coalesce(c.active, false) AS active,
       CASE WHEN c.active THEN jobledger_internal.next_tick(s.cron, pg_catalog.now(),
                                                            jobledger_internal.cron_time_zone()) END AS next_tick,
       c.last_tick_at,
       c.last_tick_status,
       c.last_tick_message,
       r.id AS last_run,
       r.status AS last_run_status,
       r.created_at AS last_run_at,
       c.cron_job,
       s.created_at,
       s.updated_at
  FROM jobledger.schedule AS s
  LEFT JOIN jobledger_internal.schedule_cron_state() AS c ON c.owner = s.owner AND c.name = s.name
  LEFT JOIN LATERAL (SELECT r.id, r.status, r.created_at
                       FROM jobledger.run AS r
                      WHERE r.job = s.job AND r.submitted_by = s.owner
                        AND pg_catalog.left(r.idempotency_key, pg_catalog.length(s.name) + 10)
                            = 'schedule ' || s.name || ' '
                      ORDER BY r.created_at DESC LIMIT 1) AS r ON true;
COMMENT ON VIEW jobledger.schedules IS
    'Schedules the querying role may see: the next tick, pg_cron''s last tick (when, status, message) and the last run a tick submitted with its status.';
GRANT SELECT ON jobledger.schedules TO PUBLIC;

-- Backfill: one run per value from first to last, each with the
-- idempotency key 'backfill <param>=<value>', so a repeated backfill
-- returns the same runs.  The values' kind is the job's declaration of the
-- parameter (date, timestamptz, integer, bigint, numeric), else read off
-- first: an integer, a date (YYYY-MM-DD) or a timestamp.  One transaction:
-- a refused value submits nothing.
CREATE OR REPLACE FUNCTION jobledger.backfill(
    job text,
    param text,
    first text,
    last text,
    step text DEFAULT NULL,
    params jsonb DEFAULT '{}',
    priority integer DEFAULT 0
)
RETURNS TABLE (value jsonb, run uuid)
LANGUAGE plpgsql
SET search_path = pg_catalog, jobledger, pg_temp
AS $$
DECLARE
    kind text;
    declared text;
    values_ jsonb[];
    v jsonb;
    limit_ constant integer := 10000;
BEGIN
    IF backfill.job IS NULL OR backfill.param IS NULL OR backfill.first IS NULL OR backfill.last IS NULL
       OR backfill.params IS NULL OR pg_catalog.jsonb_typeof(backfill.params) <> 'object' THEN
        RAISE EXCEPTION 'backfill needs a job, a parameter, a first and a last value, and parameters as a JSON object'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    IF backfill.params ? backfill.param THEN
        RAISE EXCEPTION 'parameter "%" is the one backfilled: leave it out of params', backfill.param
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    SELECT ver.params -> backfill.param ->> 'type' INTO declared
      FROM jobledger.job AS j JOIN jobledger.job_version AS ver ON ver.job = j.name AND ver.version = j.current_version
     WHERE j.name = backfill.job;
    kind := CASE
        WHEN declared IN ('date', 'timestamptz') THEN declared
        WHEN declared IN ('integer', 'bigint', 'numeric') THEN 'integer'
        WHEN declared IS NOT NULL THEN NULL
        WHEN backfill.first ~ '^\s*-?[0-9]+\s*$' THEN 'integer'
        WHEN backfill.first ~ '^\s*[0-9]{4}-[0-9]{2}-[0-9]{2}\s*$' THEN 'date'
        ELSE 'timestamptz' END;
    IF kind IS NULL THEN
        RAISE EXCEPTION 'parameter "%" of job "%" is %: a backfill steps through dates, timestamps or integers',
                        backfill.param, backfill.job, declared
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    BEGIN
        IF kind = 'integer' THEN
            SELECT pg_catalog.array_agg(pg_catalog.to_jsonb(t.g) ORDER BY t.g) INTO values_
              FROM (SELECT pg_catalog.generate_series(backfill.first::bigint, backfill.last::bigint,
                                                      coalesce(backfill.step, '1')::bigint) AS g
                     WHERE coalesce(backfill.step, '1')::bigint > 0 LIMIT limit_ + 1) AS t;
        ELSIF kind = 'date' THEN
            SELECT pg_catalog.array_agg(pg_catalog.to_jsonb(t.g::date) ORDER BY t.g) INTO values_
              FROM (SELECT pg_catalog.generate_series(backfill.first::date::timestamp, backfill.last::date::timestamp,
                                                      coalesce(backfill.step, '1 day')::interval) AS g
                     WHERE coalesce(backfill.step, '1 day')::interval > '0'::interval LIMIT limit_ + 1) AS t;
        ELSE
            SELECT pg_catalog.array_agg(pg_catalog.to_jsonb(t.g) ORDER BY t.g) INTO values_
              FROM (SELECT pg_catalog.generate_series(backfill.first::timestamptz, backfill.last::timestamptz,
                                                      coalesce(backfill.step, '1 day')::interval) AS g
                     WHERE coalesce(backfill.step, '1 day')::interval > '0'::interval LIMIT limit_ + 1) AS t;
        END IF;
    EXCEPTION WHEN data_exception OR program_limit_exceeded THEN
        RAISE EXCEPTION 'cannot step from % to % by %: %', backfill.first, backfill.last,
                        coalesce(backfill.step, 'the default step'), SQLERRM
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument',
                  HINT = 'Dates and timestamps step by an interval (''1 day'', ''1 month''), integers by an integer.';
    END;
    IF values_ IS NULL THEN
        RAISE EXCEPTION 'nothing to backfill from % to % by %', backfill.first, backfill.last,
                        coalesce(backfill.step, 'the default step')
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument',
                  HINT = 'first comes before last, and the step is positive.';
    END IF;
    IF pg_catalog.cardinality(values_) > limit_ THEN
        RAISE EXCEPTION 'a backfill submits at most % runs, and this one would submit more', limit_
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'category: invalid_argument';
    END IF;
    FOREACH v IN ARRAY values_ LOOP
        value := v;
        run := jobledger.submit_job(backfill.job,
                                    backfill.params OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(backfill.param, v),
                                    idempotency_key => 'backfill ' || backfill.param || '=' || (v OPERATOR(pg_catalog.#>>) '{}'),
                                    priority => backfill.priority);
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION jobledger.backfill(text, text, text, text, text, jsonb, integer) IS
    'Submits job once per value of param from first to last (inclusive) by step (dates and timestamps: an interval, default 1 day; integers: default 1), with params for the others; each run''s idempotency key is ''backfill <param>=<value>'', so a repeated backfill returns the same runs. At most 10,000 values.';
GRANT EXECUTE ON FUNCTION jobledger.backfill(text, text, text, text, text, jsonb, integer) TO PUBLIC;
