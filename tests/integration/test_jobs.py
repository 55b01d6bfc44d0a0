"""define_job / submit_job / grants through SQL: effects and error categories."""

from __future__ import annotations

import datetime
import json

import psycopg
import pytest

import dbtools

DAY_QUERY = ("SELECT CAST({day} AS date) AS day, count(*) AS n FROM public.events"
             " WHERE at >= {day} AND kind = {kind}")
DAY_PARAMS = json.dumps({"day": {"type": "date"}, "kind": {"type": "text", "default": "click"}})


@pytest.fixture
def tables(db: psycopg.Connection) -> psycopg.Connection:
    db.execute("CREATE TABLE public.events (id bigint, at timestamptz, kind text)")
    db.execute("CREATE TABLE public.daily (day date NOT NULL, n bigint, note text)")
    db.execute("CREATE TABLE public.keyed (day date PRIMARY KEY, n bigint)")
    return db


def define(db, name="daily_rollup", query=DAY_QUERY, destination="daily", **kw) -> int:
    kw.setdefault("params", DAY_PARAMS)
    args = ", ".join(f"{k} => %({k})s" for k in kw)
    return db.execute(f"SELECT jobledger.define_job(%(name)s, %(query)s, %(destination)s{', ' if args else ''}{args}) AS v",
                      {"name": name, "query": query, "destination": destination, **kw}).fetchone()["v"]


def submit(db, job="daily_rollup", params="{}", **kw):
    args = "".join(f", {k} => %({k})s" for k in kw)
    return db.execute(f"SELECT jobledger.submit_job(%(job)s, %(params)s{args}) AS id",
                      {"job": job, "params": params, **kw}).fetchone()["id"]


def refused(db, category: str, call, *args, **kw) -> psycopg.Error:
    runs_before = db.execute("SELECT count(*) AS n FROM jobledger.run").fetchone()["n"]
    versions_before = db.execute("SELECT count(*) AS n FROM jobledger.job_version").fetchone()["n"]
    with pytest.raises(psycopg.Error) as caught:
        call(db, *args, **kw)
    assert dbtools.category(caught.value) == category, caught.value
    # A PostgreSQL error as PostgreSQL writes them: no Python in it.
    assert "plpy" not in caught.value.diag.message_primary
    assert "Traceback" not in (caught.value.diag.context or "")
    # A refused call leaves nothing behind.
    assert db.execute("SELECT count(*) AS n FROM jobledger.run").fetchone()["n"] == runs_before
    assert db.execute("SELECT count(*) AS n FROM jobledger.job_version").fetchone()["n"] == versions_before
    return caught.value


def test_define_creates_versions_only_when_something_changed(tables) -> None:
    assert define(tables) == 1
    assert define(tables) == 1
    assert define(tables, max_attempts=5) == 2
    assert define(tables, max_attempts=5, description="rolls up a day") == 2
    row = tables.execute("SELECT owner, current_version, description FROM jobledger.job").fetchone()
    assert row == {"owner": "postgres", "current_version": 2, "description": "rolls up a day"}
    assert tables.execute("SELECT destination FROM jobledger.job_version WHERE version = 2"
                          ).fetchone() == {"destination": "public.daily"}


def test_submit_records_a_pending_run_with_typed_literals(tables) -> None:
    define(tables)
    run = submit(tables, params='{"day": "2026-11-01"}', priority=5)
    row = dbtools.run_row(tables, run)
    assert row["status"] == "pending" and row["priority"] == 5 and row["max_attempts"] == 3
    assert row["parameters"] == {"day": "2026-11-01", "kind": "click"}
    assert "CAST('2026-11-01' AS DATE)" in row["rendered_sql"] and "{" not in row["rendered_sql"]
    assert row["submitted_by"] == "postgres" and row["job_version"] == 1


def test_injection_lands_verbatim_as_data(tables) -> None:
    define(tables)
    evil = "x'; DROP TABLE public.events; --"
    run = submit(tables, params=json.dumps({"day": "2026-11-01", "kind": evil}))
    sql = dbtools.run_row(tables, run)["rendered_sql"]
    tables.execute("INSERT INTO public.events VALUES (1, '2026-11-02', %s)", (evil,))
    assert tables.execute(sql).fetchone() == {"day": datetime.date(2026, 11, 1), "n": 1}
    assert tables.execute("SELECT to_regclass('public.events') IS NOT NULL AS ok").fetchone() == {"ok": True}


def test_idempotency_key_returns_the_existing_run(tables) -> None:
    define(tables)
    first = submit(tables, params='{"day": "2026-11-01"}', idempotency_key="k")
    again = submit(tables, params='{"day": "2026-11-01"}', idempotency_key="k")
    assert first == again
    with pytest.raises(psycopg.Error) as caught:  # the same key for other parameters
        submit(tables, params='{"day": "2026-11-02"}', idempotency_key="k")
    assert dbtools.category(caught.value) == "idempotency_conflict"
    assert tables.execute("SELECT count(*) AS n FROM jobledger.run").fetchone() == {"n": 1}


