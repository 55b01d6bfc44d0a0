"""Destination lance: through real runner processes, on a local directory:
every mapped type round trip (read back with lance), versions equal
snapshot_ids, append, overwrite and time travel, merge refused, a crash
between the dataset commit and the ledger commit (Lance's transaction
properties: nothing written twice), two runners on one dataset, a dataset
changed outside jobledger, a missing dataset, the registry at submit."""

from __future__ import annotations

import datetime
import decimal
import json
import pathlib
import uuid

import lance
import lance.file
import pyarrow
import pytest

import dbtools
import runnertools
from jobledger.lake import lance_dataset
from test_delta import lake_owner  # noqa: F401 (a fixture)
from test_lake import TYPES, TYPES_QUERY, lake_dir  # noqa: F401 (a fixture)


def _drain(start_runner, *args: str) -> None:
    runner = start_runner("--drain", *args)
    assert runner.wait() == 0, runner.log()


# What the Lance dataset holds for row 1 of TYPES_QUERY: every type as the
# mapping makes it (Lance stores them all), intervals as structs.
EXPECTED_LANCE = {
    "k": 1, "i2": 32767, "i4": -2147483648, "i8": 9223372036854775807, "f4": 1.5,
    "d38": decimal.Decimal("-99999999999999999999999999999999999.999"),
    "d60": decimal.Decimal("123456789012345678901234567890123456789012345678901234.000001"),
    "t": 'h\u00e9llo, "w\u00f6rld" \U0001F389\n', "vc": "ab", "ch": "x  ", "b": True,
    "dt": datetime.date(1, 1, 1), "ts": datetime.datetime(9999, 12, 31, 23, 59, 59, 999999),
    "u": uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    "by": b"\xde\xad\xbe\xef", "arr": [1, None, 3], "tarr": ["a", None, "b c"],
    "iv": {"months": 1, "days": 2, "nanoseconds": 3_500_000_000},
    "ivarr": [{"months": 0, "days": 0, "nanoseconds": 1_000_000_000}, None],
    "tm": datetime.time(12, 34, 56, 500000),
}
EXTRA = (", CAST(CASE WHEN k = 1 THEN '1 mon 2 days 00:00:03.5' END AS interval) AS iv,"
         " CAST(CASE WHEN k = 1 THEN '{00:00:01,NULL}' END AS interval[]) AS ivarr,"
         " CAST(CASE WHEN k = 1 THEN '12:34:56.5' END AS time) AS tm")
TYPES_WITH_EXTRA = TYPES_QUERY.replace(" FROM (VALUES", EXTRA + " FROM (VALUES")


def check_types_row(back: pyarrow.Table) -> None:
    """Row 1 of TYPES_WITH_EXTRA as the mapping documents it; row 2 all NULL."""
    row = back.sort_by("k").to_pylist()[0]
    for name, value in EXPECTED_LANCE.items():
        assert row[name] == value, name
    assert row["f8"] != row["f8"] and row["f8inf"] == float("-inf")
    assert row["tz"].astimezone(datetime.timezone.utc) == datetime.datetime(
        2026, 3, 28, 23, 30, 0, 500000, tzinfo=datetime.timezone.utc)
    assert json.loads(row["j"]) == {"a": [1, 2.5, "x"], "\u00fc": None}
    assert all(v is None for k, v in back.sort_by("k").to_pylist()[1].items() if k != "k")
    types = {f.name: f.type for f in back.schema}
    interval = pyarrow.struct([("months", pyarrow.int32()), ("days", pyarrow.int32()),
                               ("nanoseconds", pyarrow.int64())])
    assert types["d38"] == pyarrow.decimal128(38, 3) and types["d60"] == pyarrow.decimal256(60, 6)
    assert types["u"] == pyarrow.uuid() and types["j"] == pyarrow.json_()
    assert types["tz"] == pyarrow.timestamp("us", tz="UTC") and types["ts"] == pyarrow.timestamp("us")
    assert types["tm"] == pyarrow.time64("us") and types["i2"] == pyarrow.int16()
    assert types["iv"] == interval and types["ivarr"] == pyarrow.list_(interval)
    assert types["arr"] == pyarrow.list_(pyarrow.int64())
    assert len(TYPES) + 4 == len(back.column_names)


