"""Concurrency control and pause through SQL: set_max_running, pause_job,
resume_job, and what claim_runs then takes (docs/runner.md, "Concurrency and
pause").  The same with real runner processes: tests/runner/test_limits_with_runners.py."""

from __future__ import annotations

import json
import threading
from typing import Any

import psycopg
import pytest
from psycopg import sql

import dbtools


def claim(conn: psycopg.Connection, worker: str = "w", max_runs: int = 10) -> list[dict[str, Any]]:
    return conn.execute("SELECT * FROM jobledger_internal.claim_runs(%s, %s)", (worker, max_runs)).fetchall()


def define(conn: psycopg.Connection, name: str, destination: str = "public.dest", mode: str = "append") -> str:
    conn.execute("SELECT jobledger.define_job(%s, 'SELECT 1 AS x', %s, %s)", (name, destination, mode))
    return name


def submit(conn: psycopg.Connection, job: str, n: int = 1) -> list[Any]:
    return [conn.execute("SELECT jobledger.submit_job(%s, %s) AS id", (job, json.dumps({}))).fetchone()["id"]
            for _ in range(n)]


def running(conn: psycopg.Connection, job: str) -> int:
    return conn.execute("SELECT count(*) AS n FROM jobledger.run WHERE job = %s AND status = 'running'",
                        (job,)).fetchone()["n"]


def finish(conn: psycopg.Connection, run: Any) -> None:
    """The run succeeds, as a runner's complete_run would have it."""
    conn.execute("UPDATE jobledger.run SET status = 'succeeded', finished_at = clock_timestamp() WHERE id = %s",
                 (run,))


@pytest.fixture
def dest(db: psycopg.Connection) -> str:
    db.execute("CREATE TABLE public.dest (x integer PRIMARY KEY)")
    return "public.dest"


# ---- max_running ----------------------------------------------------------------


def test_max_running_caps_what_claims_take(db, dest) -> None:
    define(db, "capped")
    db.execute("SELECT jobledger.set_max_running('capped', 2)")
    submit(db, "capped", 5)
    assert db.execute("SELECT max_running FROM jobledger.job WHERE name = 'capped'").fetchone() == {"max_running": 2}

    first = claim(db)
    assert len(first) == 2 and claim(db) == []
    finish(db, first[0]["id"])
    assert len(claim(db)) == 1 and running(db, "capped") == 2
    # Lifting the limit frees the rest.
    db.execute("SELECT jobledger.set_max_running('capped', NULL)")
    assert len(claim(db)) == 2 and running(db, "capped") == 4


def test_a_capped_job_does_not_hold_back_others(db, dest) -> None:
    define(db, "capped")
    define(db, "free")
    db.execute("SELECT jobledger.set_max_running('capped', 1)")
    capped = submit(db, "capped", 3)
    db.execute("SELECT jobledger.submit_job('free', '{}', priority => -1)")  # behind every capped run
    assert sorted(r["job"] for r in claim(db)) == ["capped", "free"]
    assert dbtools.run_row(db, capped[0])["status"] == "running"


