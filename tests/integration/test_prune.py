"""prune: only terminal runs older than the cutoff go, with their attempts."""

from __future__ import annotations

import psycopg
import pytest

import dbtools


def _finished(db: psycopg.Connection, ago: str):
    return db.execute("SELECT now() - %s::interval AS t", (ago,)).fetchone()["t"]


def test_prune_removes_only_old_terminal_runs(db) -> None:
    dbtools.make_job(db, "a")
    dbtools.make_job(db, "b")
    old = _finished(db, "40 days")
    recent = _finished(db, "1 hour")
    gone = {
        dbtools.make_run(db, "a", status="succeeded", attempt=1, finished_at=old),
        dbtools.make_run(db, "a", status="failed", attempt=1, finished_at=old),
        dbtools.make_run(db, "a", status="cancelled", finished_at=old),
    }
    for run in list(gone)[:2]:
        db.execute("INSERT INTO jobledger.run_attempt (run, attempt, status, started_at, finished_at)"
                   " VALUES (%s, 1, 'succeeded', %s, %s)", (run, old, old))
    kept = {
        dbtools.make_run(db, "a", status="succeeded", attempt=1, finished_at=recent),
        dbtools.make_run(db, "a", created_at=old),  # pending, however old
        dbtools.make_run(db, "b", status="failed", attempt=1, finished_at=old),  # other job
    }
    running = dbtools.make_run(db, "a", created_at=old)
    dbtools.mark_running(db, running, heartbeat_age="40 days")
    kept.add(running)

    assert db.execute("SELECT jobledger.prune('30 days', job => 'a') AS n").fetchone() == {"n": 3}
    left = {r["id"] for r in db.execute("SELECT id FROM jobledger.run")}
    assert left == kept
    orphans = db.execute("SELECT count(*) AS n FROM jobledger.run_attempt a"
                         " WHERE NOT EXISTS (SELECT 1 FROM jobledger.run r WHERE r.id = a.run)").fetchone()
    assert orphans == {"n": 0}

    # Without a job filter the other job's old run goes too.
    assert db.execute("SELECT jobledger.prune('30 days') AS n").fetchone() == {"n": 1}
    assert db.execute("SELECT jobledger.prune('0 seconds') AS n").fetchone() == {"n": 1}
    statuses = sorted(r["status"] for r in db.execute("SELECT status::text FROM jobledger.run"))
    assert statuses == ["pending", "running"]


@pytest.mark.parametrize("age", ["-1 day", None])
def test_prune_refuses_a_bad_age(db, age) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue) as caught:
        db.execute("SELECT jobledger.prune(%s::interval)", (age,))
    assert dbtools.category(caught.value) == "invalid_argument"
