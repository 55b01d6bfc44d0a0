"""Lake writes (``delta:``, ``lance:``): a real runner's peak memory and speed against a hand-written baseline.

Run by ``make bench BENCH=lake`` (bench/run.py) or directly as
``.venv/bin/python bench/bench_lake.py`` with PG* naming a server where the
extension is installed; prints one JSON object, progress on stderr.

The query (``QUERY``: bigint, text, numeric(12,2), timestamptz, double
precision over ``generate_series``) is written, for each format and each
size (BENCH_LAKE_ROWS, default ``1000000,10000000``), into a fresh table
in a local temporary directory by two processes, one after the other:

* ``runner``: a job with destination ``<format>:<dir>?create_if_missing=true``
  is defined and submitted, then a real ``jobledger runner --drain
  --concurrency 1`` process (``python -m jobledger``) claims, streams
  (``arrow_batches``), writes, commits and records it, and exits;
* ``baseline``: what one would write by hand, in a process of its own
  (``bench_lake.py --baseline``): psycopg's binary ``COPY (<query>) TO
  STDOUT`` read with ``Copy.rows()``, rows gathered into a
  ``pyarrow.RecordBatch`` every 65,536, the batches streamed through a
  ``pyarrow.RecordBatchReader`` into ``deltalake.write_deltalake`` (or
  ``lance.write_dataset``), one commit.

Both are measured the same way, from this (small: psycopg only) process:
wall time from the start of the process to its exit, and peak RSS, the
larger of the child's ``ru_maxrss`` (``os.wait4``) and its ``VmHWM`` polled
every 10 ms from ``/proc/<pid>/status``.  (Linux's ``ru_maxrss`` of a child
also counts the parent's peak at the fork; this parent stays far below the
children, see ``parent_peak_rss_bytes``.)  The runner's time in the ledger
(``finished_at - started_at``, claim to commit) and the baseline's own
(connect to commit) are reported too.  Each measurement is taken
BENCH_LAKE_REPEAT times (default 2), runner and baseline alternately: the
time counted is the best (the machine is shared), the peak RSS the largest.

Targets (issue 14): the runner's peak RSS for the largest size at most 1.1x
that for the smallest; its rows/s at least 0.8x the baseline's (largest
size, process wall time).

A format is one ``Format`` entry (``FORMATS``): a destination prefix, the
Python module it needs and the baseline's write call.  ``lance`` is
measured when jobledger accepts ``lance:`` destinations and pylance is
installed; BENCH_LAKE_FORMATS (e.g. ``delta``) restricts the list.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import pathlib
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Callable

import psycopg

import benchtools

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))

from jobledger.core import destinations  # noqa: E402  (pure Python: the parent stays small)

DATABASE = "jobledger_bench_lake"
QUERY = """SELECT g::int8 AS id, 'customer ' || (g % 100003) AS label, ((g % 100000) / 7.0)::numeric(12,2) AS amount,
       timestamptz '2020-01-01' + g * interval '1 second' AS at, g * 0.5::float8 AS score
  FROM generate_series(1, {rows}) AS g"""
COPY_TYPES = ["int8", "text", "numeric", "timestamptz", "float8"]
BATCH = 65536
SIZES = [int(n) for n in os.environ.get("BENCH_LAKE_ROWS", "1000000,10000000").split(",")]
REPEAT = int(os.environ.get("BENCH_LAKE_REPEAT", "2"))
POLL_SECONDS = 0.01
TARGET_RSS_RATIO = 1.1
TARGET_THROUGHPUT_RATIO = 0.8


def say(message: str) -> None:
    print(f"bench_lake: {message}", file=sys.stderr, flush=True)


# ---- the hand-written baselines (run in a child: --baseline FORMAT ROWS URI) ------------------


def baseline_schema() -> Any:
    import pyarrow

    return pyarrow.schema([("id", pyarrow.int64()), ("label", pyarrow.string()),
                           ("amount", pyarrow.decimal128(12, 2)), ("at", pyarrow.timestamp("us", tz="UTC")),
                           ("score", pyarrow.float64())])


def copy_reader(conn: psycopg.Connection, rows: int) -> Any:
    """The query through binary COPY as a RecordBatchReader of BATCH-row batches."""
    import pyarrow

    schema = baseline_schema()

    def batch(chunk: list[tuple]) -> pyarrow.RecordBatch:
        return pyarrow.record_batch([pyarrow.array(column, field.type)
                                     for column, field in zip(zip(*chunk), schema)], schema=schema)

    def batches():  # type: ignore[no-untyped-def]
        with conn.cursor() as cur, cur.copy(f"COPY ({QUERY.format(rows=rows)}) TO STDOUT (FORMAT BINARY)") as copy:
            copy.set_types(COPY_TYPES)
            chunk: list[tuple] = []
            for row in copy.rows():
                chunk.append(row)
                if len(chunk) == BATCH:
                    yield batch(chunk)
                    chunk = []
            if chunk:
                yield batch(chunk)

    return pyarrow.RecordBatchReader.from_batches(schema, batches())


def write_delta(uri: str, reader: Any) -> None:
    import deltalake

    deltalake.write_deltalake(uri, reader, mode="append")


def write_lance(uri: str, reader: Any) -> None:
    import lance

    lance.write_dataset(reader, uri, mode="create")


def baseline_child(fmt: str, rows: int, uri: str) -> None:
    started = time.perf_counter()
    with psycopg.connect(dbname=DATABASE) as conn:
        FORMATS[fmt].baseline(uri, copy_reader(conn, rows))
    print(json.dumps({"seconds": time.perf_counter() - started}))


# ---- formats ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Format:
    prefix: str  # the destination's prefix, "delta:"
    module: str  # what the runner and the baseline import
    baseline: Callable[[str, Any], None]  # write(uri, RecordBatchReader): one commit


FORMATS = {
    "delta": Format("delta:", "deltalake", write_delta),
    "lance": Format("lance:", "lance", write_lance),
}


def available(name: str) -> str | None:
    """None when ``name`` can be measured here, else why not."""
    fmt = FORMATS[name]
    try:
        destinations.parse(f"{fmt.prefix}/tmp/x?create_if_missing=true")
    except Exception as exc:  # noqa: BLE001  (jobledger does not know the format yet)
        return f"jobledger does not accept {fmt.prefix} destinations ({exc})"
    if importlib.util.find_spec(fmt.module) is None:
        return f"the Python module {fmt.module} is not installed"
    return None


# ---- measuring a child process --------------------------------------------------------------


def measured(argv: list[str]) -> dict[str, Any]:
    """Run ``argv`` to its end: wall seconds, peak RSS (ru_maxrss and polled VmHWM), stdout."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    polled = [0]
    done = threading.Event()

    def poll() -> None:
        status = pathlib.Path(f"/proc/{proc.pid}/status")
        while not done.is_set():
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        polled[0] = max(polled[0], int(line.split()[1]) * 1024)
            except (OSError, ValueError, IndexError):
                pass
            done.wait(POLL_SECONDS)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    done.set()
    poller.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])} ... exited with {proc.returncode}")
    maxrss = usage.ru_maxrss * 1024
    return {"wall_seconds": seconds, "peak_rss_bytes": max(maxrss, polled[0]), "ru_maxrss_bytes": maxrss,
            "vmhwm_polled_bytes": polled[0], "stdout": out}


