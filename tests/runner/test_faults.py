"""Runners that die, freeze, lose their connections or are told to stop:
every run still ends exactly once, with exactly one copy of its rows."""

from __future__ import annotations

import signal
import time

import dbtools
import runnertools


def test_a_killed_runners_run_is_retried_elsewhere_once(db, sleepy, start_runner) -> None:
    first = start_runner(worker="A")
    run = runnertools.submit(db, "nap_once", {"n": 1, "sleep": 60})
    runnertools.wait_until(lambda: runnertools.executing(db, run), what="A to execute the run")
    assert dbtools.run_row(db, run)["worker"] == "A"

    first.send(signal.SIGKILL)
    first.wait()
    second = start_runner(worker="B")
    # Within a few seconds: the dead client's query stops (client_connection_
    # check_interval), reconcile_orphaned sees its backend gone, B retries.
    row = runnertools.wait_status(db, run, "succeeded", timeout=30)
    assert (row["worker"], row["attempt"]) == ("B", 2)
    assert runnertools.attempts(db, run) == [
        (1, "A", "failed", "runner lost", None),
        (2, "B", "succeeded", None, None),
    ]
    assert runnertools.out_rows(db) == [1]
    assert second.stop() == 0, second.log()


def test_a_frozen_runners_late_commit_is_refused(db, sleepy, start_runner) -> None:
    stale = start_runner("--lease", "1.5", worker="A")
    run = runnertools.submit(db, "nap_once", {"n": 1, "sleep": 60})
    runnertools.wait_until(lambda: runnertools.executing(db, run), what="A to execute the run")
    stale.send(signal.SIGSTOP)  # no more heartbeats from A

    other = start_runner("--lease", "1.5", worker="B")
    row = runnertools.wait_status(db, run, "succeeded", timeout=30)
    assert (row["worker"], row["attempt"]) == ("B", 2)
    assert runnertools.out_rows(db) == [1]

    stale.send(signal.SIGCONT)
    # A finds its attempt gone (its backend was terminated by the takeover);
    # whatever it does next, the run and the destination stay as they are.
    runnertools.wait_until(lambda: "lost the connection" in stale.log(), what="A to notice")
    later = runnertools.submit(db, sleepy, {"n": 2})
    runnertools.wait_status(db, later, "succeeded")
    assert stale.stop() == 0, stale.log()
    assert other.stop() == 0, other.log()
    assert runnertools.out_rows(db) == [1, 2]
    row = dbtools.run_row(db, run)
    assert (row["status"], row["worker"], row["attempt"], row["rows_written"]) == ("succeeded", "B", 2, 1)
    assert runnertools.attempts(db, run) == [
        (1, "A", "failed", "runner lost", None),
        (2, "B", "succeeded", None, None),
    ]


def test_a_complete_that_lost_the_fence_writes_nothing(db, sleepy, start_runner) -> None:
    runner = start_runner(worker="A")
    run = runnertools.submit(db, sleepy, {"n": 1, "sleep": 1.5})
    runnertools.wait_until(lambda: runnertools.executing(db, run), what="the run to execute")
    # Someone else owns the attempt now (as after a takeover the runner missed).
    db.execute("UPDATE jobledger.run SET worker = 'intruder' WHERE id = %s", (run,))
    runnertools.wait_until(lambda: not runnertools.executing(db, run), what="the attempt to end")
    runnertools.wait_until(lambda: "is no longer running on worker A" in runner.log(), what="the refusal")
    assert runner.stop() == 0
    assert runnertools.out_rows(db) == []
    row = dbtools.run_row(db, run)
    assert (row["status"], row["worker"], row["rows_written"]) == ("running", "intruder", None)


def test_new_work_is_picked_up_after_the_listen_backend_is_terminated(db, sleepy, start_runner) -> None:
    # Polling once a minute: only a notification brings the runs in quickly.
    runner = start_runner("--poll-interval", "60", worker="L")
    listener = runnertools.wait_until(lambda: runnertools.backend_of(db, "jobledger listen L"),
                                      what="the listen connection")
    first = runnertools.submit(db, sleepy, {"n": 1})
    runnertools.wait_status(db, first, "succeeded", timeout=20)

    assert db.execute("SELECT pg_terminate_backend(%s, 5000) AS ok", (listener,)).fetchone() == {"ok": True}
    runnertools.wait_until(lambda: runnertools.backend_of(db, "jobledger listen L") not in (None, listener),
                           what="a new listen connection")
    time.sleep(1.0)  # let the runner finish reconnecting and go idle
    second = runnertools.submit(db, sleepy, {"n": 2})
    runnertools.wait_status(db, second, "succeeded", timeout=20)
    assert runner.stop() == 0, runner.log()
    assert "control connection lost" in runner.log()
    assert runnertools.out_rows(db) == [1, 2]


def test_sigterm_lets_runs_in_flight_finish_and_claims_nothing_new(db, sleepy, start_runner) -> None:
    runner = start_runner("--grace", "60")
    run = runnertools.submit(db, sleepy, {"n": 1, "sleep": 2})
    runnertools.wait_until(lambda: runnertools.executing(db, run), what="the run to execute")
    runner.send(signal.SIGTERM)
    runnertools.wait_until(lambda: "stopping" in runner.log(), what="the runner to stop claiming")
    queued = runnertools.submit(db, sleepy, {"n": 2})
    assert runner.wait() == 0, runner.log()
    assert dbtools.run_row(db, run)["status"] == "succeeded"
    assert dbtools.run_row(db, queued)["status"] == "pending"
    assert runnertools.out_rows(db) == [1]


def test_sigterm_past_the_grace_period_releases_the_run(db, sleepy, start_runner) -> None:
    runner = start_runner("--grace", "0.5")
    run = runnertools.submit(db, "nap_once", {"n": 1, "sleep": 60})
    runnertools.wait_until(lambda: runnertools.executing(db, run), what="the run to execute")
    runner.send(signal.SIGTERM)
    assert runner.wait() == 0, runner.log()
    row = dbtools.run_row(db, run)
    assert (row["status"], row["attempt"], row["worker"]) == ("pending", 0, None)
    assert dbtools.attempts(db, run) == []
    assert runnertools.out_rows(db) == []
    # Its attempt did not count: the next runner runs it as attempt 1.
    again = start_runner("--drain")
    assert again.wait() == 0, again.log()
    row = dbtools.run_row(db, run)
    assert (row["status"], row["attempt"]) == ("succeeded", 1)
    assert runnertools.out_rows(db) == [1]
