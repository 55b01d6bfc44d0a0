"""Run metrics recorded by real runner processes, per destination kind
(docs/runner.md, "Run metrics"): what each kind measures, that the figures
agree with the ledger and the destination, and job_stats over them."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys
import tempfile
from typing import Iterator

import pytest

import dbtools
import runnertools
from jobledger.core import dataset_manifest

LAKE_KEYS = {"rows", "query_ms", "write_ms", "arrow_bytes", "first_row_ms"}
QUERY = "SELECT g AS n, repeat('x', 100) AS pad FROM generate_series(1, {n}) AS g"
PARAMS = {"n": {"type": "integer"}}


@pytest.fixture
def lake_dir() -> Iterator[pathlib.Path]:
    """A directory the database server's OS user can read (tmp_path may be private)."""
    path = pathlib.Path(tempfile.mkdtemp(prefix="jl_metrics_"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def drain(start_runner) -> None:
    runner = start_runner("--drain")
    assert runner.wait() == 0, runner.log()


def succeeded(db, run) -> dict:
    row = dbtools.run_row(db, run)
    assert row["status"] == "succeeded", row
    assert row["metrics"]["rows"] == row["rows_written"], row
    return row


def assert_lake_times(metrics: dict) -> None:
    assert all(metrics[k] >= 0 for k in ("query_ms", "write_ms", "first_row_ms")), metrics
    assert metrics["first_row_ms"] <= metrics["query_ms"], metrics
    assert metrics["arrow_bytes"] > 0, metrics


def test_table_runs_record_rows_and_statement_time(db, start_runner) -> None:
    db.execute("CREATE TABLE public.landing (n integer, pad text)")
    runnertools.define(db, "app", QUERY, "public.landing", params=PARAMS)
    runnertools.define(db, "over", QUERY, "public.landing", "overwrite", params=PARAMS)
    app = runnertools.submit(db, "app", {"n": 40})
    drain(start_runner)
    over = runnertools.submit(db, "over", {"n": 25})
    drain(start_runner)
    for run, rows in ((app, 40), (over, 25)):
        metrics = succeeded(db, run)["metrics"]
        # One INSERT ... SELECT: no first row, no separate query and write
        # times, no bytes (docs/runner.md says why).
        assert set(metrics) == {"rows", "statement_ms"} and metrics["rows"] == rows, metrics
        assert metrics["statement_ms"] >= 0
    assert db.execute("SELECT count(*) AS n FROM public.landing").fetchone() == {"n": 25}


def test_result_runs_record_the_ipc_bytes(db, start_runner) -> None:
    runnertools.define(db, "res", QUERY, "result", params=PARAMS)
    run = runnertools.submit(db, "res", {"n": 300})
    drain(start_runner)
    metrics = succeeded(db, run)["metrics"]
    assert set(metrics) == LAKE_KEYS | {"bytes"} and metrics["rows"] == 300, metrics
    assert_lake_times(metrics)
    ipc = db.execute("SELECT length(data) AS n FROM jobledger.outputs(%s) WHERE name = 'result'",
                     (run,)).fetchone()["n"]
    assert metrics["bytes"] == ipc > 0


def test_parquet_runs_record_the_bytes_of_their_files(db, start_runner, lake_dir) -> None:
    root = lake_dir / "ds"
    runnertools.define(db, "pq", QUERY, f"parquet:{root}?create_if_missing=true", params=PARAMS)
    first = runnertools.submit(db, "pq", {"n": 1000})
    drain(start_runner)
    second = runnertools.submit(db, "pq", {"n": 10})
    drain(start_runner)
    for run, rows in ((first, 1000), (second, 10)):
        row = succeeded(db, run)
        metrics = row["metrics"]
        assert set(metrics) == LAKE_KEYS | {"bytes"} and metrics["rows"] == rows, metrics
        assert_lake_times(metrics)
        # This version's own files (an append lists the earlier ones too).
        manifest = dataset_manifest.read(root, int(row["snapshot_id"]))
        added = set(manifest.added)
        on_disk = sum((root / f.path).stat().st_size for f in manifest.files if f.path in added)
        assert metrics["bytes"] == on_disk > 0


def test_a_query_without_rows_has_no_first_row(db, start_runner) -> None:
    runnertools.define(db, "none", QUERY + " WHERE g < 0", "result", params=PARAMS)
    run = runnertools.submit(db, "none", {"n": 5})
    drain(start_runner)
    metrics = succeeded(db, run)["metrics"]
    assert metrics["rows"] == 0 and "first_row_ms" not in metrics and metrics["bytes"] > 0, metrics


def test_delta_runs_record_times_but_no_bytes(db, start_runner, lake_dir) -> None:
    pytest.importorskip("deltalake")
    uri = str(lake_dir / "delta")
    runnertools.define(db, "dl", QUERY, f"delta:{uri}?create_if_missing=true", params=PARAMS)
    run = runnertools.submit(db, "dl", {"n": 123})
    drain(start_runner)
    metrics = succeeded(db, run)["metrics"]
    assert set(metrics) == LAKE_KEYS and metrics["rows"] == 123, metrics
    assert_lake_times(metrics)


def test_a_failed_run_records_no_metrics(db, start_runner) -> None:
    db.execute("CREATE TABLE public.landing (n integer, pad text)")
    runnertools.define(db, "bad", "SELECT 1 / ({n} - {n}) AS n, 'x' AS pad", "public.landing", params=PARAMS)
    runnertools.define(db, "badres", "SELECT 1 / ({n} - {n}) AS n", "result", params=PARAMS)
    runs = [runnertools.submit(db, job, {"n": 1}) for job in ("bad", "badres")]
    drain(start_runner)
    for run in runs:
        row = dbtools.run_row(db, run)
        assert (row["status"], row["metrics"]) == ("failed", None), row


def test_job_stats_and_the_cli_show_the_metrics(db, start_runner) -> None:
    runnertools.define(db, "res", QUERY, "result", params=PARAMS)
    runs = [runnertools.submit(db, "res", {"n": n}) for n in (10, 20, 30)]
    drain(start_runner)
    metrics = [succeeded(db, run)["metrics"] for run in runs]
    first_rows = sorted(m["first_row_ms"] for m in metrics)
    stats = db.execute("SELECT succeeded, p50_rows, p95_rows, p50_first_row_ms, p50_bytes, p95_bytes"
                       " FROM jobledger.job_stats WHERE job = 'res'").fetchone()
    byte_sizes = sorted(m["bytes"] for m in metrics)
    assert stats["succeeded"] == 3 and stats["p50_rows"] == 20 and stats["p95_rows"] == pytest.approx(29)
    assert stats["p50_first_row_ms"] == pytest.approx(first_rows[1])
    assert stats["p50_bytes"] == byte_sizes[1]
    assert stats["p95_bytes"] == pytest.approx(byte_sizes[1] + 0.9 * (byte_sizes[2] - byte_sizes[1]))

    def cli(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "jobledger", *args, "--dsn", runnertools.dsn(db)],
                              capture_output=True, text=True, check=False, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
        assert done.returncode == 0, done.stderr
        return done.stdout

    shown = cli("show", str(runs[0]))
    line = next(line for line in shown.splitlines() if line.startswith("metrics"))
    assert "rows 10" in line and f"first row {metrics[0]['first_row_ms']} ms" in line, shown
    assert json.loads(cli("show", str(runs[0]), "--json"))["metrics"] == metrics[0]
