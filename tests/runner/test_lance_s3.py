"""Destination lance:s3://... through real runner processes against moto's S3
server (s3server: a subprocess on a free port, IAM authentication on), a
bucket per test: every type round trip with time travel, a crash between
the commit and the ledger, a missing bucket, wrong credentials, two runners
committing at once.  The runner has its credentials from its environment only."""

from __future__ import annotations

import json

import lance

import dbtools
import runnertools
from s3server import bucket, free_port, s3_server  # noqa: F401 (fixtures)
from test_lance import TYPES_WITH_EXTRA, check_types_row


def _drain(start_runner, *args: str) -> None:
    runner = start_runner("--drain", *args)
    assert runner.wait() == 0, runner.log()


def test_every_type_round_trips_through_s3_with_time_travel(db, s3_server, bucket, start_runner) -> None:
    uri = f"s3://{bucket}/lake/types"
    runnertools.define(db, "types", TYPES_WITH_EXTRA, f"lance:{uri}?create_if_missing=true")
    runnertools.define(db, "types_replace", TYPES_WITH_EXTRA + " LIMIT 1", f"lance:{uri}", mode="overwrite")
    runs = [runnertools.submit(db, "types")]
    _drain(start_runner)
    runs.append(runnertools.submit(db, "types"))
    _drain(start_runner)
    runs.append(runnertools.submit(db, "types_replace"))
    _drain(start_runner)
    rows = [dbtools.run_row(db, run) for run in runs]
    assert [(r["status"], r["snapshot_id"], r["rows_written"]) for r in rows] == [
        ("succeeded", "1", 2), ("succeeded", "2", 2), ("succeeded", "3", 1)], rows
    assert lance.dataset(uri, storage_options=s3_server).version == 3
    for row in rows:  # every run's rows, by time travel to its snapshot_id
        dataset = lance.dataset(uri, version=int(row["snapshot_id"]), storage_options=s3_server)
        assert dataset.count_rows() == {"1": 2, "2": 4, "3": 1}[row["snapshot_id"]]
    check_types_row(lance.dataset(uri, version=1, storage_options=s3_server).to_table())


def test_a_crash_between_commit_and_ledger_on_s3(db, s3_server, bucket, start_runner, monkeypatch) -> None:
    uri = f"s3://{bucket}/ds"
    runnertools.define(db, "export", "SELECT g AS n FROM generate_series(1, 500) AS g",
                       f"lance:{uri}?create_if_missing=true")
    run = runnertools.submit(db, "export")
    monkeypatch.setenv("JOBLEDGER_RUNNER_FAULT", "exit-after-publish")
    crashing = start_runner("--drain", worker="crashing")
    monkeypatch.delenv("JOBLEDGER_RUNNER_FAULT")
    assert crashing.wait() == 75, crashing.log()
    _drain(start_runner)
    row = dbtools.run_row(db, run)
    assert (row["status"], row["attempt"], row["snapshot_id"], row["rows_written"]) == ("succeeded", 2, "1", 500)
    dataset = lance.dataset(uri, storage_options=s3_server)
    assert dataset.version == 1 and dataset.count_rows() == 500


def test_a_missing_bucket_and_wrong_credentials_are_clear_categories(db, s3_server, bucket, start_runner,
                                                                      monkeypatch) -> None:
    runnertools.define(db, "nowhere", "SELECT 1 AS n", "lance:s3://jl-no-such-bucket/t?create_if_missing=true")
    runnertools.define(db, "somewhere", "SELECT 1 AS n", f"lance:s3://{bucket}/t?create_if_missing=true")
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


def test_two_runners_committing_to_one_dataset_both_land(db, s3_server, bucket, start_runner) -> None:
    uri = f"s3://{bucket}/shared"
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
    dataset = lance.dataset(uri, storage_options=s3_server)
    assert sorted(dataset.to_table().column("n").to_pylist()) == sorted([1, 2, 1, 2, 3, 1, 2, 3, 4])
    for row in rows:
        assert dataset.read_transaction(int(row["snapshot_id"])).transaction_properties["jobledger.run"] == str(
            row["id"])


def test_an_unreachable_store_is_retried_and_the_retry_commits_once(db, s3_server, bucket, start_runner,
                                                                     monkeypatch) -> None:
    """storage_error (nothing listens at the endpoint) is worth another
    attempt; the retry, with the store back, asks the dataset first and
    commits one version."""
    uri = f"s3://{bucket}/outage"
    runnertools.define(db, "outage", "SELECT 1 AS n", f"lance:{uri}?create_if_missing=true", max_attempts=2)
    run = runnertools.submit(db, "outage")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    _drain(start_runner, "--retry-backoff", "600")
    row = dbtools.run_row(db, run)
    assert (row["status"], row["attempt"], row["error_category"]) == ("pending", 1, "storage_error"), row
    db.execute("UPDATE jobledger.run SET run_after = now() WHERE id = %s", (run,))  # the backoff, skipped
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server["AWS_ENDPOINT_URL"])
    _drain(start_runner)
    row = dbtools.run_row(db, run)
    assert (row["status"], row["attempt"], row["snapshot_id"]) == ("succeeded", 2, "1"), row
    dataset = lance.dataset(uri, storage_options=s3_server)
    assert (dataset.version, dataset.to_table().column("n").to_pylist()) == (1, [1])