def test_every_type_round_trips_and_versions_are_snapshot_ids(db, lake_dir, start_runner) -> None:
    uri = str(lake_dir / "types")
    runnertools.define(db, "types", TYPES_WITH_EXTRA, f"lance:{uri}?create_if_missing=true")
    first = runnertools.submit(db, "types")
    _drain(start_runner)
    second = runnertools.submit(db, "types")
    _drain(start_runner)
    rows = [dbtools.run_row(db, run) for run in (first, second)]
    assert [(r["status"], r["snapshot_id"], r["rows_written"]) for r in rows] == [
        ("succeeded", "1", 2), ("succeeded", "2", 2)], rows
    dataset = lance.dataset(uri)
    assert dataset.version == 2 and dataset.count_rows() == 4
    check_types_row(lance.dataset(uri, version=1).to_table())
    assert [dataset.read_transaction(v).transaction_properties["jobledger.run"] for v in (1, 2)] == [
        str(first), str(second)]
    registered = db.execute("SELECT format, latest_version, run FROM jobledger.lake_dataset WHERE uri = %s",
                            (uri,)).fetchone()
    assert registered == {"format": "lance", "latest_version": 2, "run": second}
    outputs = db.execute("SELECT name FROM jobledger.outputs(%s)", (second,)).fetchall()
    assert [o["name"] for o in outputs] == ["lance_commit"]


def test_pages_are_bounded_by_the_data_cache(db, lake_dir, start_runner) -> None:
    """What keeps a run's memory flat however many rows it writes (docs/benchmarks.md,
    "Lake writes"): Lance buffers at most DATA_CACHE_BYTES of column data, all columns
    together, before writing pages, and glibc's mmap threshold stays fixed."""
    uri = str(lake_dir / "big")
    rows = 500_000
    runnertools.define(db, "big", "SELECT g::int8 AS id, 'row ' || g AS label, g * 0.5::float8 AS a,"
                       f" g * 1.5::float8 AS b, g * 2.5::float8 AS c FROM generate_series(1, {rows}) AS g",
                       f"lance:{uri}?create_if_missing=true")
    run = runnertools.submit(db, "big")
    _drain(start_runner)
    assert dbtools.run_row(db, run)["rows_written"] == rows
    dataset = lance.dataset(uri)
    assert dataset.count_rows() == rows
    files = [f"{uri}/data/{data.path}" for fragment in dataset.get_fragments() for data in fragment.data_files()]
    columns = [column for path in files for column in lance.file.LanceFileReader(path).metadata().columns]
    assert len(columns) == 5 * len(files)
    pages = [sum(buffer.size for buffer in page.buffers) for column in columns for page in column.pages]
    # A column's share of the cache, overshot by at most the batch that filled it
    # (65,536 rows: under 1 MiB here).  Lance's default wrote pages of 4 MB.
    assert 0 < max(pages) <= lance_dataset.DATA_CACHE_BYTES // 5 + 2**20


def test_append_overwrite_and_time_travel(db, lake_dir, start_runner) -> None:
    uri = str(lake_dir / "sales")
    db.execute("CREATE TABLE public.sales (day date, amount numeric(12,2), shop text)")
    db.execute("INSERT INTO public.sales SELECT date '2026-11-01' + g % 3, g, 'shop ' || g % 2"
               " FROM generate_series(1, 30) AS g")
    query = "SELECT day, amount, shop FROM public.sales WHERE day = {day}"
    runnertools.define(db, "daily", query, f"lance:{uri}?create_if_missing=true", params={"day": {"type": "date"}})
    runnertools.define(db, "replace", query, f"lance:{uri}", mode="overwrite", params={"day": {"type": "date"}})
    runs = [runnertools.submit(db, "daily", {"day": "2026-11-01"})]
    _drain(start_runner)
    runs.append(runnertools.submit(db, "daily", {"day": "2026-11-02"}))
    _drain(start_runner)
    runs.append(runnertools.submit(db, "replace", {"day": "2026-11-03"}))
    _drain(start_runner)
    rows = [dbtools.run_row(db, run) for run in runs]
    assert [(r["status"], r["snapshot_id"], r["rows_written"]) for r in rows] == [
        ("succeeded", "1", 10), ("succeeded", "2", 10), ("succeeded", "3", 10)], rows

    def days(version: int) -> list[str]:
        table = lance.dataset(uri, version=version).to_table()
        return sorted({d.isoformat() for d in table.column("day").to_pylist()})

    assert days(1) == ["2026-11-01"]
    assert days(2) == ["2026-11-01", "2026-11-02"]
    assert days(3) == ["2026-11-03"]
    assert lance.dataset(uri).to_table().num_rows == 10
    assert lance.dataset(uri).schema.field("amount").type == pyarrow.decimal128(12, 2)


