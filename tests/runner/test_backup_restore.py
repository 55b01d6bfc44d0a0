"""pg_dump and pg_restore of a database that uses jobledger.

The ledger tables are extension configuration tables: CREATE EXTENSION in the
restore creates them with their constraints, then pg_dump's data is loaded
into them table by table (each COPY its own transaction unless the restore
runs in one).  pg_dump orders that data by the foreign keys between the
tables, so the keys must form no cycle.  These tests dump a database with
jobs, versions, version checks, grants, lake grants, runs, attempts and outputs with the
pg_dump of the server under test, restore it into a new database every way a
DBA would (pg_restore of custom and directory archives, with and without
-j 2; psql -f of a plain dump), and assert every row came back and that jobs
still submit and run there.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import uuid
from typing import Any

import psycopg
import pytest
from psycopg import rows, sql

import dbtools
import runnertools

# Every table pg_dump must bring back, with the columns that order its rows.
LEDGER_TABLES = {
    "jobledger.job": "name",
    "jobledger.job_version": "job, version",
    "jobledger.job_version_check": "job, version",
    "jobledger.job_grant": "job, grantee",
    "jobledger.run": "id",
    "jobledger.run_attempt": "run, attempt",
    "jobledger.output": "seq",
    "jobledger.lake_grant": "prefix",
    "public.copied": "n, who",
}


def _contents(conn: psycopg.Connection) -> dict[str, list[Any]]:
    found = {}
    for table, order in LEDGER_TABLES.items():
        query = sql.SQL("SELECT to_jsonb(t) AS r FROM {} AS t ORDER BY {}").format(
            sql.SQL(table), sql.SQL(order))
        found[table] = [row["r"] for row in conn.execute(query)]
    return found


@pytest.fixture
def ledger(db: psycopg.Connection, make_role: Any, start_runner: Any) -> dict[str, Any]:
    """The test database with something in every ledger table."""
    db.execute("CREATE TABLE public.copied (n integer, who text DEFAULT current_user)")
    submitter = make_role("submitter")
    runnertools.define(db, "copy_n", "SELECT {n}::integer AS n", "public.copied", params={"n": {"type": "integer"}})
    # A second version of the job: the job's current version is 2.
    runnertools.define(db, "copy_n", "SELECT {n}::integer + 0 AS n", "public.copied",
                       params={"n": {"type": "integer"}})
    runnertools.define(db, "answer", "SELECT 42 AS answer, 'x'::text AS t", "result")
    runnertools.define(db, "broken", "SELECT 1 / ({n}::integer - {n}::integer) AS n", "public.copied",
                       params={"n": {"type": "integer"}}, max_attempts=1)
    db.execute("SELECT jobledger.grant_job('copy_n', %s)", (submitter,))
    # Lake grants: a role's (by oid, dumped by name) and PUBLIC's (oid 0, dumped as '-').
    db.execute("SELECT jobledger.allow_lake_prefix(%s, '/data/lake')", (submitter,))
    db.execute("SELECT jobledger.allow_lake_prefix('public', 's3://scratch')")
    done = [runnertools.submit(db, "copy_n", {"n": n}) for n in (1, 2, 3)]
    result = runnertools.submit(db, "answer")
    failed = runnertools.submit(db, "broken", {"n": 7})
    runner = start_runner("--drain")
    assert runner.wait() == 0, runner.log()
    assert {runnertools.status(db, run) for run in done + [result]} == {"succeeded"}
    assert runnertools.status(db, failed) == "failed"
    # Left pending: the restored database runs it.
    pending = runnertools.submit(db, "copy_n", {"n": 4}, idempotency_key="four")
    return {"submitter": submitter, "pending": pending, "result": result}


# (name, pg_dump format, how to restore)
WAYS = [
    ("custom", "c", ["pg_restore"]),
    ("custom -j 2", "c", ["pg_restore", "-j", "2"]),
    ("directory", "d", ["pg_restore"]),
    ("directory -j 2", "d", ["pg_restore", "-j", "2"]),
    ("plain", "p", ["psql"]),
]


def test_every_row_survives_dump_and_restore_and_jobs_still_run(
        db: psycopg.Connection, ledger: dict[str, Any], jobledger_server: Any, start_runner: Any,
        tmp_path: pathlib.Path) -> None:
    before = _contents(db)
    assert all(before[table] for table in LEDGER_TABLES), {t: len(r) for t, r in before.items()}
    assert len(before["jobledger.job_version"]) == 4 and len(before["jobledger.output"]) >= 2
    dbname = db.info.dbname
    dumps = {}
    for fmt in ("c", "d", "p"):
        target = tmp_path / f"dump.{fmt}"
        done = runnertools.pg_tool(db, runnertools.pg_bin("pg_dump"), "-F", fmt, "-f", str(target), dbname)
        assert "circular" not in done.stderr and "warning" not in done.stderr.lower(), done.stderr
        dumps[fmt] = target

    for name, fmt, tool in WAYS:
        restored = f"jl_restored_{uuid.uuid4().hex[:10]}"
        db.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(restored)))
        try:
            if tool[0] == "psql":
                done = runnertools.pg_tool(db, runnertools.pg_bin("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", restored,
                                 "-f", str(dumps[fmt]))
            else:
                done = runnertools.pg_tool(db, runnertools.pg_bin(tool[0]), *tool[1:], "-d", restored, str(dumps[fmt]))
            assert "error" not in done.stderr.lower(), f"{name}: {done.stderr}"
            params = {**dbtools.conninfo(db), "dbname": restored}
            with psycopg.connect(**params, autocommit=True, row_factory=rows.dict_row) as conn:
                after = _contents(conn)
                for table in LEDGER_TABLES:
                    assert after[table] == before[table], f"{name}: {table} differs after the restore"
                # The restored output sequence continues after the restored outputs.
                seq = conn.execute("SELECT nextval('jobledger.output_seq') AS s").fetchone()["s"]
                assert seq > max(o["seq"] for o in after["jobledger.output"]), name
                # Jobs submit and run: the pending run and a new one, and the
                # grant still lets the submitter submit.
                again = runnertools.submit(conn, "copy_n", {"n": 5})
                with psycopg.connect(**{**params, "user": ledger["submitter"]}, autocommit=True,
                                     row_factory=rows.dict_row) as sub:
                    granted = runnertools.submit(sub, "copy_n", {"n": 6})
                    assert runnertools.submit(sub, "copy_n", {"n": 6}, idempotency_key="six") != granted
                result = runnertools.submit(conn, "answer")
                assert runnertools.submit(conn, "copy_n", {"n": 4}, idempotency_key="four") == ledger["pending"]
                runnertools.drain(conn, f"restored-{fmt}")
                states = conn.execute(
                    "SELECT id, status FROM jobledger.run WHERE id = ANY(%s)",
                    ([ledger["pending"], again, granted, result],)).fetchall()
                assert {row["status"] for row in states} == {"succeeded"} and len(states) == 4, (name, states)
                copied = [row["n"] for row in conn.execute("SELECT n FROM public.copied ORDER BY n")]
                assert copied == [1, 2, 3, 4, 5, 6, 6], name
                answer = conn.execute("SELECT jobledger.result_json(%s)::text AS j", (result,)).fetchone()["j"]
                assert json.loads(answer) == [{"answer": 42, "t": "x"}], name
        finally:
            db.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(restored)))



def test_the_references_the_keys_kept_are_kept(db: psycopg.Connection, start_runner: Any) -> None:
    """No foreign keys between the ledger tables any more: triggers keep what they kept."""
    db.execute("CREATE TABLE public.copied (n integer, who text)")
    runnertools.define(db, "copy_n", "SELECT {n}::integer AS n", "public.copied", params={"n": {"type": "integer"}})
    runnertools.define(db, "answer", "SELECT 42 AS answer", "result")
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        db.execute("UPDATE jobledger.job SET current_version = 7 WHERE name = 'copy_n'")
    with pytest.raises(psycopg.errors.ForeignKeyViolation):  # the current version
        db.execute("DELETE FROM jobledger.job_version WHERE job = 'copy_n' AND version = 1")
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        db.execute("INSERT INTO jobledger.run (job, job_version, rendered_sql) VALUES ('copy_n', 9, 'SELECT 1')")
    run = runnertools.submit(db, "answer")
    runner = start_runner("--drain")
    assert runner.wait() == 0, runner.log()
    with pytest.raises(psycopg.errors.ForeignKeyViolation):  # a version with runs
        db.execute("DELETE FROM jobledger.job AS j WHERE j.name = 'answer'")
    counts = "SELECT (SELECT count(*) FROM jobledger.{}) AS n"
    assert db.execute(counts.format("output")).fetchone()["n"] >= 1
    db.execute("SELECT jobledger.drop_job('answer')")  # runs, attempts, outputs, versions, checks go along
    db.execute("SELECT jobledger.drop_job('copy_n')")
    for table in ("job_version", "job_version_check", "run", "run_attempt", "output", "job_grant"):
        assert db.execute(counts.format(table)).fetchone()["n"] == 0, table
