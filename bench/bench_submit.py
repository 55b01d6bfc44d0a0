"""submit_job's cost: the first call of a fresh session, and throughput next to a plain INSERT.

Run by ``make bench`` (bench/run.py) with PG* naming a server where the
extension is installed; prints one JSON object.  The database
``jobledger_bench`` is created afresh, with one job::

    bench_daily: SELECT {day} AS day, count(*) AS n FROM pg_catalog.pg_class WHERE relpages > 0

``first_submit_ms``: for each of ``--sessions`` fresh connections (psycopg),
connect, then time only the first ``SELECT jobledger.submit_job(...)`` of the
session (client-side wall time of that one statement; connecting is outside
the timing), then a second call in the same session.  Floors, each in a
fresh session of its own: ``SELECT 1`` (round trip and a cold backend), and
an empty ``DO ... LANGUAGE plpython3u`` block (starting PL/Python's
interpreter, which any PL/Python submit_job pays).  Every call binds a
different date.  One session is run first and reported apart (``warmup_session``)
so that the figures describe a server whose files are in the page cache.

``throughput``: one pgbench run per parameter variant with two scripts side
by side, ``pgbench -n -M prepared -c 4 -j 2 -T <s> -f submit.sql@1 -f insert.sql@1``:

- ``submit.sql``: ``SELECT jobledger.submit_job('bench_daily', <params>)``;
- ``insert.sql``: the plain equivalent: the same ledger row (its values taken
  from a row a real submit_job wrote) inserted and notified in one statement,
  the CTE submit_job itself runs (block ``insert_run`` of python/jobledger/server/queries.sql).

Variants: ``repeated`` (the same day in every call) and ``distinct`` (a
random day in every call; the INSERT then writes that day into parameters and
rendered_sql).  Both scripts run as the same role, the bootstrap superuser of
PG*: the plain INSERT needs DML on the ledger, which only the extension's
owner has, so submit_job is measured as that role too.

pgbench picks a script at random for each transaction by weight, so the two
scripts' transaction counts, and the per-script "tps" it prints, are equal
by construction (each about half the total) whatever they cost.  What the
run compares is their mean latency under the same load at the same time
(from pgbench's per-transaction log, without each client's first call of
each script, which first_submit_ms measures): ``ratio = insert_latency /
submit_latency``.  That is not the ratio of what each would do alone: with 4
busy backends on a small machine the INSERT's latency is mostly waiting for
a CPU the submits hold, so the side-by-side ratio comes out much nearer 1.
Hence also ``alone``: each script run by itself (same options, a few seconds),
in rounds that alternate which goes first so that drifting load on a shared
machine falls on both; ``alone.ratio`` is the median of the rounds'
``submit_tps / insert_tps``.  On a machine others load too, even those
rounds swing widely, so also ``server_cpu``: the CPU time one backend spends
per call of each script (one client calling in a loop; read from
/proc/<pid>/stat, so only for a server on this host), which other load
hardly changes; ``server_cpu.ratio = insert / submit`` is what the
throughput ratio tends to on a CPU-bound server, leaving out the client's
share and contention (NOTIFY serialises commits).  The issue's target is 0.8.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time

import psycopg
from psycopg import rows, sql

import benchtools

DATABASE = "jobledger_bench"
JOB = "bench_daily"
TEMPLATE = "SELECT {day} AS day, count(*) AS n FROM pg_catalog.pg_class WHERE relpages > 0"
NOTIFY_CHANNEL = "jobledger_runs"  # submit.NOTIFY_CHANNEL; checked against a real submit below
SAMPLE_DAY = "2026-11-01"
# pgbench computes the distinct variant's day; both scripts use the same expression.
DISTINCT_DAY = "(date '2000-01-01' + (:d)::integer)::text"
TARGET_FIRST_SUBMIT_MS = 25
TARGET_RATIO = 0.8

SUBMIT_SCRIPTS = {
    "repeated": f"SELECT jobledger.submit_job('{JOB}', '{{\"day\": \"{SAMPLE_DAY}\"}}');\n",
    "distinct": (
        "\\set d random(0, 1000000)\n"
        f"SELECT jobledger.submit_job('{JOB}', pg_catalog.jsonb_build_object('day', {DISTINCT_DAY}));\n"
    ),
}

# submit_job's own insert (insert_run in server/queries.sql) with the row's values in place
# of its parameters; {day} is where the day goes in parameters and rendered_sql.
INSERT_SCRIPT = """\
WITH run AS (
    INSERT INTO jobledger.run (job, job_version, parameters, rendered_sql, priority, run_after,
                               max_attempts, idempotency_key, submitted_by)
    VALUES ({job}, {job_version}, ({parameters})::jsonb, {rendered_sql}, {priority}, pg_catalog.now(),
            {max_attempts}, {idempotency_key}, {submitted_by})
    ON CONFLICT (job, submitted_by, idempotency_key) DO NOTHING
    RETURNING id, job
)
SELECT run.id::text AS id, pg_catalog.pg_notify({channel}, '') FROM run;
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--sessions", type=int, default=30)
    parser.add_argument("--alone-rounds", type=int, default=3,
                        help="rounds of each script run alone, one after the other (0: none)")
    parser.add_argument("--alone-seconds", type=int, default=5)
    parser.add_argument("--cpu-seconds", type=float, default=3,
                        help="seconds of calls per script for server_cpu (0: none)")
    parser.add_argument("--extension-version", help="an older installed version to measure (default: the default)")
    parser.add_argument("--database", default="jobledger_bench")
    args = parser.parse_args()
    global DATABASE
    DATABASE = args.database

    with benchtools.fresh_database(DATABASE, args.extension_version) as conn:
        version = conn.execute(
            "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'jobledger'").fetchone()["extversion"]
        conn.execute("CREATE TABLE public.daily (day date NOT NULL, n bigint)")
        conn.execute("SELECT jobledger.define_job(%s, %s, 'daily', params => '{\"day\": {\"type\": \"date\"}}')",
                     [JOB, TEMPLATE])
        row = sample_row(conn)
        first = first_submit(args.sessions)
        throughput = {}
        for variant, submit_script in SUBMIT_SCRIPTS.items():
            insert_script = insert_statement(row, distinct=variant == "distinct")
            conn.execute("TRUNCATE jobledger.run CASCADE")
            conn.execute("VACUUM ANALYZE jobledger.run")
            conn.execute("CHECKPOINT")
            loadavg_before = loadavg()
            result = pgbench({"submit": submit_script, "insert": insert_script},
                             args.clients, args.threads, args.seconds)
            result["loadavg_before"] = loadavg_before
            result["loadavg_after"] = loadavg()
            result["runs_recorded"] = conn.execute("SELECT count(*) AS n FROM jobledger.run").fetchone()["n"]
            if args.alone_rounds:
                result["alone"] = alone({"submit": submit_script, "insert": insert_script}, args.clients,
                                        args.threads, args.alone_seconds, args.alone_rounds)
            if args.cpu_seconds:
                result["server_cpu"] = server_cpu({"submit": submit_script, "insert": insert_script},
                                                  args.cpu_seconds)
            throughput[variant] = result
    print(json.dumps({
        "benchmark": "submit_job",
        "extension_version": version,
        "first_submit_ms": first,
        "throughput": {
            "command": f"pgbench -n -M prepared -c {args.clients} -j {args.threads} -T {args.seconds}"
                       " -f submit.sql@1 -f insert.sql@1 " + DATABASE,
            "role": "the bootstrap superuser (PG*), for both scripts",
            "ratio_basis": "insert latency_ms_mean / submit latency_ms_mean in the same run, without"
                           " each client's first call (pgbench splits transactions between the scripts by"
                           " weight, so their tps are equal by construction)",
            "server_cpu_basis": "CPU time (user + system, /proc/<pid>/stat) of one backend calling each script"
                                " in a loop for a few seconds (psycopg, one client, after 20 warm-up calls), per call;"
                                " ratio = insert / submit",
            "alone_basis": f"submit tps / insert tps, each script alone ({args.alone_seconds} s,"
                           " same options), in rounds that alternate which runs first; median of the rounds",
            "target_ratio": TARGET_RATIO,
            "scripts": {"submit": SUBMIT_SCRIPTS,
                        "insert": {v: insert_statement(row, distinct=v == "distinct") for v in SUBMIT_SCRIPTS}},
            "results": throughput,
        },
        "machine": benchtools.machine() | {"loadavg": loadavg()},
    }, indent=2))


