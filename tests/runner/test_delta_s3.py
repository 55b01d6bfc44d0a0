"""Destination delta:s3://... through real runner processes against moto's S3
server (s3server: a subprocess on a free port, with IAM authentication on, so
wrong credentials are refused as by S3), a bucket per test.  The runner has
its credentials from its environment only."""

from __future__ import annotations

import datetime
import decimal
import json

import deltalake
import psycopg
import pytest

import dbtools
import runnertools
from s3server import bucket, free_port, s3_server  # noqa: F401 (fixtures)
from test_delta import EXPECTED_DELTA, EXTRA
from test_lake import TYPES_QUERY


def _storage(s3_server: dict[str, str]) -> dict[str, str]:
    return dict(s3_server)


def _drain(start_runner, *args: str) -> None:
    runner = start_runner("--drain", *args)
    assert runner.wait() == 0, runner.log()


def test_every_type_round_trips_through_s3_with_time_travel(db, s3_server, bucket, start_runner) -> None:
    uri = f"s3://{bucket}/lake/types"
    query = TYPES_QUERY.replace(" FROM (VALUES", EXTRA + " FROM (VALUES")
    runnertools.define(db, "types", query, f"delta:{uri}?create_if_missing=true")
    runnertools.define(db, "types_replace", query + " LIMIT 1", f"delta:{uri}", mode="overwrite")
    runs = [runnertools.submit(db, "types")]
    _drain(start_runner)
    runs.append(runnertools.submit(db, "types"))
    _drain(start_runner)
    runs.append(runnertools.submit(db, "types_replace"))
    _drain(start_runner)
    rows = [dbtools.run_row(db, run) for run in runs]
    assert [(r["status"], r["snapshot_id"], r["rows_written"]) for r in rows] == [
        ("succeeded", "0", 2), ("succeeded", "1", 2), ("succeeded", "2", 1)], rows
    storage = _storage(s3_server)
    assert deltalake.DeltaTable(uri, storage_options=storage).version() == 2
    for row in rows:  # every run's rows, by time travel to its snapshot_id
        table = deltalake.DeltaTable(uri, version=int(row["snapshot_id"]), storage_options=storage)
        assert table.to_pyarrow_table().num_rows == {"0": 2, "1": 4, "2": 1}[row["snapshot_id"]]
    back = deltalake.DeltaTable(uri, version=0, storage_options=storage).to_pyarrow_table().sort_by("k")
    first = back.to_pylist()[0]
    for name, value in EXPECTED_DELTA.items():
        assert first[name] == value, name
    assert first["tz"] == datetime.datetime(2026, 3, 28, 23, 30, 0, 500000, tzinfo=datetime.timezone.utc)
    assert first["iv"] == {"months": 1, "days": 2, "nanoseconds": 3_500_000_000}
    assert first["d38"] == decimal.Decimal("-99999999999999999999999999999999999.999")
    assert all(v is None for k, v in back.to_pylist()[1].items() if k != "k")


def test_a_missing_bucket_and_wrong_credentials_are_clear_categories(db, s3_server, bucket, start_runner,
                                                                      monkeypatch) -> None:
    runnertools.define(db, "nowhere", "SELECT 1 AS n", "delta:s3://jl-no-such-bucket/t?create_if_missing=true")
    runnertools.define(db, "somewhere", "SELECT 1 AS n", f"delta:s3://{bucket}/t?create_if_missing=true")
    missing = runnertools.submit(db, "nowhere")
    _drain(start_runner)
    row = dbtools.run_row(db, missing)
    assert (row["status"], row["error_category"]) == ("failed", "destination_missing"), row
    assert "jl-no-such-bucket" in row["error"] and "\x1b" not in row["error"]

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    refused = runnertools.submit(db, "somewhere")
    _drain(start_runner)
    row = dbtools.run_row(db, refused)
    assert (row["status"], row["error_category"]) == ("failed", "permission_denied"), row
    assert "not-the-secret" not in row["error"]
    # Credentials never reach the database.
    dumped = json.dumps([dict(r) for r in db.execute("SELECT * FROM jobledger.run").fetchall()], default=str)
    assert s3_server["AWS_SECRET_ACCESS_KEY"] not in dumped and "not-the-secret" not in dumped


