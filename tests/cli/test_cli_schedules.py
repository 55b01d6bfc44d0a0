"""jobledger schedules, jobledger backfill and submit --range, against
pg_cron's database (the cron_db fixture: tests/conftest.py)."""

from __future__ import annotations

import json
from typing import Callable

import psycopg
import pytest

import runnertools
from clitools import Result, one_line_error


@pytest.fixture
def db(cron_db: psycopg.Connection) -> psycopg.Connection:
    """Every test here runs in pg_cron's database."""
    return cron_db


@pytest.fixture
def daily(db: psycopg.Connection) -> str:
    db.execute("CREATE TABLE public.days (day date, region text)")
    runnertools.define(db, "daily", "SELECT CAST({day} AS date) AS day, CAST({region} AS text) AS region", "days",
                       params={"day": {"type": "date"}, "region": {"type": "text", "default": "eu"}})
    return "daily"


def test_submit_range_and_backfill_submit_each_value_once(
        db: psycopg.Connection, daily: str, cli: Callable[..., Result],
        start_runner: Callable[..., runnertools.Runner]) -> None:
    done = cli("submit", daily, "--range", "day=2026-11-01..2026-11-30", "-p", "region=us", "--json")
    assert done.code == 0, done
    runs = json.loads(done.out)
    assert [r["parameters"] for r in runs][:2] == [{"region": "us", "day": "2026-11-01"},
                                                  {"region": "us", "day": "2026-11-02"}]
    assert len(runs) == 30
    # The same backfill again: the same runs, nothing new.
    again = cli("backfill", daily, "day=2026-11-01..2026-11-30", "-p", "region=us")
    assert again.code == 0, again
    assert [line.split()[0] for line in again.out.splitlines()] == [r["run"] for r in runs]
    weekly = cli("backfill", daily, "day=2026-12-01..2026-12-31", "--step", "7 days", "-p", "region=us", "--json")
    assert [r["parameters"]["day"] for r in json.loads(weekly.out)] == [
        "2026-12-01", "2026-12-08", "2026-12-15", "2026-12-22", "2026-12-29"]
    assert db.execute("SELECT count(*) AS n FROM jobledger.run").fetchone() == {"n": 35}
    start_runner("--drain").wait()
    assert db.execute("SELECT count(*) AS n FROM public.days WHERE region = 'us'").fetchone() == {"n": 35}


def test_bad_ranges_are_one_line_errors(daily: str, cli: Callable[..., Result]) -> None:
    one_line_error(cli("submit", daily, "--range", "day=2026-11-01"), "invalid_argument")
    one_line_error(cli("submit", daily, "--range", "day=2026-11-01..2026-11-02", "--wait"), "invalid_argument")
    one_line_error(cli("submit", daily, "-p", "day=2026-11-01", "--step", "1 day"), "invalid_argument")
    one_line_error(cli("backfill", daily, "day=2026-11-30..2026-11-01"), "invalid_argument")
    one_line_error(cli("backfill", daily, "day=2026-11-01..2026-11-30", "--step", "fortnightly"), "invalid_argument")


def test_schedules_lists_what_pg_cron_ticks(db: psycopg.Connection, daily: str, cli: Callable[..., Result]) -> None:
    db.execute("""SELECT jobledger.schedule('nightly', 'daily', '0 3 * * *', '{"day": "{{tick_date - 1}}"}')""")
    db.execute("SELECT jobledger_internal.tick('nightly', '2026-11-02 03:00:05+00')")
    listed = cli("schedules", "--json")
    assert listed.code == 0, listed
    (row,) = json.loads(listed.out)
    assert (row["name"], row["job"], row["cron"], row["active"], row["last_run_status"]) == (
        "nightly", "daily", "0 3 * * *", True, "pending")
    assert row["params"] == {"day": "{{tick_date - 1}}"} and row["next_tick"].endswith(("03:00:00Z", "03:00:00+00:00"))
    table = cli("schedules")
    assert table.code == 0 and "nightly" in table.out and "0 3 * * *" in table.out, table
