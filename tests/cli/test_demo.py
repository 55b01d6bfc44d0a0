"""`make demo`'s script (demo/demo.sh) against the test cluster, in a database
and lake of its own: it must run to the end, drain every run it submitted
(one cancelled), and read the Delta table's versions back by snapshot_id."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess

import psycopg
from psycopg import rows

import runnertools

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEMO_DB = "jobledger_demo_test"


def test_the_demo_runs_to_the_end(db: psycopg.Connection, tmp_path: pathlib.Path) -> None:
    lake = tmp_path / "lake"
    env = {**os.environ, "DEMO_DB": DEMO_DB, "DEMO_LAKE": str(lake)}
    try:
        done = subprocess.run(["sh", "demo/demo.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=300, check=False)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        with psycopg.connect(runnertools.dsn(db, dbname=DEMO_DB), row_factory=rows.dict_row) as demo:
            statuses = demo.execute("SELECT id, job, status, snapshot_id FROM jobledger.runs ORDER BY job").fetchall()
        assert sorted({r["status"] for r in statuses}) == ["cancelled", "succeeded"], statuses
        lake_runs = [r for r in statuses if r["job"] == "region_revenue"]
        assert sorted(r["snapshot_id"] for r in lake_runs) == ["0", "1"]
        history = re.findall(r"^  v(\d) WRITE run=(\S+)$", done.stdout, re.M)
        assert sorted(history) == sorted((r["snapshot_id"], str(r["id"])) for r in lake_runs), done.stdout
        assert (lake / "region_revenue" / "_delta_log").is_dir()
        assert "wrote 4 rows as version 1" in done.stdout, done.stdout
    finally:
        db.execute(f"DROP DATABASE IF EXISTS {DEMO_DB} WITH (FORCE)")
