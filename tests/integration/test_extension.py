"""Installing, inspecting and dropping the extension in a real database."""

from __future__ import annotations

import pathlib
import subprocess

import psycopg
import pytest

import assemble
import dbtools

VERSION = assemble.current_version()

ROOT = pathlib.Path(__file__).resolve().parents[2]

LEDGER_OBJECTS = {
    "type jobledger.run_status",
    "table jobledger.migration",
    "table jobledger.job",
    "table jobledger.job_version",
    "table jobledger.run",
    "table jobledger.run_attempt",
    "view jobledger.runs",
    "view jobledger.job_stats",
    "function jobledger.reconcile_orphaned(text,interval)",
    "function jobledger.prune(interval,text)",
    "function jobledger.version()",
    "function jobledger_internal.job_version_immutable()",
    "table jobledger.job_grant",
    "function jobledger.define_job(text,text,text,text,jsonb,interval,integer,text)",
    "function jobledger.submit_job(text,jsonb,text,integer,timestamp with time zone,integer)",
}
PUBLIC_FUNCTIONS = {
    "jobledger.version()",
    "jobledger.define_job(text,text,text,text,jsonb,interval,integer,text)",
    "jobledger.submit_job(text,jsonb,text,integer,timestamp with time zone,integer)",
    "jobledger.grant_job(text,regrole)",
    "jobledger.revoke_job(text,regrole)",
    "jobledger.drop_job(text)",
    "jobledger.cancel_run(uuid)",
    # 0.4.0: outputs and stored results (row-level security applies).
    "jobledger.outputs(uuid)",
    "jobledger.latest_output(text)",
    "jobledger.run_output(uuid,text)",
    "jobledger.result_json(uuid)",
    "jobledger.result_arrow(uuid)",
    "jobledger.retry_run(uuid)",
    # 0.5.0: define_job runs with its caller's rights, so what it calls must
    # be executable by its callers.  Each is safe to call directly:
    # record_job_version checks the owner and the template itself;
    # define_job_py and analyse_version_py work with the caller's own rights;
    # outcome_value only raises the error it is given; calling_role only
    # tells a role its own name.
    "jobledger_internal.define_job_py(text,text,text,text,jsonb,interval,integer,text)",
    "jobledger_internal.record_job_version(text,text,text,text,jsonb,interval,integer,text,jsonb)",
    "jobledger_internal.analyse_version_py(text,text,text)",
    "jobledger_internal.outcome_value(jsonb)",
    "jobledger_internal.calling_role()",
    "jobledger_internal.denied_dependencies(name,jsonb)",
    "jobledger_internal.run_application_name(uuid)",
    # 0.5.0: schedules and backfills (docs/schedules.md).  schedule and
    # unschedule act on the caller's own schedule only; tick is what pg_cron
    # runs as a schedule's owner (it finds only the caller's schedules and
    # submits as the caller), with its pure helpers; the view reads pg_cron's
    # state through schedule_cron_state (the caller's schedules only) and
    # next_tick (a computation).
    "jobledger.schedule(text,text,text,jsonb,integer)",
    "jobledger.unschedule(text)",
    "jobledger.backfill(text,text,text,text,text,jsonb,integer)",
    "jobledger_internal.tick(text,timestamp with time zone)",
    "jobledger_internal.tick_time(text,timestamp with time zone)",
    "jobledger_internal.tick_params(jsonb,timestamp with time zone)",
    "jobledger_internal.tick_key(text,timestamp with time zone)",
    "jobledger_internal.cron_time_zone()",
    "jobledger_internal.schedule_cron_state()",
    "jobledger_internal.next_tick(text,timestamp with time zone,text)",
    "jobledger_internal.next_tick_py(text,text,text)",
    # 0.6.0: concurrency control and pause; each checks the job's owner
    # itself (owned_job).
    "jobledger.set_max_running(text,integer)",
    "jobledger.pause_job(text)",
    "jobledger.resume_job(text)",
    # 0.6.0: webhooks.  set_job_webhook checks the job's owner; the prefix
    # functions refuse all but superusers.
    "jobledger.set_job_webhook(text,text)",
    "jobledger.allow_webhook_prefix(text)",
    "jobledger.disallow_webhook_prefix(text)",
    # 0.6.0: lake grants (docs/security.md).  The prefix functions refuse all
    # but superusers; lake_write_allowed tells what the readable grants say
    # (define_job asks it as its caller, the runner as its own role).
    "jobledger.allow_lake_prefix(name,text)",
    "jobledger.disallow_lake_prefix(name,text)",
    "jobledger_internal.lake_write_allowed(name,text)",
}


