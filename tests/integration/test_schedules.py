"""Schedules on pg_cron and backfills (docs/schedules.md), through SQL.

pg_cron keeps its jobs in the one database cron.database_name names: the
tests here run in that database (the cron_db fixture), started over for
each test.
pg_cron 1.4 (Debian 12) ticks at most once a minute: one test waits for a
real tick, the others call the tick function as pg_cron would.
"""

from __future__ import annotations

import json
from typing import Any, Callable

import psycopg
import pytest

import dbtools
import runnertools


@pytest.fixture
def db(cron_db: psycopg.Connection) -> psycopg.Connection:
    """Every test here runs in pg_cron's database (tests/conftest.py)."""
    return cron_db


@pytest.fixture
def daily(cron_db: psycopg.Connection, make_role: Callable[..., str]) -> dict[str, str]:
    """Job ``daily`` (owner: the test's superuser) appending {day} to
    public.days; role ``analyst`` may submit it, role ``stranger`` may not."""
    cron_db.execute("CREATE TABLE public.days (day date, who text DEFAULT current_user)")
    runnertools.define(cron_db, "daily", "SELECT CAST({day} AS date) AS day", "days",
                       params={"day": {"type": "date"}})
    analyst, stranger = make_role("analyst"), make_role("stranger")
    cron_db.execute("SELECT jobledger.grant_job('daily', %s)", (analyst,))
    return {"analyst": analyst, "stranger": stranger}


def as_role(connect: Callable[..., psycopg.Connection], role: str) -> psycopg.Connection:
    return connect(user=role)


def cron_jobs(db: psycopg.Connection) -> list[dict[str, Any]]:
    return db.execute("SELECT jobname, username, command, database, schedule FROM cron.job ORDER BY jobid").fetchall()


def refused(conn: psycopg.Connection, query: str, params: Any = None) -> psycopg.Error:
    with pytest.raises(psycopg.Error) as caught:
        conn.execute(query, params)
    return caught.value


def test_without_pg_cron_schedule_is_feature_not_available(empty_db: psycopg.Connection) -> None:
    db = empty_db
    db.execute("CREATE EXTENSION jobledger CASCADE")
    runnertools.define(db, "echo", "SELECT 1 AS n", "result")
    error = refused(db, "SELECT jobledger.schedule('nightly', 'echo', '0 3 * * *')")
    assert error.sqlstate == "0A000"
    assert dbtools.category(error) == "feature_not_available"
    assert "shared_preload_libraries" in error.diag.message_hint and "pg_cron" in error.diag.message_hint
    assert db.execute("SELECT count(*) AS n FROM jobledger.schedule").fetchone() == {"n": 0}
    # Without pg_cron the view is there and empty; unschedule finds nothing.
    assert db.execute("SELECT * FROM jobledger.schedules").fetchall() == []
    assert db.execute("SELECT jobledger.unschedule('nightly') AS u").fetchone() == {"u": False}