def fresh_directory() -> pathlib.Path:
    directory = pathlib.Path(tempfile.mkdtemp(prefix="jl_bench_lake_"))
    directory.chmod(0o755)
    return directory


def runner_once(conn: psycopg.Connection, fmt: str, rows: int, n: int) -> dict[str, Any]:
    directory = fresh_directory()
    try:
        job = f"lake_{fmt}_{rows}_{n}"
        conn.execute("SELECT jobledger.define_job(%s, %s, %s)",
                     (job, QUERY.format(rows=rows), f"{FORMATS[fmt].prefix}{directory}/t?create_if_missing=true"))
        run = conn.execute("SELECT jobledger.submit_job(%s) AS id", (job,)).fetchone()["id"]
        result = measured([sys.executable, "-m", "jobledger", "runner", "--dsn", f"dbname={DATABASE}", "--drain",
                           "--set-role", "--concurrency", "1", "--worker-id", f"bench-{job}",
                           "--log-level", "warning"])
        row = conn.execute(
            "SELECT status, rows_written, EXTRACT(epoch FROM finished_at - started_at)::float8 AS seconds, error"
            "  FROM jobledger.run WHERE id = %s", (run,)).fetchone()
        if row["status"] != "succeeded" or row["rows_written"] != rows:
            raise SystemExit(f"run {run} of {job}: {row}")
        result["own_seconds"] = row["seconds"]
        result["bytes_on_disk"] = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
        return result
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def baseline_once(fmt: str, rows: int) -> dict[str, Any]:
    directory = fresh_directory()
    try:
        result = measured([sys.executable, __file__, "--baseline", fmt, str(rows), str(directory / "t")])
        result["own_seconds"] = json.loads(result["stdout"])["seconds"]
        result["bytes_on_disk"] = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
        return result
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def summary(results: list[dict[str, Any]], rows: int) -> dict[str, Any]:
    best = min(results, key=lambda r: r["wall_seconds"])
    return {
        "rows": rows,
        "wall_seconds": round(best["wall_seconds"], 2),
        "rows_per_second": round(rows / best["wall_seconds"]),
        "own_seconds": round(min(r["own_seconds"] for r in results), 2),
        "own_rows_per_second": round(rows / min(r["own_seconds"] for r in results)),
        "peak_rss_bytes": max(r["peak_rss_bytes"] for r in results),
        "peak_rss_mib": round(max(r["peak_rss_bytes"] for r in results) / 2**20, 1),
        "ru_maxrss_bytes": max(r["ru_maxrss_bytes"] for r in results),
        "vmhwm_polled_bytes": max(r["vmhwm_polled_bytes"] for r in results),
        "bytes_on_disk": best["bytes_on_disk"],
        "all_wall_seconds": [round(r["wall_seconds"], 2) for r in results],
    }


