"""0.4.0's SQL surface for operations: prune's retention rules, retry_run,
the runner's presence (worker_start, worker_beat, jobledger.workers) and
jobledger.active_runs."""

from __future__ import annotations

import json
import threading
import time

import psycopg
import pytest

import dbtools


def _ago(db: psycopg.Connection, ago: str):
    return db.execute("SELECT now() - %s::interval AS t", (ago,)).fetchone()["t"]


def _finished(db, job: str, status: str, ago: str):
    return dbtools.make_run(db, job, status=status, attempt=1 if status != "cancelled" else 0,
                            finished_at=_ago(db, ago))


def _ids(db) -> set:
    return {r["id"] for r in db.execute("SELECT id FROM jobledger.run")}


def test_prune_ages_for_successes_and_failures_differ(db) -> None:
    dbtools.make_job(db, "a")
    ok_old = _finished(db, "a", "succeeded", "10 days")
    ok_new = _finished(db, "a", "succeeded", "1 day")
    failed_old = _finished(db, "a", "failed", "10 days")
    failed_older = _finished(db, "a", "failed", "40 days")
    cancelled_older = _finished(db, "a", "cancelled", "40 days")
    pending = dbtools.make_run(db, "a", created_at=_ago(db, "400 days"))
    n = db.execute("SELECT jobledger.prune(succeeded_older_than => '7 days', failed_older_than => '30 days') AS n"
                   ).fetchone()["n"]
    assert n == 3
    assert _ids(db) == {ok_new, failed_old, pending}
    # Only one rule: the other status is left alone.
    assert db.execute("SELECT jobledger.prune(succeeded_older_than => NULL, failed_older_than => '1 day') AS n").fetchone()["n"] == 1
    assert _ids(db) == {ok_new, pending}


def test_prune_keeps_the_newest_n_of_each_job(db) -> None:
    dbtools.make_job(db, "a")
    dbtools.make_job(db, "b")
    a_runs = [_finished(db, "a", status, f"{days} days")
              for days, status in [(1, "succeeded"), (2, "failed"), (3, "succeeded"), (4, "cancelled")]]
    b_runs = [_finished(db, "b", "succeeded", f"{days} days") for days in (1, 2)]
    running = dbtools.make_run(db, "a", created_at=_ago(db, "50 days"))
    dbtools.mark_running(db, running)
    pending = dbtools.make_run(db, "a")

    n = db.execute("SELECT jobledger.prune(NULL, NULL, keep_last => 2, job => 'a') AS n").fetchone()["n"]
    assert n == 2
    assert _ids(db) == {*a_runs[:2], *b_runs, running, pending}
    # Both rules at once count each run once.
    n = db.execute("SELECT jobledger.prune('36 hours', NULL, keep_last => 1) AS n").fetchone()["n"]
    assert n == 2  # b's second (age and cap) and a's second (cap)
    assert _ids(db) == {a_runs[0], b_runs[0], running, pending}
    assert db.execute("SELECT jobledger.prune(NULL, NULL, 0) AS n").fetchone()["n"] == 2
    assert _ids(db) == {running, pending}
    assert db.execute("SELECT count(*) AS n FROM jobledger.run_attempt a WHERE NOT EXISTS"
                      " (SELECT 1 FROM jobledger.run r WHERE r.id = a.run)").fetchone() == {"n": 0}


@pytest.mark.parametrize("call", [
    "jobledger.prune(NULL::interval, NULL::interval)",
    "jobledger.prune(succeeded_older_than => '-1 day', failed_older_than => NULL)",
    "jobledger.prune(NULL, NULL, -1)",
])
def test_prune_refuses_no_rule_or_a_bad_one(db, call) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue) as caught:
        db.execute(f"SELECT {call}")
    assert dbtools.category(caught.value) == "invalid_argument"


def test_prune_is_not_for_everyone(db, make_role, connect) -> None:
    nobody = connect(user=make_role("nobody"))
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        nobody.execute("SELECT jobledger.prune('1 day', '1 day')")


@pytest.fixture
def job(db) -> str:
    db.execute("CREATE TABLE public.out (n integer)")
    db.execute("SELECT jobledger.define_job('j', 'SELECT CAST({n} AS integer) AS n', 'out',"
               " params => '{\"n\": {\"type\": \"integer\"}}')")
    return "j"


def _submit(conn, job: str, n: int):
    return conn.execute("SELECT jobledger.submit_job(%s, %s, priority => 5) AS id",
                        (job, json.dumps({"n": n}))).fetchone()["id"]


def test_retry_run_submits_a_failed_run_again_once(db, job) -> None:
    run = _submit(db, job, 7)
    db.execute("SELECT jobledger.cancel_run(%s)", (run,))
    again = db.execute("SELECT jobledger.retry_run(%s) AS id", (run,)).fetchone()["id"]
    assert again != run
    row = dbtools.run_row(db, again)
    assert (row["status"], row["parameters"], row["priority"], row["job"]) == ("pending", {"n": 7}, 5, job)
    assert row["idempotency_key"] == f"retry of {run}"
    # Retrying the same run again is the same retry.
    assert db.execute("SELECT jobledger.retry_run(%s) AS id", (run,)).fetchone()["id"] == again
    assert db.execute("SELECT count(*) AS n FROM jobledger.run").fetchone() == {"n": 2}


