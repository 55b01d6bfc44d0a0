-- 0.6.0: run metrics (docs/runner.md, "Run metrics").  The runner records
-- per-run figures in jobledger.run.metrics, in the transaction that
-- completes the run, through complete_run and complete_attached_run, which
-- gain a last parameter, metrics jsonb DEFAULT NULL.
--
-- A new parameter is a new signature: the old forms are dropped and the new
-- ones created here, and every EXECUTE granted on an old form (a DBA's
-- GRANT to the runner's role or to jobledger_owners) is given again on the
-- new one.  Whoever could call the table destinations' form,
-- complete_run(uuid, integer, text, bigint), gets the new six-argument form
-- too: the runner of 0.6.0 completes table runs through it, to record their
-- metrics.  The bodies here are placeholders; 60_runner.sql and
-- 63_owner_connections.sql (CREATE OR REPLACE) define them right after,
-- which keeps the privileges.  A fresh install has none of these yet: its
-- functions are defined after the migrations.

COMMENT ON COLUMN jobledger.run.metrics IS
    'Figures the runner measured for the attempt that succeeded (docs/runner.md, "Run metrics"): rows, statement_ms (table destinations), first_row_ms, query_ms, write_ms, bytes, arrow_bytes (result, parquet:, delta:); milliseconds from a monotonic clock. NULL: none recorded (runs not completed by a runner of 0.6.0 or later).';

DO $metrics$
DECLARE
    old_run regprocedure := pg_catalog.to_regprocedure('jobledger_internal.complete_run(uuid, integer, text, bigint, text)');
    table_run regprocedure := pg_catalog.to_regprocedure('jobledger_internal.complete_run(uuid, integer, text, bigint)');
    old_attached regprocedure := pg_catalog.to_regprocedure(
        'jobledger_internal.complete_attached_run(uuid, integer, text, bigint, text)');
    grants jsonb;
    g record;
BEGIN
    IF old_run IS NULL THEN
        RETURN;  -- a fresh install
    END IF;

    -- Who may execute the old forms (the owner needs no grant).
    SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
               'fn', CASE WHEN p.oid = old_attached THEN 'attached' ELSE 'run' END,
               'grantee', a.grantee, 'grantable', a.is_grantable)), '[]')
      INTO grants
      FROM pg_catalog.pg_proc AS p
     CROSS JOIN LATERAL pg_catalog.aclexplode(p.proacl) AS a
     WHERE p.oid IN (old_run, table_run, old_attached)
       AND a.privilege_type = 'EXECUTE'
       AND a.grantee <> p.proowner;

    DROP FUNCTION jobledger_internal.complete_run(uuid, integer, text, bigint, text);
    CREATE FUNCTION jobledger_internal.complete_run(
        run uuid, attempt integer, worker text, rows_written bigint, snapshot_id text, metrics jsonb DEFAULT NULL
    )
    RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, jobledger, pg_temp
    AS 'BEGIN RAISE EXCEPTION ''not yet defined''; END';
    REVOKE ALL ON FUNCTION jobledger_internal.complete_run(uuid, integer, text, bigint, text, jsonb) FROM PUBLIC;

    IF old_attached IS NOT NULL THEN
        DROP FUNCTION jobledger_internal.complete_attached_run(uuid, integer, text, bigint, text);
    END IF;
    CREATE FUNCTION jobledger_internal.complete_attached_run(
        run uuid, attempt integer, worker text, rows_written bigint, snapshot_id text DEFAULT NULL,
        metrics jsonb DEFAULT NULL
    )
    RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, jobledger, pg_temp
    AS 'BEGIN RAISE EXCEPTION ''not yet defined''; END';
    REVOKE ALL ON FUNCTION jobledger_internal.complete_attached_run(uuid, integer, text, bigint, text, jsonb)
        FROM PUBLIC;

    -- The grants again, on the new forms (PUBLIC is grantee 0).
    FOR g IN SELECT x.fn, x.grantee, pg_catalog.bool_or(x.grantable) AS grantable
               FROM pg_catalog.jsonb_to_recordset(grants) AS x (fn text, grantee oid, grantable boolean)
              GROUP BY x.fn, x.grantee ORDER BY x.fn, x.grantee LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO %s%s',
            CASE g.fn WHEN 'attached'
                 THEN 'jobledger_internal.complete_attached_run(uuid, integer, text, bigint, text, jsonb)'
                 ELSE 'jobledger_internal.complete_run(uuid, integer, text, bigint, text, jsonb)' END,
            CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE g.grantee::regrole::text END,
            CASE WHEN g.grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;
END
$metrics$;
