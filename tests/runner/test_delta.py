"""Destination delta: through real runner processes, on a local directory:
every mapped type round trip, versions equal snapshot_ids, append,
overwrite and time travel, merge on key columns, partitions, a crash between
the table commit and the ledger commit (Delta's app transaction: nothing
written twice), a table changed outside jobledger."""

from __future__ import annotations

import datetime
import decimal
import pathlib

import deltalake
import pyarrow
import pyarrow.parquet
import pytest
from psycopg import sql

import dbtools
import runnertools
from jobledger.lake import delta_table
from test_lake import TYPES, TYPES_QUERY, lake_dir  # noqa: F401 (a fixture)


def _drain(start_runner, *args: str) -> None:
    runner = start_runner("--drain", *args)
    assert runner.wait() == 0, runner.log()


# What the Delta table holds for row 1 of TYPES_QUERY (types Delta lacks in their forms).
EXPECTED_DELTA = {
    "k": 1, "i2": 32767, "i4": -2147483648, "i8": 9223372036854775807, "f4": 1.5,
    "d38": decimal.Decimal("-99999999999999999999999999999999999.999"),
    "d60": "123456789012345678901234567890123456789012345678901234.000001",
    "t": 'h\u00e9llo, "w\u00f6rld" \U0001F389\n', "vc": "ab", "ch": "x  ", "b": True,
    "dt": datetime.date(1, 1, 1), "ts": datetime.datetime(9999, 12, 31, 23, 59, 59, 999999),
    "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "j": '{"a": [1, 2.50, "x"], "\u00fc": null}',
    "by": b"\xde\xad\xbe\xef", "arr": [1, None, 3], "tarr": ["a", None, "b c"],
}
EXTRA = ", CAST(CASE WHEN k = 1 THEN '1 mon 2 days 00:00:03.5' END AS interval) AS iv," \
        " CAST(CASE WHEN k = 1 THEN '12:34:56.5' END AS time) AS tm"


def test_every_type_round_trips_and_versions_are_snapshot_ids(db, lake_dir, start_runner) -> None:
    uri = str(lake_dir / "types")
    query = TYPES_QUERY.replace(" FROM (VALUES", EXTRA + " FROM (VALUES")
    runnertools.define(db, "types", query, f"delta:{uri}?create_if_missing=true")
    first = runnertools.submit(db, "types")
    _drain(start_runner)
    second = runnertools.submit(db, "types")
    _drain(start_runner)
    rows = [dbtools.run_row(db, run) for run in (first, second)]
    assert [(r["status"], r["snapshot_id"], r["rows_written"]) for r in rows] == [
        ("succeeded", "0", 2), ("succeeded", "1", 2)], rows
    table = deltalake.DeltaTable(uri)
    assert table.version() == 1
    back = deltalake.DeltaTable(uri, version=0).to_pyarrow_table().sort_by("k")
    row = back.to_pylist()[0]
    for name, value in EXPECTED_DELTA.items():
        assert row[name] == value, name
    assert row["f8"] != row["f8"] and row["f8inf"] == float("-inf")
    assert row["tz"] == datetime.datetime(2026, 3, 28, 23, 30, 0, 500000, tzinfo=datetime.timezone.utc)
    assert row["iv"] == {"months": 1, "days": 2, "nanoseconds": 3_500_000_000}
    assert row["tm"] == "12:34:56.500000"
    assert all(v is None for k, v in back.to_pylist()[1].items() if k != "k")
    types = {f.name: f.type for f in back.schema}
    assert types["d38"] == pyarrow.decimal128(38, 3) and types["i2"] == pyarrow.int16()
    assert types["ts"] == pyarrow.timestamp("us") and types["arr"] == pyarrow.list_(pyarrow.int64())
    assert table.to_pyarrow_table().num_rows == 4
    assert len(TYPES) + 3 == len(back.column_names)


