"""reconcile_orphaned: runs whose runner is gone go back to pending, or fail."""

from __future__ import annotations

import concurrent.futures

import psycopg
import pytest

import dbtools


def _terminate(db: psycopg.Connection, backend: psycopg.Connection) -> None:
    pid = backend.info.backend_pid
    # The timeout form waits until the backend has really exited.
    assert db.execute("SELECT pg_terminate_backend(%s, 10000) AS ok", (pid,)).fetchone() == {"ok": True}


def test_run_of_a_terminated_backend_goes_back_to_pending(db, connect) -> None:
    dbtools.make_job(db, max_attempts=3)
    run = dbtools.make_run(db, max_attempts=3)
    runner = connect()
    dbtools.mark_running(db, run, backend=runner)
    assert db.execute("SELECT jobledger.reconcile_orphaned() AS n").fetchone() == {"n": 0}

    _terminate(db, runner)
    assert db.execute("SELECT jobledger.reconcile_orphaned() AS n").fetchone() == {"n": 1}

    row = dbtools.run_row(db, run)
    assert row["status"] == "pending"
    assert row["attempt"] == 1
    assert row["worker"] is None and row["backend_pid"] is None and row["finished_at"] is None
    assert row["error"] is None
    [attempt] = dbtools.attempts(db, run)
    assert attempt["status"] == "failed" and attempt["error"] == "runner lost"
    assert attempt["finished_at"] is not None
    # Runnable at once: its transaction rolled back with the backend.
    assert db.execute("SELECT run_after <= now() AS due FROM jobledger.run WHERE id = %s",
                      (run,)).fetchone() == {"due": True}


def test_run_without_attempts_left_fails_with_the_reason(db, connect) -> None:
    dbtools.make_job(db)
    run = dbtools.make_run(db, max_attempts=2, attempt=1)
    runner = connect()
    dbtools.mark_running(db, run, backend=runner, attempt=2)
    _terminate(db, runner)
    assert db.execute("SELECT jobledger.reconcile_orphaned('runner vanished') AS n").fetchone() == {"n": 1}

    row = dbtools.run_row(db, run)
    assert row["status"] == "failed"
    assert row["error"] == "runner vanished" and row["error_category"] == "runner_lost"
    assert row["finished_at"] is not None
    assert [a["status"] for a in dbtools.attempts(db, run)] == ["failed"]


def test_live_backend_with_fresh_heartbeat_is_left_alone(db, connect) -> None:
    dbtools.make_job(db)
    run = dbtools.make_run(db)
    dbtools.mark_running(db, run, backend=connect())
    before = dbtools.run_row(db, run)
    assert db.execute("SELECT jobledger.reconcile_orphaned() AS n").fetchone() == {"n": 0}
    assert dbtools.run_row(db, run) == before
    assert [a["status"] for a in dbtools.attempts(db, run)] == ["running"]


def test_heartbeat_older_than_the_lease_is_recovered(db, connect) -> None:
    dbtools.make_job(db)
    run = dbtools.make_run(db)
    dbtools.mark_running(db, run, backend=connect(), heartbeat_age="10 minutes")
    # A longer lease (argument, then setting) keeps it; the default takes it.
    assert db.execute("SELECT jobledger.reconcile_orphaned(lease => '1 hour') AS n").fetchone() == {"n": 0}
    db.execute("SET jobledger.lease = '20 minutes'")
    assert db.execute("SELECT jobledger.reconcile_orphaned() AS n").fetchone() == {"n": 0}
    db.execute("RESET jobledger.lease")
    assert db.execute("SELECT jobledger.reconcile_orphaned() AS n").fetchone() == {"n": 1}
    assert dbtools.run_row(db, run)["status"] == "pending"


def test_reused_pid_with_another_backend_start_counts_as_gone(db, connect) -> None:
    dbtools.make_job(db)
    run = dbtools.make_run(db)
    runner = connect()
    dbtools.mark_running(db, run, backend=runner)
    db.execute("UPDATE jobledger.run SET backend_start = backend_start - interval '1 hour' WHERE id = %s",
               (run,))
    assert db.execute("SELECT jobledger.reconcile_orphaned() AS n").fetchone() == {"n": 1}


def test_pending_and_terminal_runs_are_untouched(db, connect) -> None:
    dbtools.make_job(db)
    old = "now() - interval '2 days'"
    runs = [
        dbtools.make_run(db),
        dbtools.make_run(db, status="succeeded", attempt=1, finished_at=db.execute(f"SELECT {old} AS t").fetchone()["t"]),
        dbtools.make_run(db, status="failed", attempt=1, finished_at=db.execute(f"SELECT {old} AS t").fetchone()["t"]),
        dbtools.make_run(db, status="cancelled", finished_at=db.execute(f"SELECT {old} AS t").fetchone()["t"]),
    ]
    before = [dbtools.run_row(db, r) for r in runs]
    assert db.execute("SELECT jobledger.reconcile_orphaned(lease => '1 second') AS n").fetchone() == {"n": 0}
    assert [dbtools.run_row(db, r) for r in runs] == before


def test_concurrent_reconcilers_change_each_run_once(db, connect) -> None:
    dbtools.make_job(db)
    runners = [connect() for _ in range(4)]
    runs = []
    for i in range(40):
        run = dbtools.make_run(db)
        dbtools.mark_running(db, run, backend=runners[i % 4])
        runs.append(run)
    for runner in runners:
        _terminate(db, runner)

    callers = [connect() for _ in range(4)]
    with concurrent.futures.ThreadPoolExecutor(len(callers)) as pool:
        counts = list(pool.map(
            lambda c: c.execute("SELECT jobledger.reconcile_orphaned() AS n").fetchone()["n"], callers))
    assert sum(counts) == len(runs)
    assert {dbtools.run_row(db, r)["status"] for r in runs} == {"pending"}
    for run in runs:
        assert [a["status"] for a in dbtools.attempts(db, run)] == ["failed"]


@pytest.mark.parametrize("call", [
    "jobledger.reconcile_orphaned(lease => '0 seconds')",
    "jobledger.reconcile_orphaned(lease => '-1 minute')",
    "jobledger.reconcile_orphaned(reason => '')",
    "jobledger.reconcile_orphaned(reason => NULL)",
])
def test_bad_arguments_are_refused(db, call: str) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue) as caught:
        db.execute(f"SELECT {call}")
    assert dbtools.category(caught.value) == "invalid_argument"