def test_a_real_tick_submits_once_as_the_owner_and_a_runner_runs_it(
        cron_db: psycopg.Connection, daily: dict[str, str], connect: Callable[..., psycopg.Connection],
        start_runner: Callable[..., runnertools.Runner]) -> None:
    analyst = as_role(connect, daily["analyst"])
    cron_id = analyst.execute("SELECT jobledger.schedule('every_minute', 'daily', '* * * * *',"
                              " '{\"day\": \"{{tick_date - 1}}\"}') AS id").fetchone()["id"]
    assert cron_jobs(cron_db) == [{"jobname": "jobledger every_minute", "username": daily["analyst"],
                                   "command": "SELECT jobledger_internal.tick('every_minute')",
                                   "database": cron_db.info.dbname, "schedule": "* * * * *"}]
    assert cron_id is not None
    shown = analyst.execute("SELECT * FROM jobledger.schedules").fetchone()
    assert shown["active"] and shown["next_tick"] is not None and shown["last_run"] is None

    # pg_cron ticks at the start of the next minute.
    run = runnertools.wait_until(lambda: analyst.execute(
        "SELECT * FROM jobledger.runs WHERE idempotency_key LIKE 'schedule every_minute at %'").fetchone(),
        timeout=75, what="pg_cron's tick")
    assert run["submitted_by"] == daily["analyst"]
    tick = analyst.execute("SELECT jobledger_internal.tick_time('* * * * *', %s) AS t",
                           (run["created_at"],)).fetchone()["t"]
    assert run["idempotency_key"] == f"schedule every_minute at {tick:%Y-%m-%dT%H:%M:%S}Z"
    day = analyst.execute("SELECT (%s::timestamptz AT TIME ZONE 'GMT')::date - 1 AS d", (tick,)).fetchone()["d"]
    assert run["parameters"] == {"day": day.isoformat()}
    # The same tick again (pg_cron firing twice, or late in its minute) is the same run.
    again = analyst.execute("SELECT jobledger_internal.tick('every_minute', %s::timestamptz + interval '40 seconds')"
                            " AS id", (tick,)).fetchone()["id"]
    assert again == run["id"]
    assert analyst.execute("SELECT count(*) AS n FROM jobledger.runs WHERE idempotency_key = %s",
                           (run["idempotency_key"],)).fetchone() == {"n": 1}

    start_runner()
    runnertools.wait_status(cron_db, run["id"], "succeeded")
    assert cron_db.execute("SELECT day FROM public.days").fetchall() == [{"day": day}]
    shown = analyst.execute("SELECT * FROM jobledger.schedules").fetchone()
    assert shown["last_tick_status"] == "succeeded" and shown["last_tick_at"] is not None
    assert shown["last_run"] == run["id"] and shown["last_run_status"] == "succeeded"

    assert analyst.execute("SELECT jobledger.unschedule('every_minute') AS u").fetchone() == {"u": True}
    assert cron_jobs(cron_db) == []
    assert analyst.execute("SELECT jobledger.unschedule('every_minute') AS u").fetchone() == {"u": False}
    assert dbtools.run_row(cron_db, run["id"])["status"] == "succeeded"  # runs stay


@pytest.mark.parametrize(("value", "expected"), [
    ("{{tick_date}}", "2026-11-02"),
    ("{{tick_date - 1}}", "2026-11-01"),
    ("{{ tick_date + 30 days }}", "2026-12-02"),
    ("{{tick_month_start}}", "2026-11-01"),
    ("{{tick_month_start - 1 month}}", "2026-10-01"),
    ("{{tick_time}}", "2026-11-02T03:00:00+00:00"),
    ("{{tick_time - 2 hours}}", "2026-11-02T01:00:00+00:00"),
    ("plain text", "plain text"),
])
def test_tick_expressions_are_computed_as_values(cron_db: psycopg.Connection, value: str, expected: str) -> None:
    cron_db.execute("SET TIME ZONE 'UTC'")
    got = cron_db.execute("SELECT jobledger_internal.tick_params(%s, '2026-11-02 03:00:00+00') -> 'v' AS v",
                          (json.dumps({"v": value, "n": 7}),)).fetchone()["v"]
    assert got == expected


@pytest.mark.parametrize("value", [
    "{{tick_date - x}}", "{{now()}}", "{{tick_time - 1}}", "{{tick_date - 1 hour}}", "{{tick_date}} ",
    "{{tick_date}}'; DROP TABLE public.days; --", "{{tick_date - 1}}{{tick_date}}", "{{TICK_DATE}}",
    "{{tick_date - 1234567}}", ["{{tick_date}}"], {"nested": "{{tick_date}}"},
])
def test_anything_else_with_braces_is_refused_at_schedule_time(
        daily: dict[str, str], connect: Callable[..., psycopg.Connection], value: Any) -> None:
    analyst = as_role(connect, daily["analyst"])
    error = refused(analyst, "SELECT jobledger.schedule('s', 'daily', '0 3 * * *', %s)",
                    (json.dumps({"day": value}),))
    assert dbtools.category(error) == "invalid_argument", error
    assert analyst.execute("SELECT count(*) AS n FROM jobledger.schedules").fetchone() == {"n": 0}


