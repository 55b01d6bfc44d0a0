"""Runs the runner cannot handle end alone: the run fails (or succeeds, if it
can be executed), the runner goes on with the next runs, a dead executor is
restarted, and a runner that cannot go on exits non-zero and says so in
jobledger.workers."""

from __future__ import annotations

import uuid

import psycopg
import pytest

import runnertools
from jobledger import exact_json


def _submit_raw(conn: psycopg.Connection, job: str, params_json: str) -> uuid.UUID:
    """submit_job with the parameters' JSON text exactly as written."""
    return conn.execute("SELECT jobledger.submit_job(%s, %s::jsonb) AS id", (job, params_json)).fetchone()["id"]


@pytest.fixture
def echo_num(db: psycopg.Connection) -> None:
    """Jobs echo_num (numeric {n} into public.nums) and echo_num_result (its text, as a result)."""
    db.execute("CREATE TABLE public.nums (n numeric)")
    params = {"n": {"type": "numeric"}}
    runnertools.define(db, "echo_num", "SELECT CAST({n} AS numeric) AS n", "nums", params=params)
    runnertools.define(db, "echo_num_result", "SELECT CAST(CAST({n} AS numeric) AS text) AS n", "result",
                       params=params)


def test_a_number_python_cannot_read_is_run_and_the_runner_goes_on(db, echo_num, start_runner) -> None:
    # 1e5000: valid numeric, 5,001 digits as PostgreSQL prints it, over Python's int() limit.
    exact_json.register(db)  # so that this test can read the run rows
    huge = _submit_raw(db, "echo_num", '{"n": 1e5000}')
    huge_result = _submit_raw(db, "echo_num_result", '{"n": 1e5000}')
    runner = start_runner("--concurrency", "2", worker="P")
    row = runnertools.wait_status(db, huge, "succeeded", "failed")
    assert row["status"] == "succeeded", row
    assert db.execute("SELECT n = 1e5000 AS same FROM public.nums").fetchall() == [{"same": True}]
    row = runnertools.wait_status(db, huge_result, "succeeded", "failed")
    assert row["status"] == "succeeded", row
    assert db.execute("SELECT jobledger.result_json(%s) -> 0 ->> 'n' = (1e5000)::text AS same",
                      (huge_result,)).fetchone() == {"same": True}

    # The same runner goes on with the next runs.
    nexts = [runnertools.submit(db, "echo_num", {"n": n}) for n in (1, 2)]
    for run in nexts:
        runnertools.wait_status(db, run, "succeeded")
    assert runner.stop() == 0, runner.log()
    assert "Traceback" not in runner.log(), runner.log()
    assert db.execute("SELECT count(*) AS n FROM jobledger.run WHERE status = 'running'").fetchone() == {"n": 0}


def test_a_row_the_runner_cannot_read_fails_that_run_only(db, echo_num, start_runner) -> None:
    bad = runnertools.submit(db, "echo_num", {"n": 1})
    # A timestamp Python cannot hold: loading the claimed row fails.
    db.execute("ALTER TABLE jobledger.run DISABLE TRIGGER USER")
    db.execute("UPDATE jobledger.run SET created_at = 'infinity' WHERE id = %s", (bad,))
    db.execute("ALTER TABLE jobledger.run ENABLE TRIGGER USER")
    runner = start_runner("--concurrency", "1", worker="U")
    row = runnertools.wait_until(lambda: (found := db.execute(
        "SELECT status::text AS status, error, error_category FROM jobledger.run WHERE id = %s", (bad,)
    ).fetchone())["status"] in ("failed", "succeeded") and found, what="the run to end")
    assert (row["status"], row["error_category"]) == ("failed", "runner_error"), row
    assert "cannot read" in row["error"]

    good = runnertools.submit(db, "echo_num", {"n": 2})
    runnertools.wait_status(db, good, "succeeded")
    assert runner.stop() == 0, runner.log()
    assert db.execute("SELECT n FROM public.nums").fetchall() == [{"n": 2}]


def test_an_executor_that_dies_is_restarted(db, echo_num, start_runner, monkeypatch) -> None:
    monkeypatch.setenv("JOBLEDGER_RUNNER_FAULT", "executor-crash-once")
    runner = start_runner("--concurrency", "1", worker="R")
    run = runnertools.submit(db, "echo_num", {"n": 3})
    runnertools.wait_status(db, run, "succeeded")
    assert runner.stop() == 0, runner.log()
    assert "restarting executor 0" in runner.log()


def test_a_runner_that_cannot_go_on_exits_non_zero_and_shows_stopped(db, echo_num, start_runner,
                                                                     monkeypatch) -> None:
    monkeypatch.setenv("JOBLEDGER_RUNNER_FAULT", "executor-crash")
    runner = start_runner("--concurrency", "2", worker="X")
    code = runner.wait()
    assert code != 0, runner.log()
    assert "cannot go on" in runner.log()
    assert db.execute("SELECT state FROM jobledger.workers WHERE worker = 'X'").fetchall() == [
        {"state": "stopped"}]