def test_overwrite_creates_a_missing_dataset(db, lake_dir, start_runner) -> None:
    uri = str(lake_dir / "new")
    runnertools.define(db, "replace", "SELECT 1 AS n", f"lance:{uri}?create_if_missing=true", mode="overwrite")
    runs = [runnertools.submit(db, "replace") for _ in range(2)]
    _drain(start_runner)
    rows = [dbtools.run_row(db, run) for run in runs]
    assert sorted((r["status"], r["snapshot_id"]) for r in rows) == [("succeeded", "1"), ("succeeded", "2")], rows
    assert lance.dataset(uri).to_table().to_pydict() == {"n": [1]}
    assert lance.dataset(uri, version=1).to_table().to_pydict() == {"n": [1]}


def test_a_query_failing_mid_stream_commits_nothing(db, lake_dir, start_runner) -> None:
    """An error of the query after batches went into Lance fails the run with
    the query's error (not Lance's), and no version is committed."""
    uri = str(lake_dir / "ds")
    runnertools.define(db, "fine", "SELECT CAST(1 AS integer) AS n", f"lance:{uri}?create_if_missing=true")
    runnertools.define(db, "breaks", "SELECT CAST(1 / (g - 150000) AS integer) AS n"
                       " FROM generate_series(1, 200000) AS g", f"lance:{uri}")
    runnertools.submit(db, "fine")
    _drain(start_runner)
    run = runnertools.submit(db, "breaks")
    _drain(start_runner)
    row = dbtools.run_row(db, run)
    assert (row["status"], row["error_sqlstate"]) == ("failed", "22012"), row
    assert "division by zero" in row["error"]
    assert lance.dataset(uri).version == 1 and lance.dataset(uri).count_rows() == 1


def test_merge_is_refused_at_define(db) -> None:
    with pytest.raises(Exception) as refused:
        runnertools.define(db, "m", "SELECT 1 AS id", "lance:/tmp/jl_never?create_if_missing=true", mode="merge")
    assert dbtools.category(refused.value) == "invalid_argument"
    assert "append and overwrite" in str(refused.value)
    with pytest.raises(Exception) as unknown:
        runnertools.define(db, "m", "SELECT 1 AS id", "lance:/tmp/jl_never?partition_by=id")
    assert dbtools.category(unknown.value) == "invalid_argument"


def test_a_crash_between_dataset_commit_and_ledger_writes_nothing_twice(db, lake_dir, start_runner,
                                                                          monkeypatch) -> None:
    uri = str(lake_dir / "ds")
    runnertools.define(db, "export", "SELECT g AS n FROM generate_series(1, 1000) AS g",
                       f"lance:{uri}?create_if_missing=true")
    run = runnertools.submit(db, "export")
    monkeypatch.setenv("JOBLEDGER_RUNNER_FAULT", "exit-after-publish")
    crashing = start_runner("--drain", worker="crashing")
    monkeypatch.delenv("JOBLEDGER_RUNNER_FAULT")
    assert crashing.wait() == 75, crashing.log()
    assert lance.dataset(uri).version == 1  # committed, the ledger does not know
    row = dbtools.run_row(db, run)
    assert row["status"] == "running" and row["snapshot_id"] is None

    runner = start_runner("--drain", worker="second")
    assert runner.wait() == 0, runner.log()
    row = dbtools.run_row(db, run)
    assert (row["status"], row["attempt"], row["snapshot_id"], row["rows_written"]) == ("succeeded", 2, "1", 1000)
    dataset = lance.dataset(uri)
    assert dataset.version == 1 and dataset.count_rows() == 1000  # nothing written again
    assert sorted(dataset.to_table().column("n").to_pylist()) == list(range(1, 1001))
    assert dataset.read_transaction(1).transaction_properties == {"jobledger.run": str(run),
                                                                  "jobledger.attempt": "1"}
    assert [(a[0], a[1], a[2]) for a in runnertools.attempts(db, run)] == [
        (1, "crashing", "failed"), (2, "second", "succeeded")]
    registered = db.execute("SELECT latest_version, run FROM jobledger.lake_dataset").fetchall()
    assert registered == [{"latest_version": 1, "run": run}]


