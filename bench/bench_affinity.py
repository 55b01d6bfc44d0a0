"""Benchmark of claim affinity: prints ONE JSON object on stdout.

    env $(tests/devenv.sh env) .venv/bin/python bench/bench_affinity.py

(or ``make bench BENCH=affinity``).  PG* must name a server with the
extension installed and a role that may create databases; the benchmark
works in the database ``jobledger_bench_affinity`` (dropped and created
again, left in place afterwards).  Progress goes to stderr.

The question (issue 15, item 7): a runner that just ran job J takes J's next
pending run first at equal priority (``jobledger runner``'s default) versus
strictly the oldest first (``--no-affinity``).  Does it help when the first
run of a job in a session is slow?  Three jobs, their runs submitted
interleaved (a, b, c, a, b, c ...) at one priority, drained by one runner
process with 2 executors, both ways side by side in each repetition (the
order alternating), every drain with fresh sessions:

* ``one_slot``: each job's query calls ``bench_warm(job, cost_ms, 1)``, a
  PL/Python function that sleeps ``cost_ms`` the first time it sees ``job``
  in a session and keeps what it "loaded" in GD, but only for one job at a
  time (like a worker holding one model: switching jobs reloads);
* ``per_session``: the same, but the session keeps every job it loaded
  (an ordinary per-session cache: each session pays once per job);
* ``no_warmup``: a trivial one-row job, to see what affinity costs when it
  cannot help (runs per second);
* ``claim_cost``: one claim's time, each in its own transaction, on a
  backlog of BENCH_AFFINITY_BACKLOG (6,000) runs of three jobs, with and
  without ``prefer_job`` (and the two-argument form), taking turns.

Each drain reports its time in the ledger (first ``started_at`` to last
``finished_at``) and the cold starts (runs whose query paid the warm-up).
Tunables (environment): BENCH_AFFINITY_REPEAT (5), BENCH_AFFINITY_RUNS (runs
per job with a warm-up, 40), BENCH_AFFINITY_COST_MS (100),
BENCH_AFFINITY_TRIVIAL_RUNS (runs per job without, 500),
BENCH_CONCURRENCY (executors, 2).
"""

from __future__ import annotations

import json
import os
import pathlib
import statistics
import subprocess
import sys
import time
from typing import Any

import psycopg
from psycopg import conninfo as pg_conninfo

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import benchtools  # noqa: E402

REPEAT = int(os.environ.get("BENCH_AFFINITY_REPEAT", "5"))
RUNS = int(os.environ.get("BENCH_AFFINITY_RUNS", "40"))
COST_MS = int(os.environ.get("BENCH_AFFINITY_COST_MS", "100"))
TRIVIAL_RUNS = int(os.environ.get("BENCH_AFFINITY_TRIVIAL_RUNS", "500"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "2"))
CLAIM_BACKLOG = int(os.environ.get("BENCH_AFFINITY_BACKLOG", "6000"))
CLAIMS = 3 * 1000
JOBS = ("a", "b", "c")
DATABASE = "jobledger_bench_affinity"

# GD[cache] holds the jobs this session loaded, most recent first; at most
# `slots` of them (0: no limit).  A miss sleeps cost_ms: the cold start.
WARM_FUNCTION = """
CREATE FUNCTION public.bench_warm(job text, cost_ms integer, slots integer) RETURNS integer
LANGUAGE plpython3u VOLATILE AS $$
import time
loaded = GD.setdefault("bench_warm", [])
if job in loaded:
    loaded.remove(job)
    loaded.insert(0, job)
    return 0
time.sleep(cost_ms / 1000.0)
loaded.insert(0, job)
if slots > 0:
    del loaded[slots:]
return 1
$$
"""

WORKLOADS = {
    # name: (runs per job, cost_ms, slots)
    "one_slot": (RUNS, COST_MS, 1),
    "per_session": (RUNS, COST_MS, 0),
    "no_warmup": (TRIVIAL_RUNS, 0, 0),
}


def say(message: str) -> None:
    print(f"bench_affinity: {message}", file=sys.stderr, flush=True)