def test_append_overwrite_time_travel_and_partitions(db, lake_dir, start_runner) -> None:
    uri = str(lake_dir / "sales")
    db.execute("CREATE TABLE public.sales (day date, amount numeric(12,2), shop text)")
    db.execute("INSERT INTO public.sales SELECT date '2026-11-01' + g % 3, g, 'shop ' || g % 2"
               " FROM generate_series(1, 30) AS g")
    query = "SELECT day, amount, shop FROM public.sales WHERE day = {day}"
    runnertools.define(db, "daily", query, f"delta:{uri}?create_if_missing=true&partition_by=shop",
                       params={"day": {"type": "date"}})
    runnertools.define(db, "replace", query, f"delta:{uri}", mode="overwrite", params={"day": {"type": "date"}})
    runs = [runnertools.submit(db, "daily", {"day": "2026-11-01"})]
    _drain(start_runner)
    runs.append(runnertools.submit(db, "daily", {"day": "2026-11-02"}))
    _drain(start_runner)
    runs.append(runnertools.submit(db, "replace", {"day": "2026-11-03"}))
    _drain(start_runner)
    rows = [dbtools.run_row(db, run) for run in runs]
    assert [(r["status"], r["snapshot_id"], r["rows_written"]) for r in rows] == [
        ("succeeded", "0", 10), ("succeeded", "1", 10), ("succeeded", "2", 10)], rows

    def days(version: int) -> list[str]:
        table = deltalake.DeltaTable(uri, version=version).to_pyarrow_table()
        return sorted({d.isoformat() for d in table.column("day").to_pylist()})

    assert days(0) == ["2026-11-01"]
    assert days(1) == ["2026-11-01", "2026-11-02"]
    assert days(2) == ["2026-11-03"]
    assert deltalake.DeltaTable(uri).metadata().partition_columns == ["shop"]
    assert sorted(p.name for p in pathlib.Path(uri).iterdir() if p.name.startswith("shop=")) == [
        "shop=shop%200", "shop=shop%201"]


def test_merge_on_key_columns(db, lake_dir, start_runner) -> None:
    uri = str(lake_dir / "customers")
    runnertools.define(db, "load", "SELECT g AS id, 'v1' AS name FROM generate_series(1, 3) AS g",
                       f"delta:{uri}?create_if_missing=true")
    runnertools.define(db, "upsert", "SELECT g AS id, 'v2' AS name FROM generate_series(3, 5) AS g",
                       f"delta:{uri}?merge_keys=id", mode="merge")
    runnertools.submit(db, "load")
    _drain(start_runner)
    run = runnertools.submit(db, "upsert")
    _drain(start_runner)
    row = dbtools.run_row(db, run)
    assert (row["status"], row["snapshot_id"], row["rows_written"]) == ("succeeded", "1", 3), row
    table = deltalake.DeltaTable(uri).to_pyarrow_table().sort_by("id")
    assert table.to_pydict() == {"id": [1, 2, 3, 4, 5], "name": ["v1", "v1", "v2", "v2", "v2"]}


def test_row_groups_are_bounded_and_compressed(db, lake_dir, start_runner) -> None:
    """What keeps a run's memory flat however many rows it writes (docs/benchmarks.md,
    "Lake writes"): row groups of at most ROW_GROUP_ROWS rows, Snappy as delta-rs's default."""
    uri = str(lake_dir / "big")
    rows = delta_table.ROW_GROUP_ROWS + 1000
    runnertools.define(db, "big", f"SELECT g::int8 AS id, 'row ' || g AS label FROM generate_series(1, {rows}) AS g",
                       f"delta:{uri}?create_if_missing=true")
    run = runnertools.submit(db, "big")
    _drain(start_runner)
    assert dbtools.run_row(db, run)["rows_written"] == rows
    files = [pyarrow.parquet.ParquetFile(path).metadata for path in deltalake.DeltaTable(uri).file_uris()]
    groups = [meta.row_group(i) for meta in files for i in range(meta.num_row_groups)]
    assert sum(g.num_rows for g in groups) == rows
    assert max(g.num_rows for g in groups) == delta_table.ROW_GROUP_ROWS
    assert {g.column(c).compression for g in groups for c in range(g.num_columns)} == {"SNAPPY"}


def test_merge_needs_key_columns(db) -> None:
    with pytest.raises(Exception) as refused:
        runnertools.define(db, "m", "SELECT 1 AS id", "delta:/tmp/jl_never?create_if_missing=true", mode="merge")
    assert dbtools.category(refused.value) == "invalid_argument"