def measure_format(conn: psycopg.Connection, fmt: str) -> dict[str, Any]:
    sizes: dict[str, Any] = {}
    for rows in SIZES:
        runs: dict[str, list[dict[str, Any]]] = {"runner": [], "baseline": []}
        for n in range(REPEAT):
            runs["runner"].append(runner_once(conn, fmt, rows, n))
            runs["baseline"].append(baseline_once(fmt, rows))
            say(f"{fmt} {rows} rows, {n + 1}/{REPEAT}: runner {runs['runner'][-1]['wall_seconds']:.1f} s "
                f"{runs['runner'][-1]['peak_rss_bytes'] / 2**20:.0f} MiB, baseline "
                f"{runs['baseline'][-1]['wall_seconds']:.1f} s "
                f"{runs['baseline'][-1]['peak_rss_bytes'] / 2**20:.0f} MiB")
        sizes[str(rows)] = {path: summary(found, rows) for path, found in runs.items()}
    small, large = sizes[str(min(SIZES))], sizes[str(max(SIZES))]
    rss_ratio = large["runner"]["peak_rss_bytes"] / small["runner"]["peak_rss_bytes"]
    throughput_ratio = large["runner"]["rows_per_second"] / large["baseline"]["rows_per_second"]
    return {
        "destination": f"{FORMATS[fmt].prefix}<temporary directory>/t?create_if_missing=true",
        "sizes": sizes,
        "runner_peak_rss_ratio_large_to_small": round(rss_ratio, 3),
        "baseline_peak_rss_ratio_large_to_small": round(
            large["baseline"]["peak_rss_bytes"] / small["baseline"]["peak_rss_bytes"], 3),
        "throughput_ratio_runner_to_baseline": round(throughput_ratio, 3),
        "throughput_ratio_runner_to_baseline_own_time": round(
            large["runner"]["own_rows_per_second"] / large["baseline"]["own_rows_per_second"], 3),
        "throughput_ratio_by_size": {size: round(s["runner"]["rows_per_second"] / s["baseline"]["rows_per_second"], 3)
                                     for size, s in sizes.items()},
        "targets": {
            "peak_rss_ratio": {"target": TARGET_RSS_RATIO, "met": rss_ratio <= TARGET_RSS_RATIO},
            "throughput_ratio": {"target": TARGET_THROUGHPUT_RATIO, "met": throughput_ratio >= TARGET_THROUGHPUT_RATIO},
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", nargs=3, metavar=("FORMAT", "ROWS", "URI"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline:
        baseline_child(args.baseline[0], int(args.baseline[1]), args.baseline[2])
        return

    wanted = os.environ.get("BENCH_LAKE_FORMATS", ",".join(FORMATS)).split(",")
    result: dict[str, Any] = {
        "benchmark": "lake_write",
        "query": " ".join(QUERY.format(rows="<rows>").split()),
        "rows": SIZES,
        "batch_rows": BATCH,
        "repeat": REPEAT,
        "measured_as": "wall time and peak RSS of the runner process (jobledger runner --drain) and of the "
                       "baseline process, start to exit; best time, largest peak of the repeats",
        "formats": {},
        "skipped": {},
    }
    with benchtools.fresh_database(DATABASE) as conn:
        load = os.getloadavg()
        for fmt in wanted:
            why = available(fmt)
            if why is not None:
                result["skipped"][fmt] = why
                say(f"{fmt}: skipped, {why}")
                continue
            result["formats"][fmt] = measure_format(conn, fmt)
    result["parent_peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result["load_average_at_start"] = [round(x, 2) for x in load]
    result["machine"] = benchtools.machine()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
