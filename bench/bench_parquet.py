"""Parquet export: rows/s of jobledger's path against a hand-written baseline, and peak memory.

Run by ``make bench`` (bench/run.py) or directly as
``.venv/bin/python bench/bench_parquet.py`` with PG* naming a server where
the extension is installed; prints one JSON object.

Both paths export the same query (int8, numeric(12,2), text, timestamptz over
``generate_series``) to Parquet, alternately, ``--repeat`` times each; the
best run of each counts (the machine is shared, the best is the least
disturbed):

* ``jobledger``: ``arrow_batches.stream`` (binary server-side cursor) into
  ``parquet_dataset.write`` (temporary files, manifest, atomic publish);
* ``baseline``: what one would write by hand: ``COPY ... TO STDOUT (FORMAT
  BINARY)`` read with psycopg's ``Copy.rows()`` and typed loaders, columns
  collected into ``pyarrow.array``s every 65536 rows, one ``ParquetWriter``.

* ``runner``: the real runner path: a job with destination
  ``parquet:<directory>?create_if_missing=true`` is defined and submitted,
  and a ``jobledger.runner.process.Runner`` (what ``jobledger runner
  --drain`` runs) executes it: claim, run context, the same stream and
  writer, fenced lock, publish, manifest output, complete_run.  Its time is
  the run's ``finished_at - started_at`` from the ledger (claim to commit;
  the runner's start-up is not counted).

Peak memory: a child process exports 1M and then (another child) 10M rows with
jobledger's path, and two more children do the same through the runner
(``runner_peak_rss``), and report their peak RSS (``VmHWM``; ``ru_maxrss`` too, which
on Linux also counts the parent's peak inherited over fork and exec, so the
children run first, while the parent is small); constant memory means the two
peaks are about the same.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import psycopg
import pyarrow
import pyarrow.parquet

import benchtools

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "python"))

from jobledger.lake import arrow_batches, parquet_dataset  # noqa: E402

DATABASE = "jobledger_bench_parquet"
QUERY = """SELECT g::int8 AS id, ((g % 100000) / 7.0)::numeric(12,2) AS amount, 'row ' || g AS label,
       timestamptz '2020-01-01' + g * interval '1 second' AS at
  FROM generate_series(1, {rows}) AS g"""
BASELINE_SCHEMA = pyarrow.schema([("id", pyarrow.int64()), ("amount", pyarrow.decimal128(12, 2)),
                                  ("label", pyarrow.string()), ("at", pyarrow.timestamp("us", tz="UTC"))])
BATCH = 65536


def jobledger_export(conn: psycopg.Connection, rows: int, directory: pathlib.Path, run: str) -> int:
    with arrow_batches.stream(conn, QUERY.format(rows=rows), batch_rows=BATCH) as result:
        commit = parquet_dataset.write(directory, result.schema, result.batches, run=run, attempt=1,
                                       create_if_missing=True)
    return commit.rows_written


def baseline_export(conn: psycopg.Connection, rows: int, path: pathlib.Path) -> int:
    written = 0
    with pyarrow.parquet.ParquetWriter(path, BASELINE_SCHEMA) as writer, conn.cursor() as cur:
        with cur.copy(f"COPY ({QUERY.format(rows=rows)}) TO STDOUT (FORMAT BINARY)") as copy:
            copy.set_types(["int8", "numeric", "text", "timestamptz"])
            columns: list[list] = [[], [], [], []]
            for row in copy.rows():
                for column, value in zip(columns, row):
                    column.append(value)
                if len(columns[0]) == BATCH:
                    writer.write_batch(pyarrow.record_batch(columns, schema=BASELINE_SCHEMA))
                    written += BATCH
                    columns = [[], [], [], []]
            if columns[0]:
                writer.write_batch(pyarrow.record_batch(columns, schema=BASELINE_SCHEMA))
                written += len(columns[0])
    return written


def runner_export(rows: int, run_name: str) -> tuple[float, int]:
    """Define, submit and drain a parquet job through the runner; (seconds claim to commit, rows)."""
    from jobledger.runner import process

    directory = pathlib.Path(tempfile.mkdtemp(prefix="jl_bench_"))
    directory.chmod(0o755)  # the database server reads it at submit (another OS user)
    try:
        with psycopg.connect(dbname=DATABASE, autocommit=True) as conn:
            conn.execute("SELECT jobledger.define_job(%s, %s, %s)",
                         (run_name, QUERY.format(rows=rows), f"parquet:{directory}/ds?create_if_missing=true"))
            run = conn.execute("SELECT jobledger.submit_job(%s)", (run_name,)).fetchone()[0]
            process.Runner(process.Config(conninfo=f"dbname={DATABASE}", concurrency=1, drain=True,
                                          worker=f"bench-{run_name}")).run()
            status, done, seconds = conn.execute(
                "SELECT status, rows_written, EXTRACT(epoch FROM finished_at - started_at)::float8"
                "  FROM jobledger.run WHERE id = %s", (run,)).fetchone()
        assert status == "succeeded", status
        return seconds, done
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def runner_child(rows: int) -> None:
    """Export ``rows`` through the runner; print the peak RSS in bytes."""
    seconds, done = runner_export(rows, f"rss_{rows}")
    print(json.dumps({"rows": done, "seconds": round(seconds, 2), "peak_rss_bytes": peak_rss()}))


def timed(export, *args) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    done = export(*args)
    return time.perf_counter() - start, done


def child(rows: int) -> None:
    """Export ``rows`` with jobledger's path; print the peak RSS in bytes."""
    with psycopg.connect(dbname=DATABASE) as conn, tempfile.TemporaryDirectory() as tmp:
        seconds, done = timed(jobledger_export, conn, rows, pathlib.Path(tmp) / "ds", "child")
        files = sum(p.stat().st_size for p in (pathlib.Path(tmp) / "ds").glob("*.parquet"))
    print(json.dumps({"rows": done, "seconds": round(seconds, 2), "peak_rss_bytes": peak_rss(),
                      "ru_maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                      "parquet_bytes": files}))


def peak_rss() -> int:
    """This process's peak RSS: VmHWM, which starts afresh at exec.

    (ru_maxrss does not: Linux carries the parent's high-water mark over fork
    and exec, so a child of a large parent reports the parent's peak.)
    """
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--memory-rows", type=int, nargs=2, default=[1_000_000, 10_000_000])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--runner-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    if args.runner_child:
        runner_child(args.runner_child)
        return

    with benchtools.fresh_database(DATABASE):
        pass
    memory = {}
    for rows in args.memory_rows:
        done = subprocess.run([sys.executable, __file__, "--child", str(rows)], capture_output=True, text=True,
                              check=True)
        memory[str(rows)] = json.loads(done.stdout)
    runner_memory = {}
    for rows in args.memory_rows:
        done = subprocess.run([sys.executable, __file__, "--runner-child", str(rows)], capture_output=True,
                              text=True, check=True)
        runner_memory[str(rows)] = json.loads(done.stdout)
    best = {"jobledger": float("inf"), "baseline": float("inf"), "runner": float("inf")}
    with psycopg.connect(dbname=DATABASE) as conn, tempfile.TemporaryDirectory() as tmp:
        for n in range(args.repeat):
            seconds, done = timed(baseline_export, conn, args.rows, pathlib.Path(tmp) / f"baseline{n}.parquet")
            assert done == args.rows
            best["baseline"] = min(best["baseline"], seconds)
            seconds, done = timed(jobledger_export, conn, args.rows, pathlib.Path(tmp) / f"ds{n}", f"run{n}")
            assert done == args.rows
            best["jobledger"] = min(best["jobledger"], seconds)
            seconds, done = runner_export(args.rows, f"export_{n}")
            assert done == args.rows
            best["runner"] = min(best["runner"], seconds)
        same = (parquet_dataset.read_table(pathlib.Path(tmp) / "ds0").cast(BASELINE_SCHEMA)
                .equals(pyarrow.parquet.read_table(pathlib.Path(tmp) / "baseline0.parquet")))
    small, large = (memory[str(r)]["peak_rss_bytes"] for r in args.memory_rows)
    runner_small, runner_large = (runner_memory[str(r)]["peak_rss_bytes"] for r in args.memory_rows)
    print(json.dumps({
        "benchmark": "parquet_export",
        "query": " ".join(QUERY.format(rows=args.rows).split()),
        "rows": args.rows,
        "batch_rows": BATCH,
        "best_of": args.repeat,
        "rows_per_second": {name: round(args.rows / seconds) for name, seconds in best.items()},
        "ratio": round(best["baseline"] / best["jobledger"], 2),
        "runner_ratio": round(best["baseline"] / best["runner"], 2),
        "target_ratio": 0.8,
        "same_rows_as_baseline": same,
        "peak_rss": memory,
        "peak_rss_ratio_large_to_small": round(large / small, 2),
        "runner_peak_rss": runner_memory,
        "runner_peak_rss_ratio_large_to_small": round(runner_large / runner_small, 2),
        "machine": benchtools.machine(),
    }, indent=2))


if __name__ == "__main__":
    main()
