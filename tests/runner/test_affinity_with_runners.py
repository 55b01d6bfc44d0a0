"""Claim affinity with real runner processes (docs/runner.md, "Affinity"): an
executor that just ran job J takes J's next run first at equal priority,
never over a higher priority, and pause and max_running still hold.  The
order is read from the ledger (started_at), not from timing in the test."""

from __future__ import annotations

import psycopg

import runnertools


def order(conn: psycopg.Connection) -> list[str]:
    """job:n of every run, in the order they were started."""
    return [f"{r['job']}:{r['n']}" for r in conn.execute(
        "SELECT job, parameters->>'n' AS n FROM jobledger.run ORDER BY started_at").fetchall()]


def three_jobs(conn: psycopg.Connection) -> None:
    for job in ("a", "b", "c"):
        runnertools.define(conn, job, runnertools.SLEEPY, "landed", params=runnertools.SLEEPY_PARAMS)


def test_an_executor_drains_the_job_it_ran(db, start_runner, sleepy) -> None:
    three_jobs(db)
    for n in (1, 2, 3):
        for job in ("a", "b", "c"):
            runnertools.submit(db, job, {"n": n})
    runner = start_runner("--drain", "--concurrency", "1")
    assert runner.wait() == 0, runner.log()
    assert order(db) == ["a:1", "a:2", "a:3", "b:1", "b:2", "b:3", "c:1", "c:2", "c:3"]


def test_no_affinity_takes_the_oldest(db, start_runner, sleepy) -> None:
    three_jobs(db)
    for n in (1, 2):
        for job in ("a", "b", "c"):
            runnertools.submit(db, job, {"n": n})
    runner = start_runner("--drain", "--concurrency", "1", "--no-affinity")
    assert runner.wait() == 0, runner.log()
    assert order(db) == ["a:1", "b:1", "c:1", "a:2", "b:2", "c:2"]


def test_a_higher_priority_run_comes_first(db, start_runner, sleepy) -> None:
    three_jobs(db)
    runnertools.submit(db, "a", {"n": 1}, priority=5)
    runnertools.submit(db, "b", {"n": 1}, priority=5)
    runnertools.submit(db, "a", {"n": 2})
    runnertools.submit(db, "b", {"n": 2})
    runner = start_runner("--drain", "--concurrency", "1")
    assert runner.wait() == 0, runner.log()
    # After a:1, b:1 (priority 5) before a:2; after b:1, b:2 before the older a:2.
    assert order(db) == ["a:1", "b:1", "b:2", "a:2"]


def test_a_job_paused_while_its_run_runs_is_not_preferred(db, start_runner, sleepy) -> None:
    three_jobs(db)
    first = runnertools.submit(db, "a", {"n": 1, "sleep": 1})
    later = [runnertools.submit(db, "a", {"n": n}) for n in (2, 3)]
    others = [runnertools.submit(db, "b", {"n": n}) for n in (1, 2)]
    runner = start_runner("--concurrency", "1", "--poll-interval", "0.2")
    runnertools.wait_until(lambda: runnertools.executing(db, first), what="a:1 to execute")
    db.execute("SELECT jobledger.pause_job('a')")
    for run in others:
        runnertools.wait_status(db, run, "succeeded")
    assert {runnertools.status(db, run) for run in later} == {"pending"}
    db.execute("SELECT jobledger.resume_job('a')")
    for run in later:
        runnertools.wait_status(db, run, "succeeded")
    assert runner.stop() == 0, runner.log()
    assert order(db) == ["a:1", "b:1", "b:2", "a:2", "a:3"]


def test_max_running_holds_with_affinity(db, start_runner, sleepy) -> None:
    three_jobs(db)
    db.execute("SELECT jobledger.set_max_running('a', 1)")
    db.execute("SELECT count(jobledger.submit_job(j, jsonb_build_object('n', g, 'sleep', 0.2)))"
               "  FROM generate_series(1, 6) AS g, unnest(ARRAY['a', 'b']) AS j")
    runner = start_runner("--drain", "--concurrency", "3")
    assert runner.wait() == 0, runner.log()
    # Every executor that ran a prefers a; still never two of a at once.
    overlapping = db.execute("""
        SELECT count(*) AS n FROM jobledger.run AS x JOIN jobledger.run AS y
            ON x.job = 'a' AND y.job = 'a' AND x.id < y.id
           AND x.started_at < y.finished_at AND y.started_at < x.finished_at""").fetchone()["n"]
    assert overlapping == 0
    assert db.execute("SELECT count(*) FILTER (WHERE status = 'succeeded') AS n FROM jobledger.run"
                      ).fetchone()["n"] == 12


def test_a_runner_role_granted_before_0_6_0_claims_without_affinity(db, start_runner, sleepy, connect) -> None:
    # The grants docs/runner.md listed before 0.6.0: no claim_runs(text, integer, text).
    db.execute("CREATE ROLE aff_owner LOGIN")
    db.execute("CREATE ROLE aff_runner LOGIN")
    try:
        db.execute("GRANT EXECUTE ON FUNCTION jobledger_internal.claim_runs(text, integer),"
                   " jobledger_internal.complete_run(uuid, integer, text, bigint),"
                   " jobledger_internal.fail_run(uuid, integer, text, text, text, text, boolean, interval),"
                   " jobledger_internal.heartbeat(text, uuid[]), jobledger_internal.release_run(uuid, integer, text),"
                   " jobledger.reconcile_orphaned(text, interval) TO aff_runner")
        db.execute("GRANT aff_owner TO aff_runner")
        db.execute("GRANT INSERT ON public.landed TO aff_owner")
        owner = connect(user="aff_owner")
        for job in ("a", "b"):
            runnertools.define(owner, job, "SELECT CAST({n} AS integer) AS n", "landed",
                               params={"n": {"type": "integer"}})
        for n in (1, 2):
            for job in ("a", "b"):
                runnertools.submit(owner, job, {"n": n})
        runner = start_runner("--drain", "--concurrency", "1", "--set-role", user="aff_runner")
        assert runner.wait() == 0, runner.log()
        assert order(db) == ["a:1", "b:1", "a:2", "b:2"]
        assert "claims without affinity" in runner.log()
    finally:
        db.execute("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
                   " WHERE usename IN ('aff_owner', 'aff_runner')")
        db.execute("DROP OWNED BY aff_owner, aff_runner")
        db.execute("DROP ROLE aff_runner")
        db.execute("DROP ROLE aff_owner")


def test_after_a_long_streak_the_oldest_run_comes_next(db, start_runner, sleepy) -> None:
    three_jobs(db)
    runnertools.submit(db, "a", {"n": 1})
    runnertools.submit(db, "b", {"n": 1})
    db.execute("SELECT count(jobledger.submit_job('a', jsonb_build_object('n', g))) FROM generate_series(2, 105) AS g")
    runner = start_runner("--drain", "--concurrency", "1", "--log-level", "warning")
    assert runner.wait() == 0, runner.log()
    # process.AFFINITY_STREAK (100) runs of a, then b:1, older than a:101.
    started = order(db)
    assert started.index("b:1") == 100 and started[:100] == [f"a:{n}" for n in range(1, 101)]
    assert started[101:] == [f"a:{n}" for n in range(101, 106)]