def test_a_crash_between_table_commit_and_ledger_writes_nothing_twice(db, lake_dir, start_runner,
                                                                        monkeypatch) -> None:
    uri = str(lake_dir / "ds")
    runnertools.define(db, "export", "SELECT g AS n FROM generate_series(1, 1000) AS g",
                       f"delta:{uri}?create_if_missing=true")
    run = runnertools.submit(db, "export")
    monkeypatch.setenv("JOBLEDGER_RUNNER_FAULT", "exit-after-publish")
    crashing = start_runner("--drain", worker="crashing")
    monkeypatch.delenv("JOBLEDGER_RUNNER_FAULT")
    assert crashing.wait() == 75, crashing.log()
    assert deltalake.DeltaTable(uri).version() == 0  # committed, the ledger does not know
    row = dbtools.run_row(db, run)
    assert row["status"] == "running" and row["snapshot_id"] is None

    runner = start_runner("--drain", worker="second")
    assert runner.wait() == 0, runner.log()
    row = dbtools.run_row(db, run)
    assert (row["status"], row["attempt"], row["snapshot_id"], row["rows_written"]) == ("succeeded", 2, "0", 1000)
    table = deltalake.DeltaTable(uri)
    assert table.version() == 0 and table.to_pyarrow_table().num_rows == 1000  # nothing written again
    assert table.transaction_version(f"jobledger-run-{run}") == 1
    assert [(a[0], a[1], a[2]) for a in runnertools.attempts(db, run)] == [
        (1, "crashing", "failed"), (2, "second", "succeeded")]


def test_a_table_changed_outside_jobledger_fails_the_run(db, lake_dir, start_runner) -> None:
    uri = str(lake_dir / "ds")
    runnertools.define(db, "ints", "SELECT CAST(1 AS bigint) AS n, 'a' AS label",
                       f"delta:{uri}?create_if_missing=true")
    deltalake.write_deltalake(uri, pyarrow.table({"n": pyarrow.array(["x"]), "other": pyarrow.array([1])}))
    run = runnertools.submit(db, "ints")
    _drain(start_runner)
    row = dbtools.run_row(db, run)
    assert (row["status"], row["error_category"]) == ("failed", "schema_mismatch"), row
    assert deltalake.DeltaTable(uri).version() == 0


def test_a_missing_table_without_create_if_missing(db, lake_dir, start_runner) -> None:
    uri = str(lake_dir / "nothing")
    runnertools.define(db, "ints", "SELECT 1 AS n", f"delta:{uri}")
    run = runnertools.submit(db, "ints")
    _drain(start_runner)
    row = dbtools.run_row(db, run)
    assert (row["status"], row["error_category"]) == ("failed", "destination_missing"), row


def test_first_runs_into_a_new_table_at_once_both_land(db, lake_dir, start_runner) -> None:
    """Two runs claimed together both find the table missing; the second to
    commit must append to the table the first created, not fail."""
    uri = str(lake_dir / "fresh")
    runnertools.define(db, "slow", "SELECT CAST({n} AS bigint) AS n FROM (SELECT pg_sleep(0.5)) AS pause",
                       f"delta:{uri}?create_if_missing=true", params={"n": {"type": "bigint"}})
    runs = [runnertools.submit(db, "slow", {"n": n}) for n in (1, 2, 3)]
    _drain(start_runner, "--concurrency", "3")
    rows = [dbtools.run_row(db, run) for run in runs]
    assert sorted((r["status"], r["attempt"], r["snapshot_id"]) for r in rows) == [
        ("succeeded", 1, "0"), ("succeeded", 1, "1"), ("succeeded", 1, "2")], rows
    table = deltalake.DeltaTable(uri)
    assert sorted(table.to_pyarrow_table().column("n").to_pylist()) == [1, 2, 3]


def test_schema_mismatch_at_submit_from_the_registry(db, lake_dir, start_runner) -> None:
    uri = str(lake_dir / "ds")
    target = f"delta:{uri}?create_if_missing=true"
    runnertools.define(db, "ints", "SELECT CAST(1 AS bigint) AS n, 'a' AS label", target)
    runnertools.define(db, "texts", "SELECT CAST(1 AS text) AS n, 1 AS extra", target)
    run = runnertools.submit(db, "ints")
    _drain(start_runner)
    registered = db.execute("SELECT uri, format, arrow_schema, latest_version, run FROM jobledger.lake_dataset"
                            ).fetchall()
    assert registered == [{"uri": uri, "format": "delta", "arrow_schema": [["n", "int64"], ["label", "string"]],
                           "latest_version": 0, "run": run}]
    with pytest.raises(Exception) as mismatch:
        runnertools.submit(db, "texts")
    assert dbtools.category(mismatch.value) == "schema_mismatch"
    assert mismatch.value.diag.message_detail.splitlines()[1:] == [
        'column "n" is string in the query but int64 in the dataset, which is not the same type or a lossless widening',
        'column "extra" (int32) does not exist in the dataset',
        'column "label" (string) of the dataset is not produced by the query',
    ]
    assert db.execute("SELECT count(*) AS n FROM jobledger.run WHERE job = 'texts'").fetchone() == {"n": 0}


