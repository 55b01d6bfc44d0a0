"""What becomes of a run: cancelled (pending, running, terminal), timed out,
retried after a transient error, failed at once on a permanent one; and the
heartbeat of a run in flight."""

from __future__ import annotations

import dbtools
import runnertools


def cancel(db, run) -> bool:
    return db.execute("SELECT jobledger.cancel_run(%s) AS ok", (run,)).fetchone()["ok"]


def test_cancel_pending_running_and_terminal(db, sleepy, start_runner) -> None:
    pending = runnertools.submit(db, sleepy, {"n": 1})
    assert cancel(db, pending) is True
    running = runnertools.submit(db, sleepy, {"n": 2, "sleep": 60})

    runner = start_runner()
    runnertools.wait_until(lambda: runnertools.executing(db, running), what="the run to execute")
    assert cancel(db, running) is True
    row = runnertools.wait_status(db, running, "cancelled")
    assert row["cancel_requested"] is True and row["error_category"] == "cancelled"
    # The runner's query was stopped on the server: the attempt ends, nothing written.
    runnertools.wait_until(lambda: not runnertools.executing(db, running), what="the query to stop")

    # The runner goes on with other work.
    done = runnertools.submit(db, sleepy, {"n": 3})
    runnertools.wait_status(db, done, "succeeded")
    assert runner.stop() == 0, runner.log()

    assert runnertools.out_rows(db) == [3]
    assert dbtools.run_row(db, pending)["status"] == "cancelled"
    assert dbtools.attempts(db, pending) == []
    assert [a[2] for a in runnertools.attempts(db, running)] == ["cancelled"]
    assert dbtools.run_row(db, running)["status"] == "cancelled"
    before = dbtools.run_row(db, done)
    assert cancel(db, done) is False
    assert dbtools.run_row(db, done) == before


def test_a_run_past_its_timeout_fails_and_writes_nothing(db, sleepy, start_runner) -> None:
    runnertools.define(db, "slow", runnertools.SLEEPY, "landed", params=runnertools.SLEEPY_PARAMS,
                       timeout="300 milliseconds")
    run = runnertools.submit(db, "slow", {"n": 1, "sleep": 30})
    runner = start_runner("--drain")
    assert runner.wait() == 0, runner.log()
    row = dbtools.run_row(db, run)
    assert (row["status"], row["error"], row["error_sqlstate"], row["error_category"]) == (
        "failed", "timed out after 300 ms", "57014", "timeout")
    assert row["attempt"] == 1 and row["finished_at"] is not None
    assert runnertools.attempts(db, run) == [(1, "runner-0", "failed", "timed out after 300 ms", "57014")]
    assert runnertools.out_rows(db) == []


def test_a_transient_error_is_retried_then_succeeds(db, sleepy, start_runner) -> None:
    db.execute("CREATE SEQUENCE public.tries")
    db.execute("""CREATE FUNCTION public.flaky() RETURNS integer LANGUAGE plpgsql AS $$
                  BEGIN
                      IF nextval('public.tries') = 1 THEN
                          RAISE EXCEPTION 'simulated conflict' USING ERRCODE = 'serialization_failure';
                      END IF;
                      RETURN 1;
                  END $$""")
    runnertools.define(db, "flaky", "SELECT public.flaky() AS n", "landed")
    run = runnertools.submit(db, "flaky")
    runner = start_runner("--retry-backoff", "0.2")
    row = runnertools.wait_status(db, run, "succeeded", "failed")
    assert runner.stop() == 0, runner.log()
    assert row["status"] == "succeeded" and row["attempt"] == 2 and row["error"] is None
    assert runnertools.attempts(db, run) == [
        (1, "runner-0", "failed", "simulated conflict", "40001"),
        (2, "runner-0", "succeeded", None, None),
    ]
    assert runnertools.out_rows(db) == [1]


def test_a_permanent_error_fails_at_once_with_its_sqlstate(db, sleepy, start_runner) -> None:
    runnertools.define(db, "divide", "SELECT CAST(10 AS integer) / CAST({d} AS integer) AS n", "landed",
                       params={"d": {"type": "integer"}}, max_attempts=5)
    run = runnertools.submit(db, "divide", {"d": 0})
    runner = start_runner("--drain")
    assert runner.wait() == 0, runner.log()
    row = dbtools.run_row(db, run)
    assert (row["status"], row["attempt"], row["max_attempts"]) == ("failed", 1, 5)
    assert (row["error"], row["error_sqlstate"], row["error_category"]) == (
        "division by zero", "22012", "execution_error")
    assert runnertools.attempts(db, run) == [(1, "runner-0", "failed", "division by zero", "22012")]
    assert runnertools.out_rows(db) == []


def test_a_dropped_destination_fails_the_run_clearly(db, sleepy, start_runner) -> None:
    db.execute("CREATE TABLE public.gone (n integer)")
    runnertools.define(db, "to_gone", "SELECT 1 AS n", "gone")
    run = runnertools.submit(db, "to_gone")
    db.execute("DROP TABLE public.gone")
    runner = start_runner("--drain")
    assert runner.wait() == 0, runner.log()
    row = dbtools.run_row(db, run)
    assert (row["status"], row["error_sqlstate"], row["error_category"]) == ("failed", "42P01", "destination_missing")
    assert "public.gone" in row["error"]


def test_the_heartbeat_advances_while_a_run_executes(db, sleepy, start_runner) -> None:
    run = runnertools.submit(db, sleepy, {"n": 1, "sleep": 3})
    runner = start_runner("--lease", "2")  # a heartbeat every 0.5 s
    runnertools.wait_until(lambda: runnertools.executing(db, run), what="the run to execute")
    started = dbtools.run_row(db, run)["started_at"]
    beats = set()
    while (row := dbtools.run_row(db, run))["status"] == "running":
        beats.add(row["heartbeat_at"])
    assert row["status"] == "succeeded" and row["attempt"] == 1, runner.log()
    assert len({b for b in beats if b > started}) >= 2
    assert runner.stop() == 0