def test_two_runners_on_one_dataset_both_land(db, lake_dir, start_runner) -> None:
    uri = str(lake_dir / "shared")
    runnertools.define(db, "slow", "SELECT g AS n, CAST(pg_sleep(0.5) AS text) AS nap FROM generate_series(1, {n}) AS g",
                       f"lance:{uri}?create_if_missing=true", params={"n": {"type": "integer"}})
    first = runnertools.submit(db, "slow", {"n": 2})
    _drain(start_runner)  # the dataset exists; now two appends at once
    runs = [runnertools.submit(db, "slow", {"n": n}) for n in (3, 4)]
    one, two = start_runner("--drain", "--concurrency", "1"), start_runner("--drain", "--concurrency", "1")
    assert one.wait() == 0, one.log()
    assert two.wait() == 0, two.log()
    rows = [dbtools.run_row(db, run) for run in [first, *runs]]
    assert [r["status"] for r in rows] == ["succeeded"] * 3, rows
    assert {r["worker"] for r in rows[1:]} == {"runner-1", "runner-2"}, rows
    assert sorted(r["snapshot_id"] for r in rows) == ["1", "2", "3"]
    dataset = lance.dataset(uri)
    assert sorted(dataset.to_table().column("n").to_pylist()) == sorted([1, 2, 1, 2, 3, 1, 2, 3, 4])
    for row in rows:  # each version is its run's commit
        properties = dataset.read_transaction(int(row["snapshot_id"])).transaction_properties
        assert properties["jobledger.run"] == str(row["id"])
    assert db.execute("SELECT latest_version FROM jobledger.lake_dataset").fetchone() == {"latest_version": 3}


def test_first_runs_into_a_new_dataset_at_once_both_land(db, lake_dir, start_runner) -> None:
    """Runs claimed together all find the dataset missing; the creators are
    serialised (lake_create_lock) and the later ones append to it."""
    uri = str(lake_dir / "fresh")
    runnertools.define(db, "slow", "SELECT CAST({n} AS bigint) AS n FROM (SELECT pg_sleep(0.5)) AS pause",
                       f"lance:{uri}?create_if_missing=true", params={"n": {"type": "bigint"}})
    runs = [runnertools.submit(db, "slow", {"n": n}) for n in (1, 2, 3)]
    _drain(start_runner, "--concurrency", "3")
    rows = [dbtools.run_row(db, run) for run in runs]
    assert sorted((r["status"], r["attempt"], r["snapshot_id"]) for r in rows) == [
        ("succeeded", 1, "1"), ("succeeded", 1, "2"), ("succeeded", 1, "3")], rows
    assert sorted(lance.dataset(uri).to_table().column("n").to_pylist()) == [1, 2, 3]


def test_a_dataset_changed_outside_jobledger_fails_the_run(db, lake_dir, start_runner) -> None:
    uri = str(lake_dir / "ds")
    runnertools.define(db, "ints", "SELECT CAST(1 AS bigint) AS n, 'a' AS label",
                       f"lance:{uri}?create_if_missing=true")
    first = runnertools.submit(db, "ints")
    _drain(start_runner)
    assert dbtools.run_row(db, first)["status"] == "succeeded"
    # Someone replaces the dataset with other columns (the registry still says n, label).
    lance.write_dataset(pyarrow.table({"n": pyarrow.array(["x"]), "other": pyarrow.array([1])}), uri,
                        mode="overwrite")
    run = runnertools.submit(db, "ints")
    _drain(start_runner)
    row = dbtools.run_row(db, run)
    assert (row["status"], row["error_category"]) == ("failed", "schema_mismatch"), row
    assert 'column "n" is int64 in the query but string in the dataset' in row["error"]
    assert lance.dataset(uri).version == 2 and lance.dataset(uri).count_rows() == 1


def test_a_missing_dataset_without_create_if_missing(db, lake_dir, start_runner) -> None:
    uri = str(lake_dir / "nothing")
    runnertools.define(db, "ints", "SELECT 1 AS n", f"lance:{uri}")
    run = runnertools.submit(db, "ints")
    _drain(start_runner)
    row = dbtools.run_row(db, run)
    assert (row["status"], row["error_category"]) == ("failed", "destination_missing"), row
    assert not (lake_dir / "nothing").exists()


