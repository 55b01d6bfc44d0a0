"""Destinations result and parquet: through real runner processes: every
mapped type round trip (SQL, Python client, CLI), the size cap, dataset
versions with append and overwrite, a crash between the publish and the
ledger, schema mismatch at submit, progress during a long write."""

from __future__ import annotations

import csv
import datetime
import decimal
import io
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
from typing import Iterator

import psycopg
import pyarrow
import pyarrow.parquet
import pytest

import dbtools
import runnertools
from jobledger import client
from jobledger.core import dataset_manifest
from jobledger.lake import parquet_dataset

LAKE_FUNCTIONS = (
    "jobledger_internal.claim_runs(text, integer)",
    "jobledger_internal.complete_run(uuid, integer, text, bigint, text, jsonb)",
    "jobledger_internal.fail_run(uuid, integer, text, text, text, text, boolean, interval)",
    "jobledger_internal.heartbeat(text, uuid[])",
    "jobledger_internal.release_run(uuid, integer, text)",
    "jobledger.reconcile_orphaned(text, interval)",
    "jobledger_internal.emit_output(uuid, text, text, bytea, uuid[])",
    "jobledger_internal.lock_run(uuid, integer, text)",
    "jobledger_internal.report_progress(uuid, integer, text, bigint, integer)",
)