def test_schedule_checks_the_submission_and_the_cron_text(
        cron_db: psycopg.Connection, daily: dict[str, str], connect: Callable[..., psycopg.Connection]) -> None:
    stranger = as_role(connect, daily["stranger"])
    analyst = as_role(connect, daily["analyst"])
    # Not granted: submit_job's refusal; nothing is scheduled.
    error = refused(stranger, "SELECT jobledger.schedule('mine', 'daily', '0 3 * * *', '{\"day\": \"{{tick_date}}\"}')")
    assert dbtools.category(error) == "permission_denied"
    # Granted, but parameters the job does not take.
    error = refused(analyst, "SELECT jobledger.schedule('mine', 'daily', '0 3 * * *', '{\"dya\": \"{{tick_date}}\"}')")
    assert dbtools.category(error) in ("unknown_parameters", "missing_parameters")
    # pg_cron reads the schedule text, and refuses what it cannot read.
    for text in ("61 * * * *", "* * * * *; SELECT 1", "every day", "", "* * * * * \n"):
        error = refused(analyst, "SELECT jobledger.schedule('mine', 'daily', %s, '{\"day\": \"{{tick_date}}\"}')", (text,))
        assert dbtools.category(error) == "invalid_argument", text
    # Names that are not names never reach pg_cron.
    for name in ("x'); SELECT 1; --", "a b", "", "$$", "x" * 129, None):
        error = refused(analyst, "SELECT jobledger.schedule(%s, 'daily', '0 3 * * *', '{\"day\": \"{{tick_date}}\"}')",
                        (name,))
        assert dbtools.category(error) == "invalid_argument", name
    assert cron_jobs(cron_db) == []
    assert cron_db.execute("SELECT count(*) AS n FROM jobledger.schedule").fetchone() == {"n": 0}


def test_a_role_cannot_reach_cron_nor_another_roles_schedule(
        cron_db: psycopg.Connection, daily: dict[str, str], connect: Callable[..., psycopg.Connection]) -> None:
    analyst = as_role(connect, daily["analyst"])
    stranger = as_role(connect, daily["stranger"])
    cron_db.execute("SELECT jobledger.grant_job('daily', %s)", (daily["stranger"],))
    analyst.execute("SELECT jobledger.schedule('nightly', 'daily', '0 3 * * *', '{\"day\": \"{{tick_date}}\"}')")
    # pg_cron's own API is not the caller's: no cron job as another role, no SQL of one's own.
    for call in ("SELECT cron.schedule('x', '* * * * *', 'SELECT 1')",
                 "SELECT cron.schedule_in_database('x', '* * * * *', 'SELECT 1', current_database(), 'postgres')",
                 "SELECT jobledger_internal.schedule_cron_state() FROM cron.job"):
        error = refused(stranger, call)
        assert error.sqlstate == "42501", call
    # The same name is another schedule for another role; each sees its own.
    stranger.execute("SELECT jobledger.schedule('nightly', 'daily', '0 4 * * *', '{\"day\": \"{{tick_date}}\"}')")
    assert [(r["owner"], r["cron"]) for r in stranger.execute("SELECT * FROM jobledger.schedules")] == [
        (daily["stranger"], "0 4 * * *")]
    assert [(r["owner"], r["cron"]) for r in analyst.execute("SELECT * FROM jobledger.schedules")] == [
        (daily["analyst"], "0 3 * * *")]
    assert sorted((j["username"], j["schedule"]) for j in cron_jobs(cron_db)) == [
        (daily["analyst"], "0 3 * * *"), (daily["stranger"], "0 4 * * *")]
    # A tick finds only the caller's own schedule and submits as the caller.
    run = stranger.execute("SELECT jobledger_internal.tick('nightly', '2026-11-02 03:00+00') AS id").fetchone()["id"]
    assert dbtools.run_row(cron_db, run)["submitted_by"] == daily["stranger"]
    error = refused(connect(user=daily["analyst"]), "SELECT jobledger_internal.tick('other')")
    assert dbtools.category(error) == "unknown_schedule"
    # unschedule takes the caller's own schedule and cron job only.
    assert stranger.execute("SELECT jobledger.unschedule('nightly') AS u").fetchone() == {"u": True}
    assert [(j["username"]) for j in cron_jobs(cron_db)] == [daily["analyst"]]
    # Once the grant is gone, the tick is refused like any submit (pg_cron logs it).
    cron_db.execute("SELECT jobledger.revoke_job('daily', %s)", (daily["analyst"],))
    error = refused(analyst, "SELECT jobledger_internal.tick('nightly')")
    assert dbtools.category(error) == "permission_denied"