def sample_row(conn: psycopg.Connection) -> dict:
    """The ledger row a real submit_job writes for SAMPLE_DAY, and a check that
    it notified NOTIFY_CHANNEL once, with an empty payload (any role may LISTEN)."""
    notified: list[psycopg.Notify] = []
    conn.add_notify_handler(notified.append)
    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(NOTIFY_CHANNEL)))
    run = conn.execute("SELECT jobledger.submit_job(%s, %s::jsonb)::text AS id",
                       [JOB, json.dumps({"day": SAMPLE_DAY})]).fetchone()["id"]
    row = conn.execute(
        "SELECT job, job_version, parameters::text AS parameters, rendered_sql, priority, max_attempts,"
        " idempotency_key, submitted_by::text AS submitted_by, run_after = created_at AS run_now"
        " FROM jobledger.run WHERE id = %s", [run]).fetchone()
    conn.execute("SELECT 1")  # the notification arrives with a later reply at the latest
    conn.execute(sql.SQL("UNLISTEN {}").format(sql.Identifier(NOTIFY_CHANNEL)))
    conn.remove_notify_handler(notified.append)
    if [(n.channel, n.payload) for n in notified] != [(NOTIFY_CHANNEL, "")]:
        sys.exit(f"submit_job did not notify {NOTIFY_CHANNEL!r} once with an empty payload: {notified}")
    if not row["run_now"]:
        sys.exit("submit_job's run_after is not its created_at (now()): the INSERT script would differ")
    for column in ("parameters", "rendered_sql"):
        if row[column].count(SAMPLE_DAY) != 1:
            sys.exit(f"the submitted {column} does not hold {SAMPLE_DAY} once: {row[column]!r}")
    return row


