"""Many runs, several runner processes: every run succeeds exactly once."""

from __future__ import annotations

import runnertools

RUNS = 2000


def test_four_runners_two_thousand_runs_each_exactly_once(db, start_runner) -> None:
    db.execute("CREATE TABLE public.counted (n integer NOT NULL, run_by text DEFAULT current_user)")
    runnertools.define(db, "count", "SELECT CAST({n} AS integer) AS n", "counted", params={"n": {"type": "integer"}})
    db.execute("SELECT count(jobledger.submit_job('count', jsonb_build_object('n', g))) FROM generate_series(1, %s) AS g",
               (RUNS,))
    runners = [start_runner("--drain", "--concurrency", "2", worker=f"r{i}") for i in range(4)]
    for runner in runners:
        assert runner.wait(timeout=300) == 0, runner.log()

    assert db.execute("SELECT status, attempt, count(*) AS runs FROM jobledger.run GROUP BY status, attempt"
                      ).fetchall() == [{"status": "succeeded", "attempt": 1, "runs": RUNS}]
    assert db.execute("SELECT count(*) AS n, count(DISTINCT n) AS distinct_n, min(n) AS lo, max(n) AS hi"
                      " FROM public.counted").fetchone() == {"n": RUNS, "distinct_n": RUNS, "lo": 1, "hi": RUNS}
    assert db.execute("SELECT count(*) AS n, count(*) FILTER (WHERE status = 'succeeded') AS ok"
                      " FROM jobledger.run_attempt").fetchone() == {"n": RUNS, "ok": RUNS}
    assert db.execute("SELECT sum(rows_written) AS rows FROM jobledger.run").fetchone() == {"rows": RUNS}