def test_submit_notifies_runners(tables, connect) -> None:
    define(tables)
    listener = connect()
    listener.execute("LISTEN jobledger_runs")
    submit(tables, params='{"day": "2026-11-01"}')
    notes = list(listener.notifies(timeout=5, stop_after=1))
    # No job name: any role may LISTEN, and which jobs exist is not everyone's to know.
    assert [n.payload for n in notes] == [""]


@pytest.mark.parametrize("params, category", [
    ("{}", "missing_parameters"),
    ('{"day": "2026-11-01", "extra": 1}', "unknown_parameters"),
    ('{"day": "not a date"}', "invalid_parameter"),
    ('{"day": {"a": 1}}', "invalid_parameter"),
])
def test_bad_parameters_are_refused(tables, params, category) -> None:
    define(tables)
    refused(tables, category, submit, params=params)


def test_unknown_job(tables) -> None:
    error = refused(tables, "unknown_job", submit, job="nope")
    assert isinstance(error, psycopg.errors.UndefinedObject)


@pytest.mark.parametrize("query, category", [
    ("SELECT 1 AS day; SELECT 2", "template_not_select"),
    ("DELETE FROM public.daily", "template_not_select"),
    ("SELEC day FROM", "template_parse_error"),
    ("SELECT day FROM public.no_such_table", "template_parse_error"),
])
def test_bad_templates_are_refused(tables, query, category) -> None:
    refused(tables, category, define, query=query, params=None)


def test_destination_missing_and_schema_mismatch(tables) -> None:
    refused(tables, "destination_missing", define, destination="public.nope")
    error = refused(tables, "schema_mismatch", define, query="SELECT 'x'::text AS day, 1.5 AS bogus", params=None)
    assert "bogus" in error.diag.message_detail and "day" in error.diag.message_detail
    # merge needs a primary key
    refused(tables, "schema_mismatch", define, mode="merge")
    assert define(tables, name="keyed", destination="keyed", mode="merge",
                  query="SELECT CAST({day} AS date) AS day, 1::bigint AS n",
                  params=json.dumps({"day": {"type": "date"}})) == 1


def test_submitters_need_a_grant(tables, connect) -> None:
    define(tables)
    tables.execute("CREATE ROLE jl_alice LOGIN")
    try:
        alice = connect(user="jl_alice")
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as caught:
            submit(alice, params='{"day": "2026-11-01"}')
        assert dbtools.category(caught.value) == "permission_denied"
        tables.execute("SELECT jobledger.grant_job('daily_rollup', 'jl_alice')")
        run = submit(alice, params='{"day": "2026-11-01"}')
        assert dbtools.run_row(tables, run)["submitted_by"] == "jl_alice"
        # No DML on the ledger for submitters.
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            alice.execute("UPDATE jobledger.run SET rendered_sql = 'SELECT 1'")
        # Only the owner grants.
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            alice.execute("SELECT jobledger.grant_job('daily_rollup', 'jl_alice')")
        assert tables.execute("SELECT jobledger.revoke_job('daily_rollup', 'jl_alice') AS r").fetchone() == {"r": True}
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            submit(alice, params='{"day": "2026-11-01"}')
    finally:
        tables.execute("DROP OWNED BY jl_alice")
        tables.execute("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE usename = 'jl_alice'")
        tables.execute("DROP ROLE jl_alice")


def test_owner_needs_privileges_on_what_the_query_reads(tables, connect) -> None:
    tables.execute("CREATE ROLE jl_bob LOGIN")
    try:
        tables.execute("GRANT USAGE ON SCHEMA public TO jl_bob")
        tables.execute("GRANT INSERT ON public.daily TO jl_bob")
        bob = connect(user="jl_bob")
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as caught:
            define(bob)
        assert dbtools.category(caught.value) == "permission_denied"
        assert "events" in str(caught.value)
        tables.execute("GRANT SELECT ON public.events TO jl_bob")
        assert define(bob) == 1
    finally:
        tables.execute("DROP OWNED BY jl_bob")
        tables.execute("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE usename = 'jl_bob'")
        tables.execute("DROP ROLE jl_bob")


def test_drop_job(tables) -> None:
    define(tables)
    submit(tables, params='{"day": "2026-11-01"}')
    error = refused(tables, "job_busy", lambda db: db.execute("SELECT jobledger.drop_job('daily_rollup')"))
    assert isinstance(error, psycopg.errors.ObjectInUse)
    tables.execute("UPDATE jobledger.run SET status = 'cancelled', finished_at = now()")
    tables.execute("SELECT jobledger.drop_job('daily_rollup')")
    assert tables.execute("SELECT count(*) AS n FROM jobledger.job").fetchone() == {"n": 0}