def test_two_runners_committing_to_one_table_both_land(db, s3_server, bucket, start_runner) -> None:
    uri = f"s3://{bucket}/shared"
    runnertools.define(db, "slow", "SELECT g AS n, CAST(pg_sleep(0.5) AS text) AS nap FROM generate_series(1, {n}) AS g"
                       " WHERE g = 1 OR true", f"delta:{uri}?create_if_missing=true",
                       params={"n": {"type": "integer"}})
    first = runnertools.submit(db, "slow", {"n": 2})
    _drain(start_runner)  # the table exists; now two appends at once
    runs = [runnertools.submit(db, "slow", {"n": n}) for n in (3, 4)]
    one, two = start_runner("--drain", "--concurrency", "1"), start_runner("--drain", "--concurrency", "1")
    assert one.wait() == 0, one.log()
    assert two.wait() == 0, two.log()
    rows = [dbtools.run_row(db, run) for run in [first, *runs]]
    assert [r["status"] for r in rows] == ["succeeded"] * 3, rows
    assert {r["worker"] for r in rows[1:]} == {"runner-1", "runner-2"}, rows
    assert sorted(r["snapshot_id"] for r in rows) == ["0", "1", "2"]
    table = deltalake.DeltaTable(uri, storage_options=_storage(s3_server))
    assert sorted(table.to_pyarrow_table().column("n").to_pylist()) == sorted([1, 2, 1, 2, 3, 1, 2, 3, 4])


def test_an_unreachable_store_is_retried_and_the_retry_commits_once(db, s3_server, bucket, start_runner,
                                                                     monkeypatch) -> None:
    """storage_error (here: nothing listens at the endpoint) is worth another
    attempt; the retry, with the store back, commits one version."""
    uri = f"s3://{bucket}/outage"
    runnertools.define(db, "outage", "SELECT 1 AS n", f"delta:{uri}?create_if_missing=true", max_attempts=2)
    run = runnertools.submit(db, "outage")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    _drain(start_runner, "--retry-backoff", "600")
    row = dbtools.run_row(db, run)
    assert (row["status"], row["attempt"], row["error_category"]) == ("pending", 1, "storage_error"), row
    assert row["run_after"] > db.execute("SELECT now() + interval '5 minutes' AS t").fetchone()["t"]
    db.execute("UPDATE jobledger.run SET run_after = now() WHERE id = %s", (run,))  # the backoff, skipped
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server["AWS_ENDPOINT_URL"])
    _drain(start_runner)
    row = dbtools.run_row(db, run)
    assert (row["status"], row["attempt"], row["snapshot_id"]) == ("succeeded", 2, "0"), row
    table = deltalake.DeltaTable(uri, storage_options=_storage(s3_server))
    assert (table.version(), table.to_pyarrow_table().column("n").to_pylist()) == (0, [1])


def test_an_owner_writes_only_under_its_granted_s3_prefix(db, s3_server, bucket, make_role, connect,
                                                          start_runner) -> None:
    owner = make_role("s3_owner")
    db.execute("SELECT jobledger.allow_lake_prefix(%s, %s)", (owner, f"s3://{bucket}/lake/"))
    conn = connect(user=owner)
    uri = f"s3://{bucket}/lake/sales"
    runnertools.define(conn, "granted", "SELECT 1 AS n", f"delta:{uri}?create_if_missing=true")
    for elsewhere in (f"s3://{bucket}/lakehouse/sales", f"s3://{bucket}x/lake/sales", f"s3://{bucket}/lak"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
            runnertools.define(conn, "elsewhere", "SELECT 1 AS n", f"delta:{elsewhere}?create_if_missing=true")
        assert dbtools.category(refused.value) == "permission_denied" and elsewhere in str(refused.value)
    run = runnertools.submit(conn, "granted")
    _drain(start_runner)
    assert dbtools.run_row(db, run)["status"] == "succeeded"
    assert deltalake.DeltaTable(uri, storage_options=_storage(s3_server)).to_pyarrow_table().num_rows == 1
