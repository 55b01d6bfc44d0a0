"""The runner pins the settings it depends on (runner.session): under a
database whose defaults are all unusual, runs of every mode and the result
destination succeed and write exactly the values they would write under the
usual ones."""

from __future__ import annotations

import datetime
import decimal
import json

import psycopg
import pytest
from psycopg import sql

import dbtools
import runnertools

# ALTER DATABASE ... SET: what pg_regress uses and what some installations keep.
UNUSUAL = {
    "DateStyle": "Postgres, MDY",
    "IntervalStyle": "postgres_verbose",
    "TimeZone": "America/New_York",
    "extra_float_digits": "-15",
    "bytea_output": "escape",
    "standard_conforming_strings": "off",
}

SOURCE_ROW = {
    "k": 1, "d": datetime.date(2026, 11, 2),
    "ts": datetime.datetime(2026, 3, 29, 1, 30, 0, 500000, tzinfo=datetime.timezone.utc),
    "iv": datetime.timedelta(days=1, hours=2, minutes=3, seconds=4, microseconds=500000),
    "f": 0.1 + 0.2, "b": b"\xde\xad\\\x00'", "s": "back\\slash 'quoted'", "n": decimal.Decimal("12345.678901"),
}
COLUMNS = "k integer PRIMARY KEY, d date, ts timestamptz, iv interval, f float8, b bytea, s text, n numeric"
PARAMS = {"day": {"type": "date"}, "at": {"type": "timestamptz"}, "note": {"type": "text"}}
VALUES = {"day": "2026-01-02", "at": "2026-01-02 03:04:05+00", "note": "a\\b 'c'"}
# Every column of the source, and each parameter (as the job sees it).
QUERY = ("SELECT k, d, ts, iv, f, b, s, n, {day} AS pd, {at} AS pts, {note} AS ps,"
         " d::text AS dtext, iv::text AS ivtext, f::text AS ftext FROM public.src")
# The same without what Arrow cannot hold (interval, numeric without a scale).
RESULT_QUERY = ("SELECT k, d, ts, f, b, s, CAST(n AS numeric(20,6)) AS n, {day} AS pd, {at} AS pts, {note} AS ps,"
                " d::text AS dtext, f::text AS ftext FROM public.src")


@pytest.fixture
def unusual_db(db: psycopg.Connection, connect) -> psycopg.Connection:
    """The test database with UNUSUAL defaults; a new session that has them."""
    db.execute(f"CREATE TABLE public.src ({COLUMNS})")
    db.execute("INSERT INTO public.src VALUES (%(k)s, %(d)s, %(ts)s, %(iv)s, %(f)s, %(b)s, %(s)s, %(n)s)", SOURCE_ROW)
    extra = ", pd date, pts timestamptz, ps text, dtext text, ivtext text, ftext text"
    for table in ("out_append", "out_overwrite", "out_merge"):
        db.execute(sql.SQL("CREATE TABLE {} (" + COLUMNS + extra + ")").format(sql.Identifier("public", table)))
    dbname = sql.Identifier(db.info.dbname)
    for name, value in UNUSUAL.items():
        db.execute(sql.SQL("ALTER DATABASE {} SET {} = {}").format(dbname, sql.Identifier(name), sql.Literal(value)))
    session = connect()
    shown = session.execute("SELECT current_setting('DateStyle') AS ds, current_setting('bytea_output') AS bo"
                            ).fetchone()
    assert shown == {"ds": "Postgres, MDY", "bo": "escape"}
    return session


def test_every_mode_and_result_write_the_right_values_under_unusual_defaults(db, unusual_db, start_runner
                                                                            ) -> None:
    session = unusual_db
    runs = {}
    for mode in ("append", "overwrite", "merge"):
        runnertools.define(db, mode, QUERY, f"out_{mode}", mode=mode, params=PARAMS)
    runnertools.define(db, "result", RESULT_QUERY, "result", params=PARAMS)
    for name in ("append", "overwrite", "merge", "result"):
        runs[name] = runnertools.submit(session, name, VALUES)
    runner = start_runner("--drain", "--concurrency", "2", worker="unusual")
    assert runner.wait() == 0, runner.log()
    for name, run in runs.items():
        assert dbtools.run_row(db, run)["status"] == "succeeded", (name, runner.log())

    # What the job computes as text follows the runner's pinned settings, not the database's.
    expected = {**SOURCE_ROW, "pd": datetime.date(2026, 1, 2),
                "pts": datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
                "ps": VALUES["note"], "dtext": "2026-11-02", "ivtext": "1 day 02:03:04.5",
                "ftext": "0.30000000000000004"}
    for mode in ("append", "overwrite", "merge"):
        row = db.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier("public", f"out_{mode}"))).fetchall()
        assert row == [expected], mode

    text = db.execute("SELECT jobledger.result_json(%s)::text AS j", (runs["result"],)).fetchone()["j"]
    assert json.loads(text, parse_float=decimal.Decimal) == [{
        "k": 1, "d": "2026-11-02", "ts": "2026-03-29T01:30:00.500000Z", "f": decimal.Decimal("0.30000000000000004"),
        "b": "\\xdead5c0027", "s": SOURCE_ROW["s"], "n": decimal.Decimal("12345.678901"), "pd": "2026-01-02",
        "pts": "2026-01-02T03:04:05Z", "ps": VALUES["note"], "dtext": "2026-11-02",
        "ftext": "0.30000000000000004"}]


def test_the_runner_starts_and_claims_under_unusual_defaults(db, unusual_db, start_runner) -> None:
    db.execute("CREATE TABLE public.landed (n integer)")
    runnertools.define(db, "one", "SELECT CAST({n} AS integer) AS n", "landed", params={"n": {"type": "integer"}})
    run = runnertools.submit(unusual_db, "one", {"n": 1})
    runner = start_runner(worker="unusual")  # reads its lease (an interval) at start
    runnertools.wait_status(db, run, "succeeded")
    assert runner.stop() == 0, runner.log()
    assert db.execute("SELECT state FROM jobledger.workers WHERE worker = 'unusual'").fetchall() == [
        {"state": "stopped"}]
