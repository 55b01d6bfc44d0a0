"""Every change of a run's status is announced on jobledger_run_state when it
commits; client.wait LISTENs for it and polls where notifications cannot
reach it."""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

import psycopg
import pytest

import dbtools
import runnertools
from jobledger import client


def _heard(conn: psycopg.Connection, seconds: float = 0.5) -> list[tuple[str, dict[str, Any] | str]]:
    found: list[tuple[str, dict[str, Any] | str]] = []
    for note in conn.notifies(timeout=seconds):
        found.append((note.channel, json.loads(note.payload) if note.payload.startswith("{") else note.payload))
    return found


@pytest.fixture
def listener(connect: Any) -> psycopg.Connection:
    conn = connect()
    conn.execute("LISTEN jobledger_run_state")
    conn.execute("LISTEN jobledger_runs")
    return conn


def test_each_committed_change_is_announced_without_the_job(db: psycopg.Connection, listener: psycopg.Connection
                                                              ) -> None:
    dbtools.make_job(db)
    run = dbtools.make_run(db)
    # A change rolled back is never announced.
    with pytest.raises(RuntimeError), db.transaction():
        db.execute("SELECT jobledger.cancel_run(%s)", (run,))
        raise RuntimeError("roll back")
    assert _heard(listener) == []
    db.execute("SELECT jobledger.cancel_run(%s)", (run,))
    assert _heard(listener) == [("jobledger_run_state", {"run": str(run), "status": "cancelled", "attempt": 0})]
    # A status written again unchanged is no change.
    db.execute("UPDATE jobledger.run SET status = 'cancelled' WHERE id = %s", (run,))
    assert _heard(listener) == []


def test_a_run_is_heard_through_its_states_and_a_submit_names_no_job(
        db: psycopg.Connection, listener: psycopg.Connection, start_runner: Any) -> None:
    db.execute("CREATE TABLE public.landed (n integer)")
    runnertools.define(db, "land", "SELECT {n}::integer AS n", "public.landed", params={"n": {"type": "integer"}})
    run = runnertools.submit(db, "land", {"n": 1})
    # Runners are woken without learning which job: any role may LISTEN.
    assert _heard(listener) == [("jobledger_runs", "")]
    runner = start_runner("--drain")
    assert runner.wait() == 0, runner.log()
    states = [(payload["status"], payload["attempt"]) for channel, payload in _heard(listener)
              if channel == "jobledger_run_state" and payload["run"] == str(run)]
    assert states == [("running", 1), ("succeeded", 1)]


def test_announced_returns_on_its_runs_change_only(db: psycopg.Connection, connect: Any) -> None:
    dbtools.make_job(db)
    mine, other = dbtools.make_run(db), dbtools.make_run(db)
    conn = connect()
    assert client._listen(conn)
    done = threading.Event()

    def waiting() -> None:
        client._announced(conn, str(mine), 60.0)
        done.set()

    thread = threading.Thread(target=waiting, daemon=True)
    thread.start()
    db.execute("SELECT jobledger.cancel_run(%s)", (other,))
    assert not done.wait(1.0)  # another run's change does not end it
    db.execute("SELECT jobledger.cancel_run(%s)", (mine,))
    assert done.wait(20.0)  # its own does, long before the 60 s pause
    thread.join()


@pytest.mark.parametrize("autocommit", [True, False])
def test_wait_ends_with_the_run_listening_or_polling(db: psycopg.Connection, connect: Any,
                                                   autocommit: bool) -> None:
    dbtools.make_job(db)
    run = dbtools.make_run(db)
    conn = connect()
    conn.autocommit = autocommit  # not in autocommit: no notifications, wait polls
    timer = threading.Timer(0.3, lambda: connect().execute("SELECT jobledger.cancel_run(%s)", (run,)))
    timer.start()
    try:
        row = client.wait(conn, run, timeout=30, poll_interval=0.2)
    finally:
        timer.join()
    assert row["status"] == "cancelled"
    if autocommit:
        # wait leaves the caller's connection listening to nothing.
        assert conn.execute("SELECT count(*) AS n FROM pg_listening_channels()").fetchone() == {"n": 0}


def test_wait_by_dsn_goes_on_polling_when_its_connection_is_lost(db: psycopg.Connection, connect: Any) -> None:
    dbtools.make_job(db)
    run = dbtools.make_run(db)
    tag = f"jl_wait_{uuid.uuid4().hex[:8]}"
    admin = connect()

    def kill_then_cancel() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            killed = admin.execute("SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity"
                                   " WHERE application_name = %s", (tag,)).fetchone()["n"]
            if killed:
                break
            time.sleep(0.05)
        time.sleep(0.3)
        admin.execute("SELECT jobledger.cancel_run(%s)", (run,))

    thread = threading.Thread(target=kill_then_cancel, daemon=True)
    thread.start()
    dsn = runnertools.dsn(db) + f" application_name={tag}"
    row = client.wait(dsn, run, timeout=30, poll_interval=0.2)
    thread.join()
    assert row["status"] == "cancelled"