def test_create_extension_cascade_in_a_fresh_database(empty_db: psycopg.Connection) -> None:
    empty_db.execute("CREATE EXTENSION jobledger CASCADE")
    langs = {r["lanname"] for r in empty_db.execute("SELECT lanname FROM pg_language")}
    assert "plpython3u" in langs
    members = set(dbtools.catalog_snapshot(empty_db)["members"])
    assert LEDGER_OBJECTS <= members
    row = empty_db.execute("SELECT extversion, extrelocatable, extnamespace::regnamespace::text AS schema"
                           " FROM pg_extension WHERE extname = 'jobledger'").fetchone()
    assert row == {"extversion": VERSION, "extrelocatable": False, "schema": "jobledger"}


def test_every_object_has_a_comment(db: psycopg.Connection) -> None:
    comments = dbtools.catalog_snapshot(db)["comments"]
    missing = sorted(name for name, comment in comments.items() if not comment)
    assert missing == []


def test_every_function_pins_search_path(db: psycopg.Connection) -> None:
    rows = db.execute(
        "SELECT oid::regprocedure::text AS fn, proconfig FROM pg_proc"
        " WHERE pronamespace IN ('jobledger'::regnamespace, 'jobledger_internal'::regnamespace)"
    ).fetchall()
    assert rows
    for row in rows:
        if row["fn"] in INLINED:
            continue
        assert row["proconfig"][0] == "search_path=pg_catalog, jobledger, pg_temp", row["fn"]
        # Beyond the path, only what template analysis needs: libpg_query's lexing.
        assert row["proconfig"][1:] in ([], ["standard_conforming_strings=on"]), row["fn"]


# Internal SQL functions left without SET search_path so that PostgreSQL
# inlines them into their (search_path-pinned) callers.
INLINED = {
    "jobledger_internal.calling_role()": "SELECT jobledger_internal.calling_role()",
    "jobledger_internal.denied_dependencies(name,jsonb)": "SELECT * FROM jobledger_internal.denied_dependencies('x', '[]')",
    "jobledger_internal.destination_kind(text)":
        "SELECT jobledger_internal.destination_kind(c.relname::text) FROM pg_catalog.pg_class AS c",
}


def test_inlined_functions_are_internal_and_inlined(db: psycopg.Connection) -> None:
    for fn in INLINED:
        row = db.execute(
            "SELECT l.lanname, p.prosecdef, p.provolatile, p.proconfig,"
            "       has_function_privilege('public', p.oid, 'EXECUTE') AS public"
            "  FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang WHERE p.oid = %s::regprocedure",
            (fn,),
        ).fetchone()
        assert row == {"lanname": "sql", "prosecdef": False, "provolatile": "s", "proconfig": None,
                       "public": fn in PUBLIC_FUNCTIONS}, fn
        plan = db.execute("EXPLAIN (VERBOSE, FORMAT JSON) " + INLINED[fn]).fetchone()["QUERY PLAN"]
        assert fn.split("(")[0].split(".")[-1] not in str(plan), plan  # replaced by its body


def test_only_public_api_is_executable_by_everyone(db: psycopg.Connection) -> None:
    rows = db.execute(
        "SELECT oid::regprocedure::text AS fn, has_function_privilege('public', oid, 'EXECUTE') AS public"
        " FROM pg_proc WHERE pronamespace IN ('jobledger'::regnamespace, 'jobledger_internal'::regnamespace)"
    ).fetchall()
    assert {r["fn"] for r in rows if r["public"]} == PUBLIC_FUNCTIONS


