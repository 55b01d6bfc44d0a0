"""Benchmark of the jobledger runner: prints ONE JSON object on stdout.

    .venv/bin/python bench/bench_runner.py

PG* (or DATABASE_URL) must name a server where the jobledger extension is
installed (``make install``) and a role that may create databases and roles
(the private cluster of ``make test``: ``env $(tests/devenv.sh env) ...``).
It works in a scratch database of its own, dropped at the end.  Progress
goes to stderr.

Measured:

* throughput: a trivial job (one-row append) end to end, 1, 2 and 4 runner
  processes (``--drain --concurrency C``) over runs submitted beforehand, in
  a ledger that already holds BENCH_HISTORY (20,000) finished runs, analyzed;
  runs per second over the ledger's span (first ``started_at`` to last
  ``finished_at``) and over the processes' wall time (start-up included);
* pickup latency with an idle runner: ``started_at - created_at`` of runs
  submitted one at a time (includes submit_job's own time from the start of
  its transaction to its commit, which is when the NOTIFY goes out), p50/p99;
* data path: a BENCH_ROWS-row (default 5,000,000) append job's time in the
  ledger versus the same ``INSERT ... SELECT`` run directly, best of
  BENCH_REPEAT (default 2) each.

Tunables (environment): BENCH_RUNS (runs per throughput measurement, 6000),
BENCH_CONCURRENCY (executors per runner process, 2), BENCH_LATENCY_RUNS
(200), BENCH_ROWS, BENCH_REPEAT.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

import psycopg
from psycopg import conninfo as pg_conninfo
from psycopg import rows

RUNS = int(os.environ.get("BENCH_RUNS", "6000"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "2"))
LATENCY_RUNS = int(os.environ.get("BENCH_LATENCY_RUNS", "200"))
DATA_ROWS = int(os.environ.get("BENCH_ROWS", "5000000"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "2"))
HISTORY = int(os.environ.get("BENCH_HISTORY", "20000"))


def say(message: str) -> None:
    print(f"bench_runner: {message}", file=sys.stderr, flush=True)


def base_conninfo() -> str:
    return os.environ.get("DATABASE_URL", "")


def connect(dbname: str | None = None) -> psycopg.Connection:
    info = base_conninfo()
    if dbname:
        info = pg_conninfo.make_conninfo(info, dbname=dbname)
    return psycopg.connect(info, autocommit=True, row_factory=rows.dict_row)


def start_runners(dsn: str, processes: int, concurrency: int, *extra: str) -> list[subprocess.Popen]:
    return [
        subprocess.Popen([sys.executable, "-m", "jobledger", "runner", "--dsn", dsn, "--drain",
                          "--concurrency", str(concurrency), "--worker-id", f"bench-{i}",
                          "--log-level", "warning", *extra])
        for i in range(processes)
    ]


def wait_all(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.wait(timeout=1800) != 0:
            raise SystemExit(f"a runner exited with {proc.returncode}")


def machine(conn: psycopg.Connection) -> dict[str, Any]:
    settings = {r["name"]: r["setting"] for r in conn.execute(
        "SELECT name, setting FROM pg_settings WHERE name IN"
        " ('shared_buffers', 'synchronous_commit', 'fsync', 'max_connections', 'full_page_writes')")}
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "postgresql": conn.execute("SELECT version() AS v").fetchone()["v"],
        "server_settings": settings,
        "load_average_at_start": load,
    }


def with_history(conn: psycopg.Connection) -> None:
    """A ledger that has been in use: HISTORY finished runs, analyzed.

    Measured on an empty, never-analyzed ledger the first seconds depend on
    when autovacuum happens to analyze it (a plan made for a one-page table
    is cached by every runner session until the next analyze); a ledger in
    use has settled statistics."""
    conn.execute("""WITH h AS (
                        INSERT INTO jobledger.run (job, job_version, rendered_sql, status, attempt, started_at,
                                                   finished_at, worker)
                        SELECT 'one_row', 1, 'SELECT 1 AS n', 'succeeded', 1, now(), now(), 'history'
                          FROM generate_series(1, %s)
                        RETURNING id)
                    INSERT INTO jobledger.run_attempt (run, attempt, worker, status, finished_at)
                    SELECT id, 1, 'history', 'succeeded', now() FROM h""", (HISTORY,))
    conn.execute("VACUUM ANALYZE jobledger.run, jobledger.run_attempt")


def throughput(conn: psycopg.Connection, dsn: str, processes: int) -> dict[str, Any]:
    job = f"one_row_{processes}"
    conn.execute("SELECT jobledger.define_job(%s, 'SELECT CAST({n} AS integer) AS n', 'one_row',"
                 " params => '{\"n\": {\"type\": \"integer\"}}')", (job,))
    before = conn.execute("SELECT count(*) AS n FROM public.one_row").fetchone()["n"]
    started = time.monotonic()
    conn.execute("SELECT count(jobledger.submit_job(%s, jsonb_build_object('n', g)))"
                 " FROM generate_series(1, %s) AS g", (job, RUNS))
    submit_seconds = time.monotonic() - started
    started = time.monotonic()
    wait_all(start_runners(dsn, processes, CONCURRENCY))
    wall = time.monotonic() - started
    row = conn.execute(
        """SELECT count(*) FILTER (WHERE status = 'succeeded') AS ok, count(*) AS runs,
                  extract(epoch FROM max(finished_at) - min(started_at)) AS span
             FROM jobledger.run WHERE job = %s""", (job,)).fetchone()
    written = conn.execute("SELECT count(*) AS n FROM public.one_row").fetchone()["n"] - before
    assert row["ok"] == row["runs"] == RUNS == written, (row, written)
    conn.execute("VACUUM ANALYZE jobledger.run, jobledger.run_attempt")
    span = float(row["span"])
    return {
        "processes": processes,
        "concurrency_per_process": CONCURRENCY,
        "runs": RUNS,
        "runs_per_second": round(RUNS / span, 1),
        "runs_per_second_wall": round(RUNS / wall, 1),
        "ledger_span_seconds": round(span, 3),
        "wall_seconds_with_startup": round(wall, 3),
        "bulk_submit_runs_per_second": round(RUNS / submit_seconds, 1),
    }


def pickup_latency(conn: psycopg.Connection, dsn: str) -> dict[str, Any]:
    runner = subprocess.Popen([sys.executable, "-m", "jobledger", "runner", "--dsn", dsn, "--concurrency", "1",
                               "--worker-id", "bench-idle", "--log-level", "warning"])
    try:
        deadline = time.monotonic() + 60
        while not conn.execute("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name ="
                               " 'jobledger listen bench-idle') AS up").fetchone()["up"]:
            if time.monotonic() > deadline:
                raise SystemExit("the idle runner did not start")
            time.sleep(0.05)
        time.sleep(0.5)
        submitter = connect(conn.info.dbname)
        ids = []
        submit_ms = []
        for i in range(LATENCY_RUNS):
            t0 = time.perf_counter()
            ids.append(submitter.execute("SELECT jobledger.submit_job('one_row', jsonb_build_object('n', %s)) AS id",
                                         (i,)).fetchone()["id"])
            submit_ms.append((time.perf_counter() - t0) * 1000)
            # Wait for it to finish: the runner is idle for every submission.
            while conn.execute("SELECT status FROM jobledger.run WHERE id = %s", (ids[-1],)
                               ).fetchone()["status"] != "succeeded":
                time.sleep(0.001)
            time.sleep(0.01)
        submitter.close()
    finally:
        runner.terminate()
        runner.wait(60)
    latencies = [r["ms"] for r in conn.execute(
        "SELECT extract(epoch FROM started_at - created_at) * 1000 AS ms FROM jobledger.run WHERE id = ANY(%s)",
        (ids,))]
    latencies = sorted(float(x) for x in latencies)
    return {
        "runs": len(latencies),
        "p50_ms": round(statistics.median(latencies), 3),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 3),
        "max_ms": round(latencies[-1], 3),
        "submit_job_call_p50_ms": round(statistics.median(submit_ms), 3),
        "measured_from": "run.created_at (start of submit_job's transaction) to run.started_at (the claim)",
    }


def data_path(conn: psycopg.Connection, dsn: str) -> dict[str, Any]:
    say(f"data path: generating {DATA_ROWS} rows")
    conn.execute("DROP TABLE IF EXISTS public.src_rows, public.dst_rows")
    conn.execute("CREATE TABLE public.src_rows (id bigint, k integer, v numeric(12,2), note text)")
    conn.execute("INSERT INTO public.src_rows SELECT g, g %% 1000, (g %% 100000) / 100.0, 'row ' || (g %% 97)"
                 " FROM generate_series(1, %s) AS g", (DATA_ROWS,))
    conn.execute("CREATE TABLE public.dst_rows (id bigint, k integer, v numeric(12,2), note text)")
    conn.execute("VACUUM ANALYZE public.src_rows")
    conn.execute("SELECT jobledger.define_job('copy_rows', 'SELECT id, k, v, note FROM public.src_rows',"
                 " 'dst_rows')")
    direct, job = [], []
    for attempt in range(REPEAT):
        conn.execute("TRUNCATE public.dst_rows")
        conn.execute("CHECKPOINT")
        t0 = time.perf_counter()
        n = conn.execute("INSERT INTO public.dst_rows (id, k, v, note) SELECT id, k, v, note FROM public.src_rows"
                         ).rowcount
        direct.append(time.perf_counter() - t0)
        assert n == DATA_ROWS
        conn.execute("TRUNCATE public.dst_rows")
        conn.execute("CHECKPOINT")
        run = conn.execute("SELECT jobledger.submit_job('copy_rows') AS id").fetchone()["id"]
        t0 = time.perf_counter()
        wait_all(start_runners(dsn, 1, 1))
        wall = time.perf_counter() - t0
        row = conn.execute("SELECT status, rows_written, extract(epoch FROM finished_at - started_at) AS s"
                           " FROM jobledger.run WHERE id = %s", (run,)).fetchone()
        assert row["status"] == "succeeded" and row["rows_written"] == DATA_ROWS, row
        job.append(float(row["s"]))
        say(f"data path {attempt + 1}/{REPEAT}: direct {direct[-1]:.2f} s, job {job[-1]:.2f} s"
            f" (runner process wall {wall:.2f} s)")
    conn.execute("DROP TABLE public.src_rows, public.dst_rows")
    return {
        "rows": DATA_ROWS,
        "direct_insert_select_seconds": round(min(direct), 3),
        "job_seconds": round(min(job), 3),
        "ratio": round(min(job) / min(direct), 3),
        "all_direct_seconds": [round(x, 3) for x in direct],
        "all_job_seconds": [round(x, 3) for x in job],
        "job_measured_as": "run.finished_at - run.started_at (claim to commit, in the ledger)",
    }


def main() -> int:
    name = f"jobledger_bench_{uuid.uuid4().hex[:8]}"
    with connect() as admin:
        facts = machine(admin)
        admin.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
    try:
        with connect(name) as conn:
            conn.execute("SET client_min_messages = warning")
            conn.execute("CREATE EXTENSION jobledger CASCADE")
            conn.execute("CREATE TABLE public.one_row (n integer)")
            conn.execute("SELECT jobledger.define_job('one_row', 'SELECT CAST({n} AS integer) AS n', 'one_row',"
                         " params => '{\"n\": {\"type\": \"integer\"}}')")
            dsn = pg_conninfo.make_conninfo(base_conninfo(), dbname=name)
            result: dict[str, Any] = {"benchmark": "runner", "machine": facts, "throughput": []}
            with_history(conn)
            for processes in (1, 2, 4):
                say(f"throughput: {processes} runner process(es) x {CONCURRENCY} executors, {RUNS} runs")
                result["throughput"].append(throughput(conn, dsn, processes))
                say(f"  {result['throughput'][-1]['runs_per_second']} runs/s")
            say(f"pickup latency: {LATENCY_RUNS} runs, one at a time, idle runner")
            result["pickup_latency"] = pickup_latency(conn, dsn)
            result["data_path"] = data_path(conn, dsn)
            result["targets"] = {"runs_per_second": 2000, "pickup_p50_ms": 5, "data_path_ratio": 1.05}
    finally:
        with connect() as admin:
            admin.execute(psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                psycopg.sql.Identifier(name)))
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