def test_retry_run_refuses_unfinished_successful_and_unknown_runs(db, job) -> None:
    pending = _submit(db, job, 1)
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="is pending") as caught:
        db.execute("SELECT jobledger.retry_run(%s)", (pending,))
    assert dbtools.category(caught.value) == "invalid_run_state"
    with pytest.raises(psycopg.errors.UndefinedObject) as caught:
        db.execute("SELECT jobledger.retry_run(gen_random_uuid())")
    assert dbtools.category(caught.value) == "unknown_run"


def test_retry_run_of_a_run_another_role_cannot_see_is_unknown_to_it(db, job, make_role, connect) -> None:
    run = _submit(db, job, 1)
    db.execute("SELECT jobledger.cancel_run(%s)", (run,))
    stranger = connect(user=make_role("stranger"))
    with pytest.raises(psycopg.errors.UndefinedObject) as caught:
        stranger.execute("SELECT jobledger.retry_run(%s)", (run,))
    assert dbtools.category(caught.value) == "unknown_run"


def test_workers_view_follows_start_beats_and_exit(db, make_role, connect) -> None:
    runner_role = make_role("runner")
    db.execute(f"GRANT EXECUTE ON FUNCTION jobledger_internal.worker_start(text, text, integer, text, integer, interval),"
               f" jobledger_internal.worker_beat(text, integer, boolean) TO {runner_role}")
    runner = connect(user=runner_role)
    runner.execute("SELECT jobledger_internal.worker_start('w1', 'host1', 123, '0.4.0', 2, '2 seconds')")
    assert runner.execute("SELECT jobledger_internal.worker_beat('w1', 2) AS ok").fetchone() == {"ok": True}
    assert runner.execute("SELECT jobledger_internal.worker_beat('nobody', 0) AS ok").fetchone() == {"ok": False}

    reader = connect(user=make_role("reader"))  # everyone may look
    row = reader.execute("SELECT * FROM jobledger.workers").fetchone()
    assert (row["worker"], row["state"], row["hostname"], row["pid"], row["role"], row["runs_in_flight"],
            row["concurrency"]) == ("w1", "alive", "host1", 123, runner_role, 2, 2)
    # Silent for longer than its lease: lost.
    db.execute("UPDATE jobledger.worker SET heartbeat_at = now() - interval '3 seconds'")
    assert reader.execute("SELECT state FROM jobledger.workers").fetchone() == {"state": "lost"}
    runner.execute("SELECT jobledger_internal.worker_beat('w1', 0, stopped => true)")
    row = reader.execute("SELECT state, stopped_at FROM jobledger.workers").fetchone()
    assert row["state"] == "stopped" and row["stopped_at"] is not None
    # Starting again renews the row.
    runner.execute("SELECT jobledger_internal.worker_start('w1', 'host2', 456, '0.4.0', 1, '1 minute')")
    assert reader.execute("SELECT state, hostname FROM jobledger.workers").fetchone() == {
        "state": "alive", "hostname": "host2"}
    # Only runners write it.
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        reader.execute("SELECT jobledger_internal.worker_beat('w1', 0)")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        reader.execute("UPDATE jobledger.worker SET pid = 1")


def test_workers_not_seen_for_a_week_are_forgotten(db) -> None:
    db.execute("SELECT jobledger_internal.worker_start('old', 'h', 1, 'v', 1, '1 minute')")
    db.execute("UPDATE jobledger.worker SET heartbeat_at = now() - interval '8 days'")
    db.execute("SELECT jobledger_internal.worker_start('new', 'h', 2, 'v', 1, '1 minute')")
    assert [r["worker"] for r in db.execute("SELECT worker FROM jobledger.workers")] == ["new"]


def test_active_runs_shows_the_backend_of_a_running_run(db, job, connect) -> None:
    run = _submit(db, job, 1)
    _submit(db, job, 2)  # pending: not active
    tag = db.execute("SELECT jobledger_internal.run_application_name(%s) AS tag", (run,)).fetchone()["tag"]
    assert str(run) not in tag  # every role can read application_name: it must not name the run
    backend = connect(application_name=tag)
    dbtools.mark_running(db, run, backend=backend)
    locker = connect()
    locker.execute("BEGIN")
    locker.execute("LOCK TABLE public.out")
    pid = backend.info.backend_pid
    waiting = connect()  # a second connection to watch the first one wait
    blocked = threading.Thread(target=lambda: backend.execute("SELECT count(*) FROM public.out"))
    blocked.start()
    try:
        deadline = time.monotonic() + 30
        while True:
            rows = waiting.execute("SELECT * FROM jobledger.active_runs").fetchall()
            if rows and rows[0]["wait_event_type"] == "Lock":
                break
            assert time.monotonic() < deadline, rows
            time.sleep(0.05)
        [row] = rows
        assert (row["id"], row["job"], row["backend_pid"], row["backend_state"], row["wait_event"]) == (
            run, job, pid, "active", "relation")
        assert row["blocked_by"] == [locker.info.backend_pid]
        assert row["query_runtime"] is not None and row["running_for"] is not None
    finally:
        locker.execute("ROLLBACK")
        blocked.join()
