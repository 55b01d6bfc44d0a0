"""submit_job throughput: calls per second with concurrent clients (pgbench).

Run by ``make bench`` (bench/run.py) with PG* naming a server where the
extension is installed; prints one JSON object.  pgbench drives the load so
that the client's own cost stays small next to the server's: each client
calls, in a loop, for ``--seconds``:

    SELECT jobledger.submit_job('bench_daily', <params>)

twice: with the same parameters every time (``repeated``: the renderer keeps
the checked literal) and with a different date in every call (``distinct``).
The database ``jobledger_bench`` is created afresh.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile

import benchtools

DATABASE = "jobledger_bench"
SCRIPTS = {
    "repeated": "SELECT jobledger.submit_job('bench_daily', '{\"day\": \"2026-11-01\"}');\n",
    "distinct": (
        "\\set d random(0, 1000000)\n"
        "SELECT jobledger.submit_job('bench_daily',"
        " pg_catalog.jsonb_build_object('day', (date '2000-01-01' + (:d)::integer)::text));\n"
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=15)
    args = parser.parse_args()

    with benchtools.fresh_database(DATABASE) as conn:
        conn.execute("CREATE TABLE public.daily (day date NOT NULL, n bigint)")
        conn.execute(
            "SELECT jobledger.define_job('bench_daily',"
            " 'SELECT {day} AS day, count(*) AS n FROM pg_catalog.pg_class WHERE relpages > 0',"
            " 'daily', params => '{\"day\": {\"type\": \"date\"}}')"
        )
        results = {}
        for name, script in SCRIPTS.items():
            conn.execute("TRUNCATE jobledger.run CASCADE")
            conn.execute("CHECKPOINT")
            results[name] = pgbench(script, args.clients, args.seconds)
            results[name]["runs_recorded"] = conn.execute(
                "SELECT count(*) AS n FROM jobledger.run").fetchone()["n"]
    print(json.dumps({
        "benchmark": "submit_job",
        "command": f"pgbench -n -M prepared -c {args.clients} -j {min(args.clients, os.cpu_count() or 1)}"
                   f" -T {args.seconds} -f <script>",
        "scripts": SCRIPTS,
        "target_per_second": 5000,
        "results": results,
        "machine": benchtools.machine(),
    }, indent=2))


def pgbench(script: str, clients: int, seconds: int) -> dict:
    """Run pgbench with ``script``; calls per second and latency."""
    with tempfile.NamedTemporaryFile("w", suffix=".sql") as file:
        file.write(script)
        file.flush()
        command = [
            str(pathlib.Path(benchtools.pg_bindir()) / "pgbench"), "-n", "-M", "prepared",
            "-c", str(clients), "-j", str(min(clients, os.cpu_count() or 1)), "-T", str(seconds),
            "-f", file.name, DATABASE,
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"pgbench failed: {done.stderr.strip()}")
    tps = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", done.stdout)
    latency = re.search(r"latency average = ([0-9.]+) ms", done.stdout)
    failed = re.search(r"number of failed transactions: ([0-9]+)", done.stdout)
    return {
        "calls_per_second": round(float(tps.group(1)), 1),
        "latency_ms_mean": float(latency.group(1)),
        "failed": int(failed.group(1)) if failed else 0,
    }


if __name__ == "__main__":
    main()