@pytest.mark.parametrize("mode, needs", [
    ("append", ["INSERT"]),
    ("overwrite", ["INSERT", "DELETE"]),
    ("merge", ["INSERT", "UPDATE"]),
])
def test_each_mode_needs_its_privileges_on_the_destination(tables, connect, make_role, mode, needs) -> None:
    owner = make_role("owner")
    tables.execute(f"GRANT SELECT ON public.events TO {owner}")
    conn = connect(user=owner)
    query = "SELECT CAST({day} AS date) AS day, count(*) AS n FROM public.events"
    params = json.dumps({"day": {"type": "date"}})
    granted = []
    for privilege in needs:
        error = refused(conn, "permission_denied", define, name=f"{mode}_job", destination="keyed",
                        query=query, params=params, mode=mode)
        assert "keyed" in str(error) and mode in str(error)
        tables.execute(f"GRANT {privilege} ON public.keyed TO {owner}")
        granted.append(privilege)
    assert define(conn, name=f"{mode}_job", destination="keyed", query=query, params=params, mode=mode) == 1
    run = submit(conn, job=f"{mode}_job", params='{"day": "2026-11-01"}')
    assert dbtools.run_row(tables, run)["status"] == "pending"
    # Taking one back refuses the next submit: the destination is checked each time.
    tables.execute(f"REVOKE {granted[-1]} ON public.keyed FROM {owner}")
    refused(conn, "permission_denied", submit, job=f"{mode}_job", params='{"day": "2026-11-02"}')


def test_submit_checks_the_destination_as_it_is_now(tables) -> None:
    define(tables)
    submit(tables, params='{"day": "2026-11-01"}')
    tables.execute("ALTER TABLE public.daily ALTER COLUMN n TYPE integer")
    error = refused(tables, "schema_mismatch", submit, params='{"day": "2026-11-02"}')
    assert "bigint" in error.diag.message_detail and "integer" in error.diag.message_detail
    tables.execute("ALTER TABLE public.daily ALTER COLUMN n TYPE numeric")  # a widening
    submit(tables, params='{"day": "2026-11-03"}')
    tables.execute("ALTER TABLE public.daily ALTER COLUMN note SET NOT NULL")  # only pg_attribute changes
    error = refused(tables, "schema_mismatch", submit, params='{"day": "2026-11-04"}')
    assert "note" in error.diag.message_detail
    tables.execute("ALTER TABLE public.daily ALTER COLUMN note SET DEFAULT ''")
    submit(tables, params='{"day": "2026-11-04"}')
    tables.execute("ALTER TABLE public.daily ADD COLUMN required text NOT NULL")
    error = refused(tables, "schema_mismatch", submit, params='{"day": "2026-11-04"}')
    assert "required" in error.diag.message_detail
    tables.execute("DROP TABLE public.daily")
    refused(tables, "destination_missing", submit, params='{"day": "2026-11-05"}')


def test_a_job_defined_again_after_drop_is_rendered_from_its_new_text(tables) -> None:
    define(tables)
    first = submit(tables, params='{"day": "2026-11-01"}')
    tables.execute("UPDATE jobledger.run SET status = 'cancelled', finished_at = now()")
    tables.execute("SELECT jobledger.drop_job('daily_rollup')")
    # Version 1 again, other text: this session must not reuse what it parsed before.
    assert define(tables, query="SELECT CAST({day} AS date) AS day, 7::bigint AS n", params=DAY_PARAMS.replace(
        ', "kind": {"type": "text", "default": "click"}', "")) == 1
    second = submit(tables, params='{"day": "2026-11-01"}')
    assert first != second
    assert "7" in dbtools.run_row(tables, second)["rendered_sql"]


def test_quoted_destination_names(tables) -> None:
    tables.execute('CREATE SCHEMA "Reports"')
    tables.execute('CREATE TABLE "Reports"."Daily.Totals" (day date, n bigint)')
    assert define(tables, destination='"Reports"."Daily.Totals"') == 1
    assert tables.execute("SELECT destination FROM jobledger.job_version").fetchone() == {
        "destination": '"Reports"."Daily.Totals"'}
    submit(tables, params='{"day": "2026-11-01"}')
    refused(tables, "invalid_argument", define, name="other", destination="a.b.c")
    refused(tables, "invalid_argument", define, name="other", destination='"unterminated')
    refused(tables, "destination_missing", define, name="other", destination="Reports.Daily")


def test_merge_submit_notices_a_dropped_primary_key(tables) -> None:
    assert define(tables, name="keyed", destination="keyed", mode="merge",
                  query="SELECT CAST({day} AS date) AS day, 1::bigint AS n",
                  params=json.dumps({"day": {"type": "date"}})) == 1
    submit(tables, job="keyed", params='{"day": "2026-11-01"}')
    tables.execute("ALTER TABLE public.keyed DROP CONSTRAINT keyed_pkey")  # pg_index only
    error = refused(tables, "schema_mismatch", submit, job="keyed", params='{"day": "2026-11-02"}')
    assert "primary key" in str(error)