@pytest.fixture
def lake_dir() -> Iterator[pathlib.Path]:
    """A directory the database server's OS user can read (tmp_path may be private)."""
    path = pathlib.Path(tempfile.mkdtemp(prefix="jl_lake_"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


# Every mapped type: row 1 extreme values, row 2 all NULL (CAST keeps each
# column's type modifier, which a bare NULL in a UNION would lose).
def _column(name: str, literal: str, pg_type: str) -> str:
    return f"CAST(CASE WHEN k = 1 THEN {literal} END AS {pg_type}) AS {name}"


TYPES = [
    ("i2", "'32767'", "smallint"),
    ("i4", "'-2147483648'", "integer"),
    ("i8", "'9223372036854775807'", "bigint"),
    ("f4", "'1.5'", "real"),
    ("f8", "'NaN'", "double precision"),
    ("f8inf", "'-Infinity'", "double precision"),
    ("d38", "'-99999999999999999999999999999999999.999'", "numeric(38,3)"),
    ("d60", "'123456789012345678901234567890123456789012345678901234.000001'", "numeric(60,6)"),
    ("t", "E'h\\u00e9llo, \"w\\u00f6rld\" \\U0001F389\\n'", "text"),
    ("vc", "'ab'", "varchar(5)"),
    ("ch", "'x'", "char(3)"),
    ("b", "'true'", "boolean"),
    ("dt", "'0001-01-01'", "date"),
    ("ts", "'9999-12-31 23:59:59.999999'", "timestamp"),
    ("tz", "'2026-03-29 01:30:00.5+02'", "timestamptz"),
    ("u", "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", "uuid"),
    ("j", "'{\"a\": [1, 2.50, \"x\"], \"\\u00fc\": null}'", "jsonb"),
    ("by", "'\\xdeadbeef'", "bytea"),
    ("arr", "'{1,NULL,3}'", "bigint[]"),
    ("tarr", "'{a,NULL,\"b c\"}'", "text[]"),
]
TYPES_QUERY = ("SELECT k, " + ", ".join(_column(*c) for c in TYPES)
               + " FROM (VALUES (1), (2)) AS v (k) ORDER BY k")
EXPECTED_ROW = {
    "k": 1, "i2": 32767, "i4": -2147483648, "i8": 9223372036854775807, "f4": decimal.Decimal("1.5"),
    "f8": "NaN", "f8inf": "-Infinity",
    "d38": decimal.Decimal("-99999999999999999999999999999999999.999"),
    "d60": decimal.Decimal("123456789012345678901234567890123456789012345678901234.000001"),
    "t": 'h\u00e9llo, "w\u00f6rld" \U0001F389\n', "vc": "ab", "ch": "x  ", "b": True,
    "dt": "0001-01-01", "ts": "9999-12-31T23:59:59.999999", "tz": "2026-03-28T23:30:00.500000Z",
    "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "j": {"a": [1, decimal.Decimal("2.50"), "x"], "\u00fc": None},
    "by": "\\xdeadbeef", "arr": [1, None, 3], "tarr": ["a", None, "b c"],
}


def test_result_round_trip_of_every_mapped_type(db, start_runner) -> None:
    db.execute("SET TimeZone = 'America/New_York'")  # the submitter's zone changes no instant
    runnertools.define(db, "types", TYPES_QUERY, "result")
    run = runnertools.submit(db, "types")
    runner = start_runner("--drain")
    assert runner.wait() == 0, runner.log()
    row = dbtools.run_row(db, run)
    assert (row["status"], row["rows_written"], row["snapshot_id"]) == ("succeeded", 2, None), row

    # SQL: result_json, exact.
    text = db.execute("SELECT jobledger.result_json(%s)::text AS j", (run,)).fetchone()["j"]
    rows = json.loads(text, parse_float=decimal.Decimal)
    assert rows[0] == EXPECTED_ROW
    assert rows[1] == {"k": 2, **{name: None for name, _, _ in TYPES}}

    # Python: a pyarrow.Table with the documented types.
    table = client.result(db, run)
    assert table.num_rows == 2 and table.column_names == ["k"] + [name for name, _, _ in TYPES]
    types = {field.name: field.type for field in table.schema}
    assert types["d38"] == pyarrow.decimal128(38, 3) and types["d60"] == pyarrow.decimal256(60, 6)
    assert types["tz"] == pyarrow.timestamp("us", tz="UTC") and types["ts"] == pyarrow.timestamp("us")
    assert types["u"] == pyarrow.uuid() and types["j"] == pyarrow.json_()
    assert types["arr"] == pyarrow.list_(pyarrow.int64()) and types["i2"] == pyarrow.int16()
    assert table.column("tz")[0].as_py() == datetime.datetime(2026, 3, 28, 23, 30, 0, 500000,
                                                                tzinfo=datetime.timezone.utc)
    assert table.column("d60")[0].as_py() == EXPECTED_ROW["d60"]
    assert table.column("by")[0].as_py() == b"\xde\xad\xbe\xef"
    assert all(table.column(name)[1].as_py() is None for name, _, _ in TYPES)

    # Outputs: the Arrow stream, then its JSON rendering derived from it.
    outputs = db.execute("SELECT id, name, content_type, parent_outputs, attempt FROM jobledger.outputs(%s)",
                         (run,)).fetchall()
    assert [(o["name"], o["content_type"]) for o in outputs] == [
        ("result", "application/vnd.apache.arrow.stream"), ("result.json", "application/json")]
    assert outputs[1]["parent_outputs"] == [outputs[0]["id"]] and {o["attempt"] for o in outputs} == {1}

    # The command line, in each format.
    def cli(*args: str) -> bytes:
        done = subprocess.run([sys.executable, "-m", "jobledger", "result", str(run), "--dsn",
                               runnertools.dsn(db), *args], capture_output=True, check=False)
        assert done.returncode == 0, done.stderr.decode()
        return done.stdout

    assert json.loads(cli("--format", "json"), parse_float=decimal.Decimal) == rows
    header, first, second = csv.reader(io.StringIO(cli("--format", "csv").decode()))
    assert header == ["k"] + [name for name, _, _ in TYPES]
    assert second == ["2"] + [""] * len(TYPES)
    assert dict(zip(header, first)) == {
        **{name: str(value) for name, value in EXPECTED_ROW.items()},
        "b": "true", "j": '{"a": [1, 2.50, "x"], "\u00fc": null}', "arr": "[1, null, 3]",
        "tarr": '["a", null, "b c"]'}
    out = pathlib.Path(tempfile.mkdtemp()) / "r.parquet"
    try:
        cli("--format", "parquet", "-o", str(out))
        back = pyarrow.parquet.read_table(out)
        assert back.column("d60").to_pylist() == table.column("d60").to_pylist()
        assert back.column("tz").to_pylist() == table.column("tz").to_pylist()
    finally:
        shutil.rmtree(out.parent)


def test_client_submit_wait_result(db, start_runner) -> None:
    runnertools.define(db, "squares", "SELECT g AS n, CAST(g * g AS bigint) AS sq FROM generate_series(1, {n}) AS g",
                       "result", params={"n": {"type": "integer"}})
    run = client.submit(db, "squares", {"n": 5}, idempotency_key="k1")
    assert client.submit(db, "squares", {"n": 5}, idempotency_key="k1") == run
    with pytest.raises(TimeoutError):
        client.wait(db, run, timeout=0.05)
    runner = start_runner()
    final = client.wait(runnertools.dsn(db), run, timeout=60)
    assert final["status"] == "succeeded" and final["rows_written"] == 5
    assert client.result(db, run).to_pydict() == {"n": [1, 2, 3, 4, 5], "sq": [1, 4, 9, 16, 25]}
    runner.stop()


def test_a_result_over_the_cap_fails_and_keeps_nothing(db, start_runner) -> None:
    db.execute(f"ALTER DATABASE {db.info.dbname} SET jobledger.result_max_bytes = '10kB'")
    runnertools.define(db, "big", "SELECT g, 'row ' || g AS label FROM generate_series(1, 100000) AS g", "result")
    runnertools.define(db, "small", "SELECT 1 AS one", "result")
    big, small = runnertools.submit(db, "big"), runnertools.submit(db, "small")
    runner = start_runner("--drain")
    assert runner.wait() == 0, runner.log()
    row = dbtools.run_row(db, big)
    assert (row["status"], row["error_category"], row["error_sqlstate"]) == ("failed", "result_too_large", "54000")
    assert "10240 bytes" in row["error"] and row["attempt"] == 1
    assert db.execute("SELECT count(*) AS n FROM jobledger.output WHERE run = %s", (big,)).fetchone() == {"n": 0}
    assert client.result(db, small).to_pydict() == {"one": [1]}


@pytest.fixture
def lake_roles(db: psycopg.Connection, connect):
    """jl_lake_owner owns the jobs (may write datasets); jl_lake_runner runs them, granted as docs/runner.md says."""
    db.execute("CREATE ROLE jl_lake_owner LOGIN")
    db.execute("CREATE ROLE jl_lake_runner LOGIN")
    try:
        db.execute(f"GRANT EXECUTE ON FUNCTION {', '.join(LAKE_FUNCTIONS)} TO jl_lake_runner")
        db.execute("GRANT jl_lake_owner TO jl_lake_runner")
        db.execute("GRANT pg_write_server_files TO jl_lake_owner")
        db.execute("CREATE TABLE public.sales (day date, amount numeric(12,2), shop text)")
        db.execute("INSERT INTO public.sales SELECT date '2026-11-01' + g % 3, g, 'shop ' || g % 2"
                   " FROM generate_series(1, 30) AS g")
        db.execute("GRANT SELECT ON public.sales TO jl_lake_owner")
        yield connect(user="jl_lake_owner")
    finally:
        db.execute("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
                   " WHERE usename IN ('jl_lake_owner', 'jl_lake_runner')")
        db.execute("DROP OWNED BY jl_lake_owner, jl_lake_runner")
        db.execute("DROP ROLE jl_lake_runner")
        db.execute("DROP ROLE jl_lake_owner")


def test_parquet_append_overwrite_and_versions(db, lake_roles, lake_dir, start_runner) -> None:
    owner = lake_roles
    root = lake_dir / "sales"
    query = "SELECT day, amount, shop FROM public.sales WHERE day = {day}"
    runnertools.define(owner, "daily", query, f"parquet:{root}?create_if_missing=true",
                       params={"day": {"type": "date"}})
    runs = []
    for job, day in (("daily", "2026-11-01"), ("daily", "2026-11-02"), ("daily_replace", "2026-11-03")):
        if job == "daily_replace":  # without create_if_missing: the dataset must exist by now
            runnertools.define(owner, "daily_replace", query, f"parquet:{root}", mode="overwrite",
                               params={"day": {"type": "date"}})
        runs.append(runnertools.submit(owner, job, {"day": day}))
        runner = start_runner("--drain", user="jl_lake_runner")
        assert runner.wait() == 0, runner.log()

    rows = [dbtools.run_row(db, run) for run in runs]
    assert [(r["status"], r["snapshot_id"], r["rows_written"], r["progress"]) for r in rows] == [
        ("succeeded", "1", 10, 100), ("succeeded", "2", 10, 100), ("succeeded", "3", 10, 100)], rows
    assert dataset_manifest.versions(root) == [1, 2, 3]
    days = lambda version: sorted({d.isoformat() for d in  # noqa: E731
                                   parquet_dataset.read_table(root, version).column("day").to_pylist()})
    assert days(1) == ["2026-11-01"]
    assert days(2) == ["2026-11-01", "2026-11-02"]
    assert days(3) == ["2026-11-03"]  # overwrite: only the new files
    v2 = parquet_dataset.read_table(root, 2)
    assert v2.num_rows == 20 and v2.schema.field("amount").type == pyarrow.decimal128(12, 2)
    assert sum(v2.column("amount").to_pylist()) == sum(range(3, 31, 3)) + sum(range(1, 30, 3))
    # The overwritten files stay for readers of version 2 (retention: a day).
    assert len(list(root.glob("part-*.parquet"))) == 3
    # Each run's manifest is its output.
    for run, version in zip(runs, (1, 2, 3)):
        [out] = db.execute("SELECT name, data FROM jobledger.outputs(%s)", (run,)).fetchall()
        manifest = dataset_manifest.Manifest.from_json(bytes(out["data"]).decode())
        assert out["name"] == "manifest" and manifest.version == version and manifest.run == str(run)


def test_a_crash_between_publish_and_ledger_writes_nothing_twice(db, lake_dir, start_runner, monkeypatch) -> None:
    root = lake_dir / "ds"
    runnertools.define(db, "export", "SELECT g AS n FROM generate_series(1, 1000) AS g",
                       f"parquet:{root}?create_if_missing=true")
    run = runnertools.submit(db, "export")
    monkeypatch.setenv("JOBLEDGER_RUNNER_FAULT", "exit-after-publish")
    crashing = start_runner("--drain", worker="crashing")
    monkeypatch.delenv("JOBLEDGER_RUNNER_FAULT")
    assert crashing.wait() == 75, crashing.log()
    # Published, but the ledger does not know.
    assert dataset_manifest.versions(root) == [1]
    row = dbtools.run_row(db, run)
    assert row["status"] == "running" and row["snapshot_id"] is None

    runner = start_runner("--drain", worker="second")
    assert runner.wait() == 0, runner.log()
    row = dbtools.run_row(db, run)
    assert (row["status"], row["attempt"], row["snapshot_id"], row["rows_written"]) == ("succeeded", 2, "1", 1000)
    assert dataset_manifest.versions(root) == [1]  # nothing written again
    assert parquet_dataset.read_table(root).num_rows == 1000
    assert len(list(root.glob("part-*.parquet"))) == 1
    assert [(a[0], a[1], a[2]) for a in runnertools.attempts(db, run)] == [
        (1, "crashing", "failed"), (2, "second", "succeeded")]
    [out] = db.execute("SELECT name, attempt FROM jobledger.outputs(%s)", (run,)).fetchall()
    assert out == {"name": "manifest", "attempt": 2}


def test_schema_mismatch_at_submit(db, lake_dir, start_runner) -> None:
    root = lake_dir / "ds"
    target = f"parquet:{root}?create_if_missing=true"
    runnertools.define(db, "ints", "SELECT CAST(1 AS bigint) AS n, 'a' AS label", target)
    # Defined while there is no dataset yet: nothing to compare with.
    runnertools.define(db, "texts", "SELECT CAST(1 AS text) AS n", target)
    runnertools.define(db, "narrow", "SELECT CAST(2 AS integer) AS n, 'b' AS label", target)
    runnertools.submit(db, "ints")
    runner = start_runner("--drain")
    assert runner.wait() == 0, runner.log()
    with pytest.raises(psycopg.errors.DatatypeMismatch) as mismatch:
        runnertools.submit(db, "texts")
    assert dbtools.category(mismatch.value) == "schema_mismatch"
    assert mismatch.value.diag.message_detail.splitlines()[1:] == [
        'column "n" is string in the query but int64 in the dataset, which is not the same type or a lossless widening',
        'column "label" (string) of the dataset is not produced by the query',
    ]
    assert db.execute("SELECT count(*) AS n FROM jobledger.run WHERE job = 'texts'").fetchone() == {"n": 0}
    # A lossless widening is accepted and written in the dataset's types.
    narrow = runnertools.submit(db, "narrow")
    runner = start_runner("--drain")
    assert runner.wait() == 0, runner.log()
    assert dbtools.run_row(db, narrow)["snapshot_id"] == "2"
    table = parquet_dataset.read_table(root)
    assert table.schema.field("n").type == pyarrow.int64() and table.column("n").to_pylist() == [1, 2]


def test_progress_and_rows_written_advance_during_a_long_write(db, lake_dir, start_runner) -> None:
    db.execute(f"ALTER DATABASE {db.info.dbname} SET jobledger.progress_interval = '50ms'")
    # A nap per batch of the cursor (65536 rows), so the write takes a while.
    db.execute("""CREATE FUNCTION public.slowly(g bigint) RETURNS boolean LANGUAGE plpgsql AS $$
                  BEGIN IF g % 65536 = 0 THEN PERFORM pg_sleep(0.3); END IF; RETURN true; END $$""")
    runnertools.define(db, "long", "SELECT g AS n FROM generate_series(CAST(1 AS bigint), 400000) AS g"
                       " WHERE public.slowly(g)", f"parquet:{lake_dir}/ds?create_if_missing=true")
    run = runnertools.submit(db, "long")
    runner = start_runner("--drain")
    seen = set()
    while runner.proc.poll() is None:
        row = dbtools.run_row(db, run)
        if row["status"] == "running" and row["rows_written"] is not None:
            seen.add((row["rows_written"], row["progress"]))
    assert runner.wait() == 0, runner.log()
    row = dbtools.run_row(db, run)
    assert (row["status"], row["rows_written"], row["progress"]) == ("succeeded", 400000, 100)
    assert len(seen) >= 2, seen
    assert all(0 < rows < 400000 for rows, _ in seen), seen
    # progress is the share of the planner's estimate, below 100 until the end
    # (the estimate of this WHERE is a third of the rows, so it tops out at 99).
    assert all(percent is not None and 0 <= percent <= 99 for _, percent in seen), seen
    percents = [percent for _, percent in sorted(seen)]
    assert percents == sorted(percents)  # rows and progress rise together


# ---- ownership of the dataset directory ------------------------------------------------------

LONG_AGO = (1, 1)  # atime, mtime: 1970


def _snapshot(root: pathlib.Path) -> dict[str, bytes | str]:
    """Every entry under ``root``: file contents, or "dir"."""
    return {p.relative_to(root).as_posix(): "dir" if p.is_dir() else p.read_bytes() for p in sorted(root.rglob("*"))}


def _put_foreign_files(root: pathlib.Path, names: list[str]) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"someone else's {name} \x00\xff".encode("utf-8", "surrogateescape"))


def test_parquet_refuses_a_directory_holding_someone_elses_files(db, lake_dir, start_runner) -> None:
    db.execute(f"ALTER DATABASE {db.info.dbname} SET jobledger.parquet_retention = '0'")
    foreign = ["notes.txt", "other.parquet", "part-theirs-1-1.parquet", "sub/data.parquet"]
    theirs = lake_dir / "theirs"
    _put_foreign_files(theirs, foreign)
    for path in theirs.rglob("*"):
        os.utime(path, LONG_AGO)
    before = _snapshot(theirs)
    # The preflight at define time: the server sees the directory and refuses it.
    with pytest.raises(psycopg.errors.UndefinedTable) as caught:
        runnertools.define(db, "grab", "SELECT 1 AS n", f"parquet:{theirs}?create_if_missing=true")
    assert dbtools.category(caught.value) == "destination_missing"
    assert "not empty" in str(caught.value)
    # A job defined and submitted while its directory did not exist; someone else's
    # files arrive before the run: the runner refuses to write there.
    later = lake_dir / "later"
    runnertools.define(db, "export", "SELECT g AS n FROM generate_series(1, 10) AS g",
                       f"parquet:{later}?create_if_missing=true")
    run = runnertools.submit(db, "export")
    _put_foreign_files(later, foreign)
    for path in later.rglob("*"):
        os.utime(path, LONG_AGO)
    runner = start_runner("--drain")
    assert runner.wait() == 0, runner.log()
    row = dbtools.run_row(db, run)
    assert (row["status"], row["error_category"], row["attempt"]) == ("failed", "destination_missing", 1), row
    assert _snapshot(later) == before  # no marker, no _tmp, every file byte-identical
    assert _snapshot(theirs) == before
    # ... and the submit-time preflight refuses it now: no run is recorded.
    with pytest.raises(psycopg.errors.UndefinedTable) as caught:
        runnertools.submit(db, "export")
    assert dbtools.category(caught.value) == "destination_missing"
    assert db.execute("SELECT count(*) AS n FROM jobledger.run WHERE job = 'export'").fetchone() == {"n": 1}


def test_parquet_adopts_an_empty_directory_and_its_retention_spares_files_put_into_it(
        db, lake_dir, start_runner) -> None:
    db.execute(f"ALTER DATABASE {db.info.dbname} SET jobledger.parquet_retention = '0'")
    assert list(lake_dir.iterdir()) == []  # an existing, empty directory
    runnertools.define(db, "snap", "SELECT g AS n FROM generate_series(1, {n}) AS g",
                       f"parquet:{lake_dir}?create_if_missing=true", mode="overwrite",
                       params={"n": {"type": "integer"}})
    first = runnertools.submit(db, "snap", {"n": 1})
    runner = start_runner("--drain")
    assert runner.wait() == 0, runner.log()
    assert dbtools.run_row(db, first)["snapshot_id"] == "1"
    marker = json.loads((lake_dir / dataset_manifest.MARKER).read_text())
    assert (marker["format"], marker["format_version"]) == ("jobledger-parquet-dataset-directory", 1)

    # Someone else's files put into the dataset, and jobledger's own leftovers of a crashed write.
    foreign = ["notes.txt", "other.parquet", "part-x.parquet", "_tmp/scratch.tmp", "archive/part-y-1-1.parquet"]
    _put_foreign_files(lake_dir, foreign)
    dead = "0b7e0f4e-0000-4000-8000-000000000000"
    own = [f"part-{dead}-1-1.parquet", f"_tmp/part-{dead}-1-2.parquet.{'c' * 32}.tmp"]
    for name in own:
        (lake_dir / name).write_bytes(b"left by a crash")
    for path in lake_dir.rglob("*"):
        os.utime(path, LONG_AGO)
    before = {name: content for name, content in _snapshot(lake_dir).items() if name in foreign + ["archive"]}

    second = runnertools.submit(db, "snap", {"n": 2})
    runner = start_runner("--drain")
    assert runner.wait() == 0, runner.log()
    assert dbtools.run_row(db, second)["snapshot_id"] == "2"
    # Retention (0 here) ran after the commit: version 1, its file and the leftovers are gone ...
    assert dataset_manifest.versions(lake_dir) == [2]
    assert sorted(p.name for p in lake_dir.glob("part-*-*.parquet")) == [f"part-{second}-1-1.parquet"]
    assert not any((lake_dir / name).exists() for name in own)
    assert parquet_dataset.read_table(lake_dir).column("n").to_pylist() == [1, 2]
    # ... and every file jobledger did not write is still there, byte-identical.
    after = _snapshot(lake_dir)
    assert len(before) == len(foreign) + 1
    assert {name: after.get(name) for name in before} == before


# Types without an Arrow counterpart, plain numeric, interval and time, through define_job,
# submit_job and a runner, into a result and into a Parquet dataset (docs/destinations.md).
WIDE_QUERY = """SELECT k, sum(x) OVER (ORDER BY k) AS total, avg(x) OVER () AS mean,
       CASE WHEN k = 1 THEN 'NaN'::numeric WHEN k = 2 THEN ('1' || repeat('0', 999))::numeric END AS big,
       CASE WHEN k = 1 THEN interval '1 year 2 mons -3 days 04:05:06.000007' END AS took,
       CASE WHEN k = 1 THEN time '23:59:59.999999' END AS at,
       CASE WHEN k = 1 THEN '$1,234.50'::money END AS paid,
       CASE WHEN k = 1 THEN 'fat:1 cat:2'::tsvector END AS words,
       CASE WHEN k = 1 THEN '$.a'::jsonpath END AS path,
       CASE WHEN k = 1 THEN '[1,5)'::int4range END AS span,
       CASE WHEN k = 1 THEN ARRAY['10.0.0.1'::inet, NULL] END AS hosts
  FROM (VALUES (1, 1.50), (2, 2.25)) AS v (k, x) ORDER BY k"""


def test_every_type_through_result_and_parquet(db, lake_roles, lake_dir, start_runner) -> None:
    owner = lake_roles
    root = lake_dir / "wide"
    runnertools.define(owner, "wide_result", WIDE_QUERY, "result")
    runnertools.define(owner, "wide_lake", WIDE_QUERY, f"parquet:{root}?create_if_missing=true")
    runs = [runnertools.submit(owner, job) for job in ("wide_result", "wide_lake")]
    runner = start_runner("--drain", user="jl_lake_runner")
    assert runner.wait() == 0, runner.log()
    assert [dbtools.run_row(db, run)["status"] for run in runs] == ["succeeded", "succeeded"]

    # PostgreSQL's text output, with the runner's settings (IntervalStyle iso_8601 for the JSON).
    db.execute("SET IntervalStyle = iso_8601")
    text = db.execute(f"SELECT total::text, mean::text, big::text, took::text, paid::text, words::text,"
                      f" path::text, span::text FROM ({WIDE_QUERY}) q").fetchall()
    table = client.result(db, runs[0])
    types = {field.name: str(field.type) for field in table.schema}
    assert types["took"] == "month_day_nano_interval" and types["at"] == "time64[us]"
    assert types["hosts"] == "list<item: string>"
    assert {types[n] for n in ("total", "mean", "big", "paid", "words", "path", "span")} == {"string"}
    for name in ("total", "mean", "big", "paid", "words", "path", "span"):
        assert table.column(name).to_pylist() == [row[name] for row in text], name
    assert table.column("big").to_pylist() == ["NaN", "1" + "0" * 999]
    took = table.column("took")[0].as_py()
    assert (took.months, took.days, took.nanoseconds) == (14, -3, (4 * 3600 + 5 * 60 + 6) * 10**9 + 7000)
    assert table.column("hosts").to_pylist() == [["10.0.0.1", None], None]
    rows = json.loads(db.execute("SELECT jobledger.result_json(%s)::text AS j", (runs[0],)).fetchone()["j"])
    assert rows[0]["took"] == text[0]["took"] == "P1Y2M-3DT4H5M6.000007S"
    assert rows[0]["at"] == "23:59:59.999999" and rows[1]["big"] == "1" + "0" * 999

    # The dataset: the same values, the interval as a struct of its three fields.
    back = pyarrow.parquet.read_table(next(root.glob("part-*.parquet")))
    assert back.drop_columns(["took"]).equals(table.drop_columns(["took"]))
    assert back.column("took").to_pylist() == [{"months": 14, "days": -3, "nanoseconds": took.nanoseconds}, None]
    assert parquet_dataset.read_table(root).equals(back)