def test_schema_mismatch_at_submit_from_the_registry(db, lake_dir, start_runner) -> None:
    uri = str(lake_dir / "ds")
    target = f"lance:{uri}?create_if_missing=true"
    runnertools.define(db, "ints", "SELECT CAST(1 AS bigint) AS n, 'a' AS label,"
                       " CAST('1 day' AS interval) AS iv", target)
    runnertools.define(db, "texts", "SELECT CAST(1 AS text) AS n, 1 AS extra, CAST('1 day' AS interval) AS iv",
                       target)
    run = runnertools.submit(db, "ints")
    _drain(start_runner)
    registered = db.execute("SELECT uri, format, arrow_schema, latest_version, run FROM jobledger.lake_dataset"
                            ).fetchall()
    assert registered == [{"uri": uri, "format": "lance", "latest_version": 1, "run": run, "arrow_schema": [
        ["n", "int64"], ["label", "string"], ["iv", "struct<months:int32,days:int32,nanoseconds:int64>"]]}]
    with pytest.raises(Exception) as mismatch:
        runnertools.submit(db, "texts")
    assert dbtools.category(mismatch.value) == "schema_mismatch"
    assert "lance dataset" in mismatch.value.diag.message_primary
    assert mismatch.value.diag.message_detail.splitlines()[1:] == [
        'column "n" is string in the query but int64 in the dataset, which is not the same type or a lossless widening',
        'column "extra" (int32) does not exist in the dataset',
        'column "label" (string) of the dataset is not produced by the query',
    ]
    assert db.execute("SELECT count(*) AS n FROM jobledger.run WHERE job = 'texts'").fetchone() == {"n": 0}


def test_the_registry_accepts_only_the_runs_own_destination(db, lake_dir, start_runner) -> None:
    """A lance_commit output naming another location, or the other format, is refused."""
    uri = str(lake_dir / "ds")
    runnertools.define(db, "ints", "SELECT 1 AS n", f"lance:{uri}?create_if_missing=true")
    run = runnertools.submit(db, "ints")
    for name, record in [("lance_commit", {"uri": uri + "x", "format": "lance"}),
                         ("delta_commit", {"uri": uri, "format": "delta"}),
                         ("lance_commit", {"uri": uri, "format": "delta"})]:
        payload = json.dumps({**record, "version": 5, "schema": [["n", "int32"]]}).encode()
        with pytest.raises(Exception) as refused, db.transaction():
            db.execute("INSERT INTO jobledger.output (run, attempt, name, content_type, data)"
                       " VALUES (%s, 1, %s, 'application/json', %s)", (run, name, payload))
        assert dbtools.category(refused.value) == "invalid_argument", name
    assert db.execute("SELECT count(*) AS n FROM jobledger.lake_dataset").fetchone() == {"n": 0}


# ---- who may write where: the same grants as delta: (core.lake_grants) ----


def test_lance_writes_need_a_lake_grant(db, lake_owner, lake_dir, make_role, connect, start_runner) -> None:
    lake_owner, group = lake_owner
    uri = str(lake_dir / "granted")
    runnertools.define(lake_owner, "granted", "SELECT 1 AS n", f"lance:{uri}?create_if_missing=true")
    run = runnertools.submit(lake_owner, "granted")
    _drain(start_runner)
    row = dbtools.run_row(db, run)
    assert (row["status"], row["snapshot_id"], row["rows_written"]) == ("succeeded", "1", 1), row
    assert lance.dataset(uri).count_rows() == 1

    stranger = connect(user=make_role("no_lake"))
    with pytest.raises(Exception) as refused:
        runnertools.define(stranger, "elsewhere", "SELECT 1 AS n", f"lance:{uri}?create_if_missing=true")
    assert dbtools.category(refused.value) == "permission_denied"

    # Taken back after submit: the runner asks again before writing.
    run = runnertools.submit(lake_owner, "granted")
    db.execute("SELECT jobledger.disallow_lake_prefix(%s, %s)", (group, str(lake_dir)))
    _drain(start_runner)
    row = dbtools.run_row(db, run)
    assert (row["status"], row["error_category"]) == ("failed", "permission_denied"), row
    assert lance.dataset(uri).version == 1 and pathlib.Path(uri).is_dir()