def test_max_running_holds_across_concurrent_claimers(db, dest, connect) -> None:
    define(db, "capped")
    db.execute("SELECT jobledger.set_max_running('capped', 3)")
    submit(db, "capped", 40)
    claimers = [connect() for _ in range(8)]
    start = threading.Barrier(len(claimers))
    taken: list[int] = []

    def work(conn: psycopg.Connection) -> None:
        start.wait()
        for _ in range(5):
            taken.append(len(claim(conn, max_runs=2)))

    threads = [threading.Thread(target=work, args=(c,)) for c in claimers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(taken) == 3 and running(db, "capped") == 3


def test_lowering_the_limit_lets_running_runs_finish(db, dest) -> None:
    define(db, "capped")
    submit(db, "capped", 4)
    assert len(claim(db, max_runs=3)) == 3
    db.execute("SELECT jobledger.set_max_running('capped', 1)")
    assert running(db, "capped") == 3 and claim(db) == []


@pytest.mark.parametrize("bad", [0, -1])
def test_max_running_must_be_positive(db, dest, bad) -> None:
    define(db, "capped")
    with pytest.raises(psycopg.errors.InvalidParameterValue) as caught:
        db.execute("SELECT jobledger.set_max_running('capped', %s)", (bad,))
    assert dbtools.category(caught.value) == "invalid_argument"
    assert db.execute("SELECT max_running FROM jobledger.job WHERE name = 'capped'").fetchone() == {"max_running": None}


# ---- one overwrite or merge run per destination ------------------------------------


def test_overwrite_and_merge_runs_of_one_destination_run_one_at_a_time(db, dest) -> None:
    db.execute("CREATE TABLE public.other (x integer PRIMARY KEY)")
    define(db, "ow", mode="overwrite")
    define(db, "mg", mode="merge")
    define(db, "ow_other", destination="public.other", mode="overwrite")
    define(db, "app")
    submit(db, "ow", 2)
    submit(db, "mg", 2)
    submit(db, "ow_other", 2)
    submit(db, "app", 2)
    # One writer of public.dest, one of public.other, and every append run.
    first = claim(db)
    assert sorted(r["job"] for r in first) == ["app", "app", "ow", "ow_other"]
    assert claim(db) == []
    finish(db, next(r["id"] for r in first if r["job"] == "ow"))
    [second] = claim(db)
    assert second["job"] == "ow"  # submitted before the merge runs
    finish(db, second["id"])
    assert [r["job"] for r in claim(db)] == ["mg"]


# ---- pause ----------------------------------------------------------------------------


def test_a_paused_job_queues_but_is_not_claimed(db, dest, connect) -> None:
    define(db, "nap")
    define(db, "other")
    [before] = submit(db, "nap")
    listener = connect()
    listener.execute("LISTEN jobledger_runs")
    assert db.execute("SELECT jobledger.pause_job('nap') AS paused").fetchone() == {"paused": True}
    assert db.execute("SELECT jobledger.pause_job('nap') AS paused").fetchone() == {"paused": False}
    row = db.execute("SELECT paused_at IS NOT NULL AS paused, paused_by FROM jobledger.job WHERE name = 'nap'"
                     ).fetchone()
    assert row == {"paused": True, "paused_by": "postgres"}
    [after] = submit(db, "nap")  # submits still queue
    submit(db, "other")
    assert [r["job"] for r in claim(db)] == ["other"]
    assert {dbtools.run_row(db, r)["status"] for r in (before, after)} == {"pending"}

    list(listener.notifies(timeout=0.1))  # the submits' notifications
    assert db.execute("SELECT jobledger.resume_job('nap') AS resumed").fetchone() == {"resumed": True}
    assert [n.payload for n in listener.notifies(timeout=2, stop_after=1)] == [""]  # runners wake, told no job name
    assert db.execute("SELECT jobledger.resume_job('nap') AS resumed").fetchone() == {"resumed": False}
    assert sorted(r["id"] for r in claim(db)) == sorted([before, after])


def test_pausing_leaves_running_runs_alone(db, dest) -> None:
    define(db, "nap")
    [run] = submit(db, "nap")
    claim(db)
    db.execute("SELECT jobledger.pause_job('nap')")
    assert dbtools.run_row(db, run)["status"] == "running"


# ---- who may -----------------------------------------------------------------------------


@pytest.mark.parametrize("call", ["set_max_running(%s, 1)", "pause_job(%s)", "resume_job(%s)"])
def test_only_the_owner_and_its_members_may(db, dest, connect, make_role, call) -> None:
    owner = make_role("owner")
    member = make_role("member")
    grantee = make_role("grantee")
    stranger = make_role("stranger")
    db.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(owner), sql.Identifier(member)))
    db.execute(sql.SQL("GRANT ALL ON public.dest TO {}").format(sql.Identifier(owner)))
    as_owner = connect(user=owner)
    define(as_owner, "theirs")
    as_owner.execute("SELECT jobledger.grant_job('theirs', %s)", (grantee,))
    statement = "SELECT jobledger." + call

    connect(user=member).execute(statement, ("theirs",))
    as_owner.execute(statement, ("theirs",))
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as caught:
        connect(user=grantee).execute(statement, ("theirs",))
    assert dbtools.category(caught.value) == "permission_denied"
    # A job the caller cannot see is absent, whatever its owner.
    with pytest.raises(psycopg.errors.UndefinedObject) as caught:
        connect(user=stranger).execute(statement, ("theirs",))
    assert dbtools.category(caught.value) == "unknown_job"
    with pytest.raises(psycopg.errors.UndefinedObject) as caught:
        as_owner.execute(statement, ("nobody's",))
    assert dbtools.category(caught.value) == "unknown_job"
