-- Versions recorded by an older jobledger are checked under today's rules,
-- each with its owner's rights (SET LOCAL ROLE: nothing from a template
-- runs with more), and the outcome is kept in job_version_check.  Versions
-- that would now be refused are listed in a WARNING and in the view
-- jobledger.refused_versions; they stay in the ledger, and their owners
-- define the jobs again.  Only current versions: no other is submitted.
-- A fresh install has no versions; an upgrade checks each once.
DO $check_versions$
DECLARE
    v record;
    outcome jsonb;
    refused text := '';
BEGIN
    FOR v IN
        SELECT jv.job, jv.version, jv.query, jv.params, j.owner
          FROM jobledger.job AS j
          JOIN jobledger.job_version AS jv ON jv.job = j.name AND jv.version = j.current_version
         WHERE NOT EXISTS (SELECT 1 FROM jobledger.job_version_check AS c
                            WHERE c.job = jv.job AND c.version = jv.version)
         ORDER BY jv.job
    LOOP
        BEGIN
            IF pg_catalog.to_regrole(pg_catalog.quote_ident(v.owner)) IS NULL THEN
                outcome := pg_catalog.jsonb_build_object('error', pg_catalog.jsonb_build_object(
                    'message', pg_catalog.format('its owner %s no longer exists', v.owner)));
            ELSE
                EXECUTE pg_catalog.format('SET LOCAL ROLE %I', v.owner);
                outcome := jobledger_internal.analyse_version_py(v.job, v.query, v.params::pg_catalog.text);
                RESET ROLE;
            END IF;
        EXCEPTION WHEN OTHERS THEN
            outcome := pg_catalog.jsonb_build_object('error', pg_catalog.jsonb_build_object('message', SQLERRM));
        END;
        INSERT INTO jobledger.job_version_check (job, version, placeholders, query_end, shapes, dependencies, problem)
        VALUES (v.job, v.version, outcome OPERATOR(pg_catalog.#>) '{value,placeholders}',
                (outcome OPERATOR(pg_catalog.#>>) '{value,query_end}')::pg_catalog.int4,
                outcome OPERATOR(pg_catalog.#>) '{value,shapes}',
                outcome OPERATOR(pg_catalog.#>) '{value,dependencies}',
                outcome OPERATOR(pg_catalog.#>>) '{error,message}');
        IF outcome OPERATOR(pg_catalog.?) 'error' THEN
            refused := refused || pg_catalog.format(E'\n  %s version %s: %s', v.job, v.version,
                                                     outcome OPERATOR(pg_catalog.#>>) '{error,message}');
        END IF;
    END LOOP;
    IF refused <> '' THEN
        RAISE WARNING 'jobledger: these job versions are refused under the new template rules: %', refused
            USING HINT = 'Their owners define the jobs again; SELECT * FROM jobledger.refused_versions lists them.';
    END IF;
END
$check_versions$;
