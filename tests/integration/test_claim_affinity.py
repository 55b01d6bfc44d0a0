"""Claim affinity through SQL: claim_runs(worker, max_runs, prefer_job) takes
prefer_job's next run first at equal priority, and nothing else changes
(docs/runner.md, "Affinity").  With real runners:
tests/runner/test_affinity_with_runners.py."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

import dbtools


def claim(conn: psycopg.Connection, prefer: str | None, max_runs: int = 1) -> list[Any]:
    """The ids claim_runs took, in the order it returns them."""
    return [r["id"] for r in conn.execute("SELECT * FROM jobledger_internal.claim_runs('w', %s, %s)",
                                          (max_runs, prefer)).fetchall()]


def submit(conn: psycopg.Connection, job: str, **options: Any) -> Any:
    extra = "".join(f", {key} => %({key})s" for key in options)
    return conn.execute(f"SELECT jobledger.submit_job(%(job)s, %(params)s{extra}) AS id",
                        {"job": job, "params": json.dumps({}), **options}).fetchone()["id"]


@pytest.fixture
def jobs(db: psycopg.Connection) -> tuple[str, str]:
    db.execute("CREATE TABLE public.dest (x integer)")
    for name in ("a", "b"):
        db.execute("SELECT jobledger.define_job(%s, 'SELECT 1 AS x', 'public.dest')", (name,))
    return "a", "b"


def test_prefer_job_takes_its_next_run_first_at_equal_priority(db, jobs) -> None:
    a1, b1, a2, b2 = (submit(db, j) for j in ("a", "b", "a", "b"))
    assert claim(db, "b") == [b1]  # over a1, older, of the same priority
    assert claim(db, "b") == [b2]
    assert claim(db, "b") == [a1]  # none of b left: the oldest
    assert claim(db, None) == [a2]
    assert {r["status"] for r in db.execute("SELECT status FROM jobledger.run").fetchall()} == {"running"}


def test_without_prefer_job_the_oldest_comes_first(db, jobs) -> None:
    a1, b1 = submit(db, "a"), submit(db, "b")
    assert claim(db, None) == [a1]
    # The two-argument form (runners before 0.6.0) claims the same way.
    assert [r["id"] for r in db.execute("SELECT * FROM jobledger_internal.claim_runs('w', 1)").fetchall()] == [b1]


def test_never_over_a_higher_priority(db, jobs) -> None:
    b1 = submit(db, "b")
    a1 = submit(db, "a", priority=5)
    assert claim(db, "b") == [a1]
    assert claim(db, "b") == [b1]


def test_a_lower_priority_run_of_the_job_is_not_preferred(db, jobs) -> None:
    b_low = submit(db, "b", priority=-1)
    a1 = submit(db, "a")
    b1 = submit(db, "b")
    assert claim(db, "b") == [b1]  # its best run, at the best priority
    assert claim(db, "b") == [a1]  # b_low is below a1's priority
    assert claim(db, "b") == [b_low]


def test_a_run_not_due_yet_is_not_preferred(db, jobs) -> None:
    a1 = submit(db, "a")
    later = submit(db, "b")
    db.execute("UPDATE jobledger.run SET run_after = now() + interval '1 hour' WHERE id = %s", (later,))
    assert claim(db, "b") == [a1]
    assert claim(db, "b") == []


def test_a_paused_job_is_not_preferred(db, jobs) -> None:
    a1, b1 = submit(db, "a"), submit(db, "b")
    db.execute("SELECT jobledger.pause_job('b')")
    assert claim(db, "b") == [a1]
    assert claim(db, "b") == []
    db.execute("SELECT jobledger.resume_job('b')")
    assert claim(db, "a") == [b1]


def test_a_full_job_is_not_preferred(db, jobs) -> None:
    db.execute("SELECT jobledger.set_max_running('b', 1)")
    b1, a1, b2 = submit(db, "b"), submit(db, "a"), submit(db, "b")
    assert claim(db, "b") == [b1]
    assert claim(db, "b") == [a1]  # b has its one run running
    assert claim(db, "b") == []
    assert dbtools.run_row(db, b2)["status"] == "pending"


def test_one_writer_per_destination_holds(db, jobs) -> None:
    db.execute("CREATE TABLE public.snap (x integer)")
    db.execute("SELECT jobledger.define_job('snap', 'SELECT 1 AS x', 'public.snap', 'overwrite')")
    db.execute("SELECT jobledger.define_job('snap2', 'SELECT 2 AS x', 'public.snap', 'overwrite')")
    s1, a1, s2 = submit(db, "snap"), submit(db, "a"), submit(db, "snap2")
    assert claim(db, None) == [s1]
    assert claim(db, "snap2") == [a1]  # public.snap has its writer: s2 waits
    assert dbtools.run_row(db, s2)["status"] == "pending"


def test_several_runs_at_once_prefer_first_and_take_nothing_twice(db, jobs) -> None:
    a1, a2, b1, a3 = (submit(db, j) for j in ("a", "a", "b", "a"))
    taken = claim(db, "b", max_runs=3)
    # Returned in queue order; what was taken: b1, then the oldest two.
    assert sorted(map(str, taken)) == sorted(map(str, [a1, a2, b1]))
    assert dbtools.run_row(db, a3)["status"] == "pending"
    assert db.execute("SELECT count(*) AS n FROM jobledger.run_attempt").fetchone()["n"] == 3


def test_an_unknown_job_changes_nothing(db, jobs) -> None:
    a1 = submit(db, "a")
    assert claim(db, "no such job") == [a1]
