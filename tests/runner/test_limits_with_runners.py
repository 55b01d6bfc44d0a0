"""Concurrency limits and pause with four real runner processes: no more of a
job's runs overlap than its max_running, overwrite and merge runs of one
destination never overlap, and a paused job's runs wait for resume_job.
Overlaps are read from the ledger (every attempt's started_at and
finished_at), not from timing in the test."""

from __future__ import annotations

import psycopg

import runnertools

# Seconds each run sleeps: long enough that runs claimed together overlap.
NAP = 0.3


def most_at_once(conn: psycopg.Connection, where: str) -> int:
    """The most attempts (of the runs matching ``where``) that were running at
    one time: for each attempt's start, the attempts whose interval holds it."""
    return conn.execute(f"""
        WITH a AS (SELECT t.started_at, t.finished_at
                     FROM jobledger.run_attempt AS t JOIN jobledger.run AS r ON r.id = t.run
                     JOIN jobledger.job_version AS v ON v.job = r.job AND v.version = r.job_version
                    WHERE {where})
        SELECT coalesce(max((SELECT count(*) FROM a AS o
                              WHERE o.started_at <= s.started_at AND s.started_at < o.finished_at)), 0) AS n
          FROM a AS s""").fetchone()["n"]


def test_four_runners_keep_every_limit(db, start_runner, sleepy) -> None:
    db.execute("CREATE TABLE public.snapshot (n integer PRIMARY KEY)")
    runnertools.define(db, "snap_overwrite", runnertools.SLEEPY, "snapshot", mode="overwrite",
                       params=runnertools.SLEEPY_PARAMS)
    runnertools.define(db, "snap_merge", runnertools.SLEEPY, "snapshot", mode="merge",
                       params=runnertools.SLEEPY_PARAMS)
    db.execute("SELECT jobledger.set_max_running('sleepy', 2)")
    db.execute("SELECT count(jobledger.submit_job(j, jsonb_build_object('n', g, 'sleep', %s)))"
               "  FROM generate_series(1, 10) AS g, unnest(ARRAY['sleepy', 'snap_overwrite', 'snap_merge']) AS j",
               (NAP,))
    runners = [start_runner("--concurrency", "3", "--poll-interval", "0.2", worker=f"r{i}") for i in range(4)]
    runnertools.wait_until(
        lambda: db.execute("SELECT count(*) FILTER (WHERE status = 'succeeded') AS n FROM jobledger.run"
                           ).fetchone()["n"] == 30,
        what="every run to succeed")
    for runner in runners:
        assert runner.stop() == 0, runner.log()

    assert db.execute("SELECT count(*) AS n FROM jobledger.run_attempt").fetchone()["n"] == 30  # no retries
    # The limit is reached, never exceeded.
    assert most_at_once(db, "r.job = 'sleepy'") == 2
    # One writer of public.snapshot at a time, whichever job and mode.
    assert most_at_once(db, "v.destination = 'public.snapshot'") == 1
    # ... while runs of the other job went on beside it.
    assert most_at_once(db, "true") >= 3
    assert runnertools.out_rows(db) == sorted(list(range(1, 11)))


def test_a_paused_job_waits_for_resume_with_runners_up(db, start_runner, sleepy) -> None:
    db.execute("SELECT jobledger.pause_job('sleepy')")
    paused = [runnertools.submit(db, "sleepy", {"n": n}) for n in range(1, 4)]
    other = runnertools.submit(db, "nap_once", {"n": 10})
    runners = [start_runner("--concurrency", "2", "--poll-interval", "0.2", worker=f"r{i}") for i in range(4)]
    runnertools.wait_status(db, other, "succeeded")
    # Every runner has claimed since (the other run was claimed after they
    # started); the paused job's runs are still waiting.
    runnertools.wait_until(lambda: db.execute(
        "SELECT count(*) AS n FROM jobledger.workers WHERE state = 'alive'").fetchone()["n"] == 4,
        what="four runners alive")
    assert {runnertools.status(db, run) for run in paused} == {"pending"}
    db.execute("SELECT jobledger.resume_job('sleepy')")
    for run in paused:
        runnertools.wait_status(db, run, "succeeded")
    assert runnertools.out_rows(db) == [1, 2, 3, 10]
    for runner in runners:
        assert runner.stop() == 0, runner.log()
