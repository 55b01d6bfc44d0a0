"""The ledger's own rules, enforced by the database whoever writes to it."""

from __future__ import annotations

import datetime

import psycopg
import pytest

import dbtools


def test_job_versions_are_immutable(db) -> None:
    dbtools.make_job(db)
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="immutable"):
        db.execute("UPDATE jobledger.job_version SET query = 'SELECT 2' WHERE job = 'job1'")
    assert db.execute("SELECT query FROM jobledger.job_version").fetchone() == {"query": "SELECT 1 AS x"}


def test_idempotency_key_is_unique_per_job(db) -> None:
    dbtools.make_job(db, "a")
    dbtools.make_job(db, "b")
    dbtools.make_run(db, "a", idempotency_key="k1")
    dbtools.make_run(db, "b", idempotency_key="k1")
    dbtools.make_run(db, "a")
    dbtools.make_run(db, "a")  # no key: any number
    with pytest.raises(psycopg.errors.UniqueViolation):
        dbtools.make_run(db, "a", idempotency_key="k1")


@pytest.mark.parametrize("columns", [
    {"status": "succeeded"},  # terminal without finished_at
    {"status": "running"},  # running without worker or start
    {"progress": 101},
    {"attempt": 4, "max_attempts": 3},
    {"error_sqlstate": "oops"},
])
def test_inconsistent_runs_are_refused(db, columns) -> None:
    dbtools.make_job(db)
    with pytest.raises(psycopg.errors.CheckViolation):
        dbtools.make_run(db, **columns)


def test_run_needs_an_existing_job_version(db) -> None:
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        dbtools.make_run(db, "nope")


def test_runs_view_shows_durations(db) -> None:
    dbtools.make_job(db)
    t0 = datetime.datetime(2026, 11, 1, 12, 0, tzinfo=datetime.timezone.utc)
    run = dbtools.make_run(db, status="succeeded", attempt=1, created_at=t0,
                           started_at=t0 + datetime.timedelta(seconds=2),
                           finished_at=t0 + datetime.timedelta(seconds=7), rows_written=10,
                           idempotency_key="k1")
    row = db.execute("SELECT * FROM jobledger.runs WHERE id = %s", (run,)).fetchone()
    assert row["rendered_sql"] == "SELECT 1 AS x" and row["idempotency_key"] == "k1"
    assert row["error_sqlstate"] is None
    assert row["duration"] == datetime.timedelta(seconds=5)
    assert row["queued_for"] == datetime.timedelta(seconds=2)
    assert row["status"] == "succeeded" and row["rows_written"] == 10 and row["version"] == 1


def test_job_stats_counts_and_percentiles(db) -> None:
    dbtools.make_job(db)
    dbtools.make_job(db, "idle")
    t0 = datetime.datetime(2026, 11, 1, tzinfo=datetime.timezone.utc)
    for seconds in range(1, 11):  # durations 1..10 s
        dbtools.make_run(db, status="succeeded", attempt=1, started_at=t0,
                         finished_at=t0 + datetime.timedelta(seconds=seconds))
    dbtools.make_run(db, status="failed", attempt=1, started_at=t0, finished_at=t0)
    dbtools.make_run(db)
    stats = {r["job"]: r for r in db.execute("SELECT * FROM jobledger.job_stats")}
    job1 = stats["job1"]
    assert (job1["runs"], job1["pending"], job1["running"], job1["succeeded"], job1["failed"],
            job1["cancelled"]) == (12, 1, 0, 10, 1, 0)
    assert job1["last_success"] == t0 + datetime.timedelta(seconds=10)
    assert job1["p50_duration"] == datetime.timedelta(seconds=5.5)
    assert job1["p95_duration"] == datetime.timedelta(seconds=9.55)
    assert stats["idle"]["runs"] == 0 and stats["idle"]["p50_duration"] is None