# ---- who may write where (core.lake_grants; SQL side: tests/integration/test_lake_grants.py) ----


@pytest.fixture
def lake_owner(db, make_role, connect, lake_dir):
    """A non-superuser owner whose group was granted lake_dir (allow_lake_prefix): its connection and the group."""
    group = make_role("lakers")
    owner = make_role("lake_owner")
    db.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(owner)))
    db.execute("SELECT jobledger.allow_lake_prefix(%s, %s)", (group, str(lake_dir)))
    return connect(user=owner), group


def test_an_owner_granted_through_its_group_writes(db, lake_owner, lake_dir, start_runner) -> None:
    lake_owner, _ = lake_owner
    uri = str(lake_dir / "granted")
    runnertools.define(lake_owner, "granted", "SELECT 1 AS n", f"delta:{uri}?create_if_missing=true")
    run = runnertools.submit(lake_owner, "granted")
    _drain(start_runner)
    row = dbtools.run_row(db, run)
    assert (row["status"], row["rows_written"]) == ("succeeded", 1), row
    assert deltalake.DeltaTable(uri).to_pyarrow_table().num_rows == 1


def test_a_grant_taken_back_after_submit_fails_the_run_and_writes_nothing(db, lake_owner, lake_dir,
                                                                          start_runner) -> None:
    lake_owner, group = lake_owner
    uri = str(lake_dir / "revoked")
    owner = dbtools.conninfo(lake_owner)["user"]
    runnertools.define(lake_owner, "revoked", "SELECT 1 AS n", f"delta:{uri}?create_if_missing=true")
    run = runnertools.submit(lake_owner, "revoked")
    assert db.execute("SELECT jobledger.disallow_lake_prefix(%s, %s) AS d",
                      (group, str(lake_dir))).fetchone() == {"d": True}
    _drain(start_runner)
    row = dbtools.run_row(db, run)
    assert (row["status"], row["error_category"], row["error_sqlstate"], row["attempt"]) == (
        "failed", "permission_denied", "42501", 1), row
    assert owner in row["error"] and uri in row["error"] and "before writing" in row["error"]
    assert not pathlib.Path(uri).exists()
    assert db.execute("SELECT count(*) AS n FROM jobledger.lake_dataset").fetchone() == {"n": 0}


def test_a_grant_taken_back_while_the_query_runs_fails_at_the_fence(db, lake_owner, lake_dir,
                                                                    start_runner) -> None:
    lake_owner, group = lake_owner
    # An IMMUTABLE function of constants is evaluated while the query is
    # planned: after the runner's first look at the grants, before the fence.
    db.execute("CREATE FUNCTION public.jl_slow_one() RETURNS integer LANGUAGE plpgsql IMMUTABLE"
               " AS 'BEGIN PERFORM pg_sleep(1.5); RETURN 1; END'")
    uri = str(lake_dir / "late")
    runnertools.define(lake_owner, "late", "SELECT public.jl_slow_one() AS n", f"delta:{uri}?create_if_missing=true")
    run = runnertools.submit(lake_owner, "late")
    runner = start_runner("--drain")
    runnertools.wait_until(lambda: db.execute(
        "SELECT 1 FROM pg_stat_activity WHERE wait_event = 'PgSleep'"
        " AND application_name = jobledger_internal.run_application_name(%s)", (run,)).fetchone(),
        what="the run's query to be planned")
    db.execute("SELECT jobledger.disallow_lake_prefix(%s, %s)", (group, str(lake_dir)))
    assert runner.wait() == 0, runner.log()
    row = dbtools.run_row(db, run)
    assert (row["status"], row["error_category"], row["attempt"]) == ("failed", "permission_denied", 1), row
    assert not pathlib.Path(uri).exists()