def test_ledger_is_read_only_to_everyone_else_and_row_secured(db: psycopg.Connection) -> None:
    db.execute("CREATE ROLE jl_nobody LOGIN")
    try:
        rows = db.execute(
            "SELECT c.oid::regclass::text AS rel, c.relkind, c.relrowsecurity, c.reloptions,"
            "       has_table_privilege('jl_nobody', c.oid, 'INSERT,UPDATE,DELETE,TRUNCATE,REFERENCES,TRIGGER')"
            "           AS writes,"
            "       has_table_privilege('jl_nobody', c.oid, 'SELECT') AS reads"
            "  FROM pg_class c WHERE c.relnamespace = 'jobledger'::regnamespace AND c.relkind IN ('r', 'v')"
        ).fetchall()
        assert rows and not any(r["writes"] for r in rows)
        readable = {r["rel"] for r in rows if r["reads"]}
        assert readable == {
            "jobledger.job", "jobledger.job_version", "jobledger.job_grant", "jobledger.run",
            "jobledger.run_attempt", "jobledger.runs", "jobledger.job_stats", "jobledger.output",
            "jobledger.worker", "jobledger.active_runs", "jobledger.workers",
            "jobledger.job_version_check", "jobledger.refused_versions",
            "jobledger.schedule", "jobledger.schedules", "jobledger.lake_dataset",
            "jobledger.job_webhook", "jobledger.webhook_prefix", "jobledger.webhook_delivery",
            "jobledger.lake_grant", "jobledger.lake_grants",
        }
        # Runner processes (names, hosts, pids) are not secret: jobledger.worker
        # is readable by everyone without row-level security.
        not_row_secured = {"jobledger.worker"}
        for r in rows:
            if r["rel"] in readable and r["relkind"] == "r" and r["rel"] not in not_row_secured:
                assert r["relrowsecurity"], r["rel"]
            if r["rel"] in readable and r["relkind"] == "v":
                assert "security_invoker=true" in (r["reloptions"] or []), r["rel"]
    finally:
        db.execute("DROP ROLE jl_nobody")


def test_drop_extension_leaves_no_object_behind(empty_db: psycopg.Connection) -> None:
    empty_db.execute("CREATE EXTENSION jobledger CASCADE")
    empty_db.execute("SELECT jobledger.version()")
    empty_db.execute("DROP EXTENSION jobledger")
    left = empty_db.execute(
        """SELECT 'class ' || relname AS obj FROM pg_class WHERE relnamespace = 'jobledger'::regnamespace
           UNION ALL SELECT 'function ' || proname FROM pg_proc WHERE pronamespace = 'jobledger'::regnamespace
           UNION ALL SELECT 'type ' || typname FROM pg_type WHERE typnamespace = 'jobledger'::regnamespace
           UNION ALL SELECT 'extension ' || extname FROM pg_extension WHERE extname = 'jobledger'"""
    ).fetchall()
    assert left == []
    # jobledger_internal belongs to the extension and goes with it.
    assert empty_db.execute("SELECT to_regnamespace('jobledger_internal') AS s").fetchone() == {"s": None}
    # Installing again works (the empty schema PostgreSQL made for the
    # control file's `schema` is reused).
    empty_db.execute("CREATE EXTENSION jobledger")
    assert empty_db.execute("SELECT jobledger.version() AS v").fetchone() == {"v": VERSION}


# What \\df jobledger.* shows: the functions users call (internals live in
# jobledger_internal).
API_FUNCTIONS = {
    "jobledger.define_job(text,text,text,text,jsonb,interval,integer,text)",
    "jobledger.submit_job(text,jsonb,text,integer,timestamp with time zone,integer)",
    "jobledger.drop_job(text)",
    "jobledger.grant_job(text,regrole)",
    "jobledger.revoke_job(text,regrole)",
    "jobledger.cancel_run(uuid)",
    "jobledger.retry_run(uuid)",
    "jobledger.reconcile_orphaned(text,interval)",
    "jobledger.prune(interval,text)",
    "jobledger.prune(interval,interval,integer,text)",
    "jobledger.version()",
    "jobledger.outputs(uuid)",
    "jobledger.latest_output(text)",
    "jobledger.run_output(uuid,text)",
    "jobledger.result_json(uuid)",
    "jobledger.result_arrow(uuid)",
    "jobledger.schedule(text,text,text,jsonb,integer)",
    "jobledger.unschedule(text)",
    "jobledger.backfill(text,text,text,text,text,jsonb,integer)",
    "jobledger.set_max_running(text,integer)",
    "jobledger.pause_job(text)",
    "jobledger.resume_job(text)",
    # 0.6.0: webhooks (docs/notifications.md).
    "jobledger.set_job_webhook(text,text)",
    "jobledger.allow_webhook_prefix(text)",
    "jobledger.disallow_webhook_prefix(text)",
    # 0.6.0: lake grants (docs/security.md).
    "jobledger.allow_lake_prefix(name,text)",
    "jobledger.disallow_lake_prefix(name,text)",
}