def test_schedule_again_changes_it_and_pg_dump_keeps_it(
        cron_db: psycopg.Connection, daily: dict[str, str], connect: Callable[..., psycopg.Connection]) -> None:
    analyst = as_role(connect, daily["analyst"])
    first = analyst.execute("SELECT jobledger.schedule('nightly', 'daily', '0 3 * * *',"
                            " '{\"day\": \"{{tick_date}}\"}') AS id").fetchone()["id"]
    second = analyst.execute("SELECT jobledger.schedule('nightly', 'daily', '30 2 * * *',"
                             " '{\"day\": \"{{tick_date - 1}}\"}', priority => 5) AS id").fetchone()["id"]
    assert first == second
    assert [j["schedule"] for j in cron_jobs(cron_db)] == ["30 2 * * *"]
    row = analyst.execute("SELECT cron, params, priority, next_tick FROM jobledger.schedules").fetchone()
    assert (row["cron"], row["params"], row["priority"]) == ("30 2 * * *", {"day": "{{tick_date - 1}}"}, 5)
    assert (row["next_tick"].hour, row["next_tick"].minute) == (2, 30)
    dump = runnertools.pg_tool(cron_db, runnertools.pg_bin("pg_dump"), "--data-only", "-d", cron_db.info.dbname).stdout
    assert "COPY jobledger.schedule " in dump and "COPY cron.job " in dump


def test_backfill_submits_one_run_per_value_once(
        cron_db: psycopg.Connection, daily: dict[str, str], connect: Callable[..., psycopg.Connection],
        start_runner: Callable[..., runnertools.Runner]) -> None:
    analyst = as_role(connect, daily["analyst"])
    first = analyst.execute("SELECT * FROM jobledger.backfill('daily', 'day', '2026-11-01', '2026-11-30')").fetchall()
    assert [r["value"] for r in first] == [f"2026-11-{d:02d}" for d in range(1, 31)]
    again = analyst.execute("SELECT * FROM jobledger.backfill('daily', 'day', '2026-11-01', '2026-11-30')").fetchall()
    assert again == first
    runs = analyst.execute("SELECT idempotency_key, parameters, submitted_by FROM jobledger.runs"
                           " ORDER BY parameters ->> 'day'").fetchall()
    assert len(runs) == 30
    assert runs[0] == {"idempotency_key": "backfill day=2026-11-01", "parameters": {"day": "2026-11-01"},
                       "submitted_by": daily["analyst"]}
    weekly = analyst.execute("SELECT value FROM jobledger.backfill('daily', 'day', '2026-12-01', '2026-12-31',"
                             " '7 days')").fetchall()
    assert [r["value"] for r in weekly] == ["2026-12-01", "2026-12-08", "2026-12-15", "2026-12-22", "2026-12-29"]
    start_runner("--drain").wait()
    assert cron_db.execute("SELECT count(DISTINCT day) AS n FROM public.days").fetchone() == {"n": 35}


def test_backfill_refuses_what_it_cannot_step_and_submits_nothing(
        cron_db: psycopg.Connection, daily: dict[str, str], connect: Callable[..., psycopg.Connection]) -> None:
    analyst = as_role(connect, daily["analyst"])
    stranger = as_role(connect, daily["stranger"])
    for args in (("2026-11-30", "2026-11-01", None), ("2026-11-01", "2026-11-30", "-1 day"),
                 ("2026-11-01", "2026-11-30", "a fortnight"), ("2026-11-01", "infinity", None),
                 ("2000-01-01", "2100-01-01", None), ("yesterday'; --", "2026-11-01", None)):
        error = refused(analyst, "SELECT * FROM jobledger.backfill('daily', 'day', %s, %s, %s)", args)
        assert dbtools.category(error) == "invalid_argument", args
    error = refused(stranger, "SELECT * FROM jobledger.backfill('daily', 'day', '2026-11-01', '2026-11-02')")
    assert dbtools.category(error) == "permission_denied"
    assert cron_db.execute("SELECT count(*) AS n FROM jobledger.run").fetchone() == {"n": 0}
    # Integers, for an untyped parameter, with a step.
    runnertools.define(cron_db, "numbers", "SELECT {n} AS n", "result")
    got = cron_db.execute("SELECT value FROM jobledger.backfill('numbers', 'n', '1', '10', '3')").fetchall()
    assert [r["value"] for r in got] == [1, 4, 7, 10]


def test_schedule_names_go_to_cron_as_literals(
        cron_db: psycopg.Connection, daily: dict[str, str], connect: Callable[..., psycopg.Connection]) -> None:
    analyst = as_role(connect, daily["analyst"])
    analyst.execute("SELECT jobledger.schedule('a.b-c_d', 'daily', '@daily', '{\"day\": \"{{tick_date}}\"}')")
    (job,) = cron_jobs(cron_db)
    assert job["command"] == "SELECT jobledger_internal.tick('a.b-c_d')"