def insert_statement(row: dict, distinct: bool) -> str:
    """The insert.sql script for ``row``; with ``distinct``, pgbench's random
    day in place of SAMPLE_DAY in parameters and rendered_sql."""
    def text_with_day(value: str) -> str:
        if not distinct:
            return literal(value)
        before, after = value.split(SAMPLE_DAY)
        return f"{literal(before)} || {DISTINCT_DAY} || {literal(after)}"

    statement = INSERT_SCRIPT.format(
        job=literal(row["job"]), job_version=int(row["job_version"]),
        parameters=text_with_day(row["parameters"]), rendered_sql=text_with_day(row["rendered_sql"]),
        priority=int(row["priority"]), max_attempts=int(row["max_attempts"]),
        idempotency_key="NULL" if row["idempotency_key"] is None else literal(row["idempotency_key"]),
        submitted_by=literal(row["submitted_by"]) + "::name", channel=literal(NOTIFY_CHANNEL),
    )
    # pgbench reads ":name" anywhere in a script as a variable; only :d may occur.
    stray = set(re.findall(r"(?<!:):([A-Za-z_]\w*)", statement)) - {"d"}
    if stray:
        sys.exit(f"the INSERT script would hold pgbench variables {sorted(stray)}: {statement}")
    # The script is one statement on several lines: pgbench wants it on one
    # (a statement ends at a semicolon, but \set lines must come first).
    body = " ".join(line.strip() for line in statement.splitlines())
    return ("\\set d random(0, 1000000)\n" if distinct else "") + body + "\n"