def test_schema_jobledger_holds_only_the_api(db: psycopg.Connection) -> None:
    info = dbtools.conninfo(db)
    listed = subprocess.run(
        ["psql", "-X", "-At", "-F", "|", "-h", info["host"], "-p", str(info["port"]), "-U", info["user"],
         "-d", info["dbname"], "-c", r"\df jobledger.*"],
        check=True, capture_output=True, text=True,
    ).stdout.splitlines()
    # \df prints schema|name|result|arguments|type, arguments with their names.
    shown = sorted(f"{line.split('|')[0]}.{line.split('|')[1]}" for line in listed)
    assert shown == sorted(fn.split("(")[0] for fn in API_FUNCTIONS)
    assert {r["fn"] for r in db.execute(
        "SELECT oid::regprocedure::text AS fn FROM pg_proc WHERE pronamespace = 'jobledger'::regnamespace"
    )} == API_FUNCTIONS
    internal = db.execute(
        "SELECT p.oid::regprocedure::text AS fn, p.prokind FROM pg_proc p"
        " WHERE p.pronamespace = 'jobledger_internal'::regnamespace").fetchall()
    names = {r["fn"].split("(")[0] for r in internal}
    # The PL/Python halves, the runner-only transitions and the helpers of
    # triggers, views and policies are all there.
    assert {"jobledger_internal.submit_job_py", "jobledger_internal.claim_runs",
            "jobledger_internal.outcome_value", "jobledger_internal.job_version_immutable"} <= names
    # Each is still a member of the extension (\dx+ lists both schemas).
    members = set(dbtools.catalog_snapshot(db)["members"])
    assert {f"function {r['fn']}" for r in internal} <= members


def test_psql_dx_lists_every_ledger_object(db: psycopg.Connection) -> None:
    info = dbtools.conninfo(db)
    out = subprocess.run(
        ["psql", "-X", "-At", "-h", info["host"], "-p", str(info["port"]), "-U", info["user"],
         "-d", info["dbname"], "-c", r"\dx+ jobledger"],
        check=True, capture_output=True, text=True,
    ).stdout
    assert LEDGER_OBJECTS <= set(out.splitlines())


def test_pg_dump_keeps_the_ledger_rows(db: psycopg.Connection) -> None:
    dbtools.make_job(db)
    dbtools.make_run(db)
    info = dbtools.conninfo(db)
    dump = subprocess.run(
        ["pg_dump", "-h", info["host"], "-p", str(info["port"]), "-U", info["user"], "--data-only",
         "-d", info["dbname"]],
        check=True, capture_output=True, text=True,
    ).stdout
    for table in ("job", "job_version", "run"):
        assert f"COPY jobledger.{table} " in dump
    assert "COPY jobledger.migration " not in dump


@pytest.mark.parametrize(("schema", "refusal", "match"), [
    ("jobledger", psycopg.errors.InsufficientPrivilege, "belongs to another role"),
    # jobledger_internal is the extension's own: a schema of that name is never adopted.
    ("jobledger_internal", psycopg.errors.DuplicateSchema, "already exists"),
])
def test_a_schema_someone_else_owns_is_refused(empty_db: psycopg.Connection, schema: str,
                                                refusal: type[psycopg.Error], match: str) -> None:
    empty_db.execute("CREATE ROLE jl_squatter")
    try:
        empty_db.execute(f"CREATE SCHEMA {schema} AUTHORIZATION jl_squatter")
        with pytest.raises(refusal, match=match):
            empty_db.execute("CREATE EXTENSION jobledger CASCADE")
        assert empty_db.execute("SELECT count(*) AS n FROM pg_extension WHERE extname = 'jobledger'"
                                ).fetchone() == {"n": 0}
    finally:
        empty_db.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        empty_db.execute("DROP ROLE jl_squatter")


def test_a_schema_with_objects_in_it_is_refused(empty_db: psycopg.Connection) -> None:
    empty_db.execute("CREATE SCHEMA jobledger")
    empty_db.execute("CREATE FUNCTION jobledger.version() RETURNS text LANGUAGE sql AS $$ SELECT 'mine' $$")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="not empty"):
        empty_db.execute("CREATE EXTENSION jobledger CASCADE")