def define(conn: psycopg.Connection) -> None:
    conn.execute(WARM_FUNCTION)
    conn.execute("CREATE TABLE public.affinity_out (job text, cold integer, n integer)")
    for workload, (_, cost, slots) in WORKLOADS.items():
        for job in JOBS:
            if cost:
                template = (f"SELECT CAST('{job}' AS text) AS job, public.bench_warm('{job}', {cost}, {slots}) AS cold,"
                            " CAST({n} AS integer) AS n")
            else:
                template = f"SELECT CAST('{job}' AS text) AS job, 0 AS cold, CAST({{n}} AS integer) AS n"
            conn.execute("SELECT jobledger.define_job(%s, %s, 'affinity_out',"
                         " params => '{\"n\": {\"type\": \"integer\"}}')", (f"{workload}_{job}", template))


def drain(conn: psycopg.Connection, dsn: str, workload: str, affinity: bool) -> dict[str, Any]:
    runs, _, _ = WORKLOADS[workload]
    conn.execute("TRUNCATE public.affinity_out")
    conn.execute("DELETE FROM jobledger.run")
    conn.execute("VACUUM jobledger.run, jobledger.run_attempt")
    # Interleaved: a1, b1, c1, a2, b2, c2 ... in one statement (created_at
    # is the transaction's start: the order is the run ids' then), so
    # one at a time.
    for n in range(1, runs + 1):
        conn.execute("SELECT count(jobledger.submit_job(%s || j, jsonb_build_object('n', %s)))"
                     " FROM unnest(%s::text[]) AS j", (f"{workload}_", n, list(JOBS)))
    # Statistics of the backlog as it is now (analyzed empty, the claim's
    # plans would be made for an empty ledger).
    conn.execute("ANALYZE jobledger.run")
    command = [sys.executable, "-m", "jobledger", "runner", "--dsn", dsn, "--drain", "--set-role",
               "--concurrency", str(CONCURRENCY), "--worker-id", "bench-affinity", "--log-level", "warning",
               "--no-webhooks"]
    if not affinity:
        command.append("--no-affinity")
    started = time.monotonic()
    done = subprocess.run(command, check=False)
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"the runner exited with {done.returncode}")
    row = conn.execute(
        """SELECT count(*) FILTER (WHERE status = 'succeeded') AS ok, count(*) AS runs,
                  extract(epoch FROM max(finished_at) - min(started_at)) AS span
             FROM jobledger.run""").fetchone()
    out = conn.execute("SELECT count(*) AS rows, sum(cold) AS cold FROM public.affinity_out").fetchone()
    assert row["ok"] == row["runs"] == runs * len(JOBS) == out["rows"], (row, out)
    # How often an executor switched jobs: consecutive runs of one worker
    # backend (its pid) of different jobs.
    switches = conn.execute(
        """SELECT count(*) AS n FROM (
               SELECT job, lag(job) OVER (PARTITION BY backend_pid ORDER BY started_at) AS before
                 FROM jobledger.run) AS s
            WHERE before IS NOT NULL AND before <> job""").fetchone()["n"]
    return {"seconds": float(row["span"]), "wall": wall, "cold": int(out["cold"]), "switches": int(switches),
            "runs": int(row["runs"])}