def literal(value: str) -> str:
    """A standard-conforming SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def first_submit(sessions: int) -> dict:
    """Client-side wall time of the first and second submit_job in fresh sessions, and the floors."""
    days = iter(range(10**6))

    def next_params() -> str:
        """A day no other call of this benchmark binds."""
        return json.dumps({"day": f"{1000 + next(days):04d}-06-15"})

    def timed_in_fresh_session(statements: list[tuple[str, list]]) -> list[float]:
        with psycopg.connect(dbname=DATABASE, autocommit=True, row_factory=rows.dict_row) as conn:
            timings = []
            for query, params in statements:
                start = time.perf_counter()
                cursor = conn.execute(query, params)
                if cursor.description is not None:
                    cursor.fetchall()
                timings.append((time.perf_counter() - start) * 1000)
            return timings

    submit = f"SELECT jobledger.submit_job('{JOB}', %s::jsonb)"
    warmup = timed_in_fresh_session([(submit, [next_params()]), (submit, [next_params()])])
    firsts, seconds, select_1, plpython = [], [], [], []
    for _ in range(sessions):
        first, second = timed_in_fresh_session([(submit, [next_params()]), (submit, [next_params()])])
        firsts.append(first)
        seconds.append(second)
        select_1 += timed_in_fresh_session([("SELECT 1", [])])
        plpython += timed_in_fresh_session([("DO LANGUAGE plpython3u 'pass'", [])])
    return {
        "sessions": sessions,
        "target_first_ms": TARGET_FIRST_SUBMIT_MS,
        "first_submit": summary(firsts),
        "second_submit": summary(seconds),
        "floor_select_1": summary(select_1),
        "floor_plpython_do": summary(plpython),
        "warmup_session": {"first_submit": round(warmup[0], 2), "second_submit": round(warmup[1], 2)},
    }


def summary(values: list[float], digits: int = 2) -> dict:
    """Median, p90 (nearest rank), max and min."""
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered), digits),
        "p90": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], digits),
        "max": round(ordered[-1], digits),
        "min": round(ordered[0], digits),
    }


def pgbench(scripts: dict[str, str], clients: int, threads: int, seconds: int) -> dict:
    """One pgbench run with ``scripts`` (name: text) at weight 1 each; per-script
    figures as pgbench prints them, the same from its per-transaction log
    without each client's first call of each script (``steady``), and the ratios."""
    with tempfile.TemporaryDirectory() as directory:
        command = [str(pathlib.Path(benchtools.pg_bindir()) / "pgbench"), "-n", "-M", "prepared",
                   "-c", str(clients), "-j", str(threads), "-T", str(seconds),
                   "-l", "--log-prefix", str(pathlib.Path(directory) / "log")]
        for name, script in scripts.items():
            path = pathlib.Path(directory) / f"{name}.sql"
            path.write_text(script)
            command += ["-f", f"{path}@1"]
        done = subprocess.run(command + [DATABASE], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.exit(f"pgbench failed: {done.stderr.strip()}\n{done.stdout}")
        steady = steady_latencies(sorted(pathlib.Path(directory).glob("log.*")), list(scripts))
    per_script = {}
    for block in re.split(r"^SQL script \d+: ", done.stdout, flags=re.M)[1:]:
        name = pathlib.Path(block.splitlines()[0].strip()).stem
        per_script[name] = {
            "transactions": int(re.search(r"^ - ([0-9]+) transactions", block, re.M).group(1)),
            "tps": round(float(re.search(r"tps = ([0-9.]+)\)", block).group(1)), 1),
            "latency_ms_mean": float(re.search(r"latency average = ([0-9.]+) ms", block).group(1)),
            "latency_ms_stddev": float(re.search(r"latency stddev = ([0-9.]+) ms", block).group(1)),
            "failed": int(re.search(r"number of failed transactions: ([0-9]+)", block).group(1)),
            "steady": steady[name],
        }
    if set(per_script) != set(scripts):
        sys.exit(f"cannot read pgbench's per-script figures:\n{done.stdout}")
    total = float(re.search(r"tps = ([0-9.]+) \(without initial connection time\)", done.stdout).group(1))
    submit, insert = per_script["submit"], per_script["insert"]
    return {
        "submit": submit,
        "insert": insert,
        "total_tps": round(total, 1),
        "ratio": round(insert["steady"]["latency_ms_mean"] / submit["steady"]["latency_ms_mean"], 3),
        "ratio_with_first_calls": round(insert["latency_ms_mean"] / submit["latency_ms_mean"], 3),
        "tps_ratio_by_weight": round(submit["tps"] / insert["tps"], 3),
    }


def alone(scripts: dict[str, str], clients: int, threads: int, seconds: int, rounds: int) -> dict:
    """Each of "submit" and "insert" run alone, one after the other, ``rounds``
    times (alternating which goes first): tps of each and their ratio per round."""
    figures = []
    for round_ in range(rounds):
        order = ["submit", "insert"] if round_ % 2 == 0 else ["insert", "submit"]
        tps = {name: pgbench_tps(scripts[name], clients, threads, seconds) for name in order}
        figures.append({"submit_tps": tps["submit"], "insert_tps": tps["insert"],
                        "ratio": round(tps["submit"] / tps["insert"], 3), "loadavg_after": loadavg()})
    return {"ratio": statistics.median(f["ratio"] for f in figures), "rounds": figures}


def server_cpu(scripts: dict[str, str], seconds: float) -> dict | None:
    """Per script: the server backend's CPU time per call, over ``seconds`` of
    calls from one psycopg connection after 20 warm-up calls, and the client's wall
    time per call.  Load from elsewhere on the machine hardly changes CPU time,
    which is why this is measured too.  None when the server's processes are
    not visible in /proc (a server on another host)."""
    ticks = os.sysconf("SC_CLK_TCK")
    figures = {}
    for name, script in scripts.items():
        statement, distinct = pgbench_to_psycopg(script)
        with psycopg.connect(dbname=DATABASE, autocommit=True, row_factory=rows.dict_row) as conn:
            stat = pathlib.Path(f"/proc/{conn.info.backend_pid}/stat")
            if not stat.exists():
                return None

            def cpu_seconds() -> float:
                fields = stat.read_text().rpartition(")")[2].split()
                return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime

            def call() -> None:
                conn.execute(statement, {"d": random.randrange(1000001)} if distinct else None).fetchall()

            for _ in range(20):
                call()
            cpu_before, wall_before = cpu_seconds(), time.perf_counter()
            calls = 0
            while time.perf_counter() - wall_before < seconds:
                call()
                calls += 1
            cpu, wall = cpu_seconds() - cpu_before, time.perf_counter() - wall_before
        figures[name] = {"calls": calls, "cpu_ms_per_call": round(cpu * 1000 / calls, 4),
                         "wall_ms_per_call": round(wall * 1000 / calls, 4),
                         "cpu_resolution_ms": round(1000 / ticks, 1)}
    figures["ratio"] = round(figures["insert"]["cpu_ms_per_call"] / figures["submit"]["cpu_ms_per_call"], 3)
    return figures


def pgbench_to_psycopg(script: str) -> tuple[str, bool]:
    """A pgbench script of this module as one psycopg statement (its :d a
    parameter, which the \\set line gave), and whether it has :d."""
    lines = [line for line in script.splitlines() if not line.startswith("\\set ")]
    statement = " ".join(lines).rstrip().rstrip(";").replace("%", "%%")
    return statement.replace("(:d)", "(%(d)s)"), "(:d)" in statement


def pgbench_tps(script: str, clients: int, threads: int, seconds: int) -> float:
    """tps of one pgbench run of ``script`` alone."""
    with tempfile.TemporaryDirectory() as directory:
        path = pathlib.Path(directory) / "script.sql"
        path.write_text(script)
        command = [str(pathlib.Path(benchtools.pg_bindir()) / "pgbench"), "-n", "-M", "prepared",
                   "-c", str(clients), "-j", str(threads), "-T", str(seconds), "-f", str(path), DATABASE]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"pgbench failed: {done.stderr.strip()}\n{done.stdout}")
    return round(float(re.search(r"tps = ([0-9.]+) \(without initial connection time\)", done.stdout).group(1)), 1)


def steady_latencies(logs: list[pathlib.Path], names: list[str]) -> dict:
    """Per script: latency figures from pgbench's per-transaction logs
    (``client_id transaction_no time_us script_no epoch epoch_us``), leaving
    out each client's first transaction of each script (its session's first
    call: what first_submit_ms measures)."""
    latencies: dict[int, list[float]] = {i: [] for i in range(len(names))}
    left_out = [0] * len(names)
    unreadable = [0] * len(names)
    seen: set[tuple[str, int]] = set()
    for log in logs:
        for line in log.read_text().splitlines():
            client, _, time_us, script = line.split()[:4]
            if (client, int(script)) not in seen:
                seen.add((client, int(script)))
                left_out[int(script)] += 1
            elif re.fullmatch(r"[0-9]+", time_us):  # "failed" or "skipped" otherwise
                latencies[int(script)].append(int(time_us) / 1000)
            else:
                unreadable[int(script)] += 1
    result = {}
    for i, name in enumerate(names):
        values = latencies[i]
        if not values:
            sys.exit(f"pgbench's log holds no transactions of {name}")
        result[name] = {"transactions": len(values), "first_calls_left_out": left_out[i],
                        "unreadable": unreadable[i],
                        "latency_ms_mean": round(statistics.fmean(values), 3)} | summary(values, digits=3)
    return result


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages (the machine is shared)."""
    return " ".join(pathlib.Path("/proc/loadavg").read_text().split()[:3])


if __name__ == "__main__":
    main()