def claim_cost(conn: psycopg.Connection) -> dict[str, Any]:
    """What one claim costs, each in its own transaction, on a backlog of
    CLAIM_BACKLOG runs of three jobs: claim_runs(worker, 1) (the form without
    affinity), claim_runs(worker, 1, NULL) and claim_runs(worker, 1, job),
    taking turns on one connection (the claimed runs stay running)."""
    conn.execute("DELETE FROM jobledger.run")
    conn.execute("VACUUM jobledger.run, jobledger.run_attempt")
    conn.execute("SELECT count(jobledger.submit_job('no_warmup_' || j, jsonb_build_object('n', g)))"
                 " FROM generate_series(1, %s) AS g, unnest(%s::text[]) AS j", (CLAIM_BACKLOG // len(JOBS), list(JOBS)))
    conn.execute("ANALYZE jobledger.run")
    forms = {
        "two_arguments": ("SELECT id FROM jobledger_internal.claim_runs('bench', 1)", ()),
        "prefer_null": ("SELECT id FROM jobledger_internal.claim_runs('bench', 1, NULL)", ()),
        "prefer_job": ("SELECT id FROM jobledger_internal.claim_runs('bench', 1, %s)", ("no_warmup_b",)),
    }
    times: dict[str, list[float]] = {name: [] for name in forms}
    with psycopg.connect(dbname=DATABASE, autocommit=True, prepare_threshold=None) as claimer:
        for i in range(CLAIMS):
            name = list(forms)[i % len(forms)]
            query, params = forms[name]
            started = time.perf_counter()
            assert claimer.execute(query, params).fetchall()
            times[name].append((time.perf_counter() - started) * 1000)
    result: dict[str, Any] = {"backlog": CLAIM_BACKLOG, "claims_each": CLAIMS // len(forms)}
    for name, values in times.items():
        values = values[5:]  # the session's first calls plan
        result[f"{name}_median_ms"] = round(statistics.median(values), 3)
        result[f"{name}_p90_ms"] = round(statistics.quantiles(values, n=10)[-1], 3)
    return result


def summarise(workload: str, pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, Any]:
    runs, cost, slots = WORKLOADS[workload]
    on = [p[0] for p in pairs]
    off = [p[1] for p in pairs]

    def med(items: list[dict[str, Any]], key: str) -> float:
        return statistics.median(x[key] for x in items)

    result: dict[str, Any] = {
        "runs": runs * len(JOBS),
        "jobs": len(JOBS),
        "warmup_ms": cost,
        "cache_slots": slots or "unbounded",
        "executors": CONCURRENCY,
        "repetitions": len(pairs),
        "median_seconds_affinity": round(med(on, "seconds"), 3),
        "median_seconds_no_affinity": round(med(off, "seconds"), 3),
        # Per repetition, affinity's time over the time without; < 1: faster.
        "median_ratio": round(statistics.median(a["seconds"] / b["seconds"] for a, b in pairs), 3),
        "median_cold_starts_affinity": med(on, "cold"),
        "median_cold_starts_no_affinity": med(off, "cold"),
        "median_job_switches_affinity": med(on, "switches"),
        "median_job_switches_no_affinity": med(off, "switches"),
        "all_seconds_affinity": [round(x["seconds"], 3) for x in on],
        "all_seconds_no_affinity": [round(x["seconds"], 3) for x in off],
        "all_cold_affinity": [x["cold"] for x in on],
        "all_cold_no_affinity": [x["cold"] for x in off],
    }
    if not cost:
        result["median_runs_per_second_affinity"] = round(statistics.median(x["runs"] / x["seconds"] for x in on), 1)
        result["median_runs_per_second_no_affinity"] = round(
            statistics.median(x["runs"] / x["seconds"] for x in off), 1)
    return result


def main() -> int:
    result: dict[str, Any] = {"benchmark": "affinity", "machine": benchtools.machine(),
                              "measured_as": "run.started_at of the first run to run.finished_at of the last"}
    with benchtools.fresh_database(DATABASE) as conn:
        conn.execute("SET client_min_messages = warning")
        define(conn)
        dsn = pg_conninfo.make_conninfo("", dbname=DATABASE)
        for workload in WORKLOADS:
            pairs = []
            for rep in range(REPEAT):
                # Alternate which goes first, so that neither always meets a
                # just-vacuumed or a just-warmed server.
                if rep % 2 == 0:
                    on = drain(conn, dsn, workload, True)
                    off = drain(conn, dsn, workload, False)
                else:
                    off = drain(conn, dsn, workload, False)
                    on = drain(conn, dsn, workload, True)
                pairs.append((on, off))
                say(f"{workload} {rep + 1}/{REPEAT}: affinity {on['seconds']:.3f} s ({on['cold']} cold),"
                    f" without {off['seconds']:.3f} s ({off['cold']} cold)")
            result[workload] = summarise(workload, pairs)
        say(f"claim cost: {CLAIMS} claims on a backlog of {CLAIM_BACKLOG}")
        result["claim_cost"] = claim_cost(conn)
        say(f"  {result['claim_cost']}")
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
