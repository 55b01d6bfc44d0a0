"""Outputs through SQL: emit_output's fence, insertion order, lineage,
latest_output, visibility like the run, pruning with the run; result_json's
refusals; define_job's checks of result and parquet: destinations."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import tempfile
import uuid
from typing import Iterator

import psycopg
import pytest

import dbtools

WORKER = "test-runner"


@pytest.fixture
def job(db: psycopg.Connection) -> str:
    db.execute("CREATE TABLE public.dest (x integer)")
    return dbtools.make_job(db, "job1", max_attempts=3)


def claimed_run(db: psycopg.Connection, runner: psycopg.Connection, job: str) -> uuid.UUID:
    run = dbtools.make_run(db, job)
    [row] = runner.execute("SELECT * FROM jobledger_internal.claim_runs(%s, 1)", (WORKER,)).fetchall()
    assert row["id"] == run
    return run


def emit(conn: psycopg.Connection, run: uuid.UUID, name: str, data: bytes = b"x",
         parents: list[uuid.UUID] | None = None, content_type: str = "text/plain") -> uuid.UUID:
    return conn.execute("SELECT jobledger_internal.emit_output(%s, %s, %s, %s, %s::uuid[]) AS id",
                        (run, name, content_type, data, parents or [])).fetchone()["id"]


def test_outputs_keep_insertion_order_and_lineage(db, job, connect) -> None:
    runner = connect()
    run = claimed_run(db, runner, job)
    first = emit(runner, run, "result", b"\x00\x01arrow")
    second = emit(runner, run, "result.json", b"[]", [first], "application/json")
    third = emit(runner, run, "notes", b"n", [first, second])
    outputs = db.execute("SELECT * FROM jobledger.outputs(%s)", (run,)).fetchall()
    assert [o["id"] for o in outputs] == [first, second, third]
    assert [o["seq"] for o in outputs] == sorted(o["seq"] for o in outputs)
    assert len({o["seq"] for o in outputs}) == 3
    assert [o["parent_outputs"] for o in outputs] == [[], [first], [first, second]]
    assert outputs[0]["data"] == b"\x00\x01arrow" and outputs[0]["size"] == 7
    assert {o["attempt"] for o in outputs} == {1}
    assert outputs[1]["content_type"] == "application/json"

    # latest_output: the highest seq of that name, across runs.
    other = claimed_run(db, runner, job)
    newer = emit(runner, other, "result", b"newer")
    assert db.execute("SELECT (jobledger.latest_output('result')).id AS id").fetchone()["id"] == newer
    assert db.execute("SELECT (jobledger.latest_output('nothing')).id AS id").fetchone()["id"] is None
    # Lineage may point at another run's outputs, never at nothing.
    emit(runner, other, "derived", b"d", [first])
    with pytest.raises(psycopg.errors.InvalidParameterValue) as refused:
        emit(runner, other, "derived", b"d", [uuid.uuid4()])
    assert dbtools.category(refused.value) == "invalid_argument"


def test_only_the_connection_executing_the_run_may_emit(db, job, connect) -> None:
    runner = connect()
    run = claimed_run(db, runner, job)
    # Another connection, even a superuser's, is not the run's backend.
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as fenced:
        emit(connect(), run, "result")
    assert dbtools.category(fenced.value) == "run_fenced"
    # Once the run is finished, not even its connection.
    runner.execute("SELECT jobledger_internal.complete_run(%s, 1, %s, 0)", (run, WORKER))
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
        emit(runner, run, "late")
    pending = dbtools.make_run(db, job)
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
        emit(runner, pending, "early")
    with pytest.raises(psycopg.errors.UndefinedObject):
        emit(runner, uuid.uuid4(), "nowhere")
    assert db.execute("SELECT count(*) AS n FROM jobledger.output").fetchone() == {"n": 0}


def test_public_may_read_but_not_emit(db, job, make_role, connect) -> None:
    nobody = make_role("nobody")
    conn = connect(user=nobody)
    run = dbtools.make_run(db, job)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        emit(conn, run, "result")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("INSERT INTO jobledger.output (run, attempt, name, content_type, data)"
                     " VALUES (%s, 1, 'x', 'text/plain', 'x')", (run,))
    for fn in ("lock_run(uuid, integer, text)", "report_progress(uuid, integer, text, bigint, integer)",
               "complete_run(uuid, integer, text, bigint, text, jsonb)"):
        assert conn.execute(f"SELECT has_function_privilege('jobledger_internal.{fn}', 'EXECUTE') AS ok").fetchone() == {
            "ok": False}, fn


def test_outputs_are_visible_like_their_run_and_pruned_with_it(db, make_role, connect) -> None:
    owner, submitter, outsider = make_role("owner"), make_role("submitter"), make_role("outsider")
    db.execute(f"GRANT {owner} TO postgres")
    db.execute("CREATE TABLE public.dest (x integer)")
    with db.transaction():
        db.execute("INSERT INTO jobledger.job (name, owner, current_version) VALUES ('j', %s, 1)", (owner,))
        db.execute("INSERT INTO jobledger.job_version (job, version, query, destination)"
                   " VALUES ('j', 1, 'SELECT 1 AS x', 'result')")
    run = dbtools.make_run(db, "j", submitted_by=submitter)
    runner = connect()
    runner.execute("SELECT * FROM jobledger_internal.claim_runs(%s, 1)", (WORKER,))
    out = emit(runner, run, "result")
    runner.execute("SELECT jobledger_internal.complete_run(%s, 1, %s, 0, NULL)", (run, WORKER))

    def seen(role: str) -> list:
        conn = connect(user=role)
        return [r["id"] for r in conn.execute("SELECT id FROM jobledger.output").fetchall()]

    assert seen(submitter) == [out] and seen(owner) == [out] and seen(outsider) == []
    assert connect(user=outsider).execute("SELECT count(*) AS n FROM jobledger.outputs(%s)", (run,)).fetchone() == {
        "n": 0}
    with pytest.raises(psycopg.errors.UndefinedObject):  # a run it may not see is not there
        connect(user=outsider).execute("SELECT jobledger.result_arrow(%s)", (run,))
    assert connect(user=submitter).execute("SELECT jobledger.result_arrow(%s) AS r", (run,)).fetchone() == {
        "r": b"x"}

    db.execute("UPDATE jobledger.run SET finished_at = now() - interval '2 days' WHERE id = %s", (run,))
    assert db.execute("SELECT jobledger.prune('1 day') AS n").fetchone() == {"n": 1}
    assert db.execute("SELECT count(*) AS n FROM jobledger.output").fetchone() == {"n": 0}


def test_result_json_says_why_there_is_none(db, job, connect) -> None:
    with pytest.raises(psycopg.errors.UndefinedObject) as missing:
        db.execute("SELECT jobledger.result_json(%s)", (uuid.uuid4(),))
    assert dbtools.category(missing.value) == "unknown_run"
    runner = connect()
    run = claimed_run(db, runner, job)
    runner.execute("SELECT jobledger_internal.complete_run(%s, 1, %s, 0)", (run, WORKER))
    pending = dbtools.make_run(db, job)
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as early:
        db.execute("SELECT jobledger.result_json(%s)", (pending,))
    assert dbtools.category(early.value) == "no_result" and "pending" in str(early.value)
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as table_run:
        db.execute("SELECT jobledger.result_json(%s)", (run,))
    assert dbtools.category(table_run.value) == "no_result"
    assert "destination is result" in table_run.value.diag.message_hint


def test_report_progress_and_complete_with_snapshot(db, job, connect) -> None:
    runner = connect()
    run = claimed_run(db, runner, job)
    assert db.execute("SELECT jobledger_internal.report_progress(%s, 1, %s, 500, 40) AS ok", (run, WORKER)).fetchone() == {
        "ok": True}
    assert db.execute("SELECT jobledger_internal.report_progress(%s, 2, %s, 9, 9) AS ok", (run, WORKER)).fetchone() == {
        "ok": False}  # fenced: not this attempt
    row = dbtools.run_row(db, run)
    assert (row["rows_written"], row["progress"]) == (500, 40)
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        db.execute("SELECT jobledger_internal.report_progress(%s, 1, %s, 1, 101)", (run, WORKER))
    runner.execute("SELECT jobledger_internal.lock_run(%s, 1, %s)", (run, WORKER))
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as fenced:
        runner.execute("SELECT jobledger_internal.lock_run(%s, 2, %s)", (run, WORKER))
    assert dbtools.category(fenced.value) == "run_fenced"
    runner.execute("SELECT jobledger_internal.complete_run(%s, 1, %s, 1000, '7')", (run, WORKER))
    row = dbtools.run_row(db, run)
    assert (row["status"], row["rows_written"], row["snapshot_id"], row["progress"]) == ("succeeded", 1000, "7", 100)


def test_lock_run_holds_off_cancel_until_the_commit(db, job, connect) -> None:
    runner = connect()
    run = claimed_run(db, runner, job)
    with runner.transaction():
        runner.execute("SELECT jobledger_internal.lock_run(%s, 1, %s)", (run, WORKER))
        other = connect()
        other.execute("SET lock_timeout = '200ms'")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            other.execute("SELECT jobledger.cancel_run(%s)", (run,))
        assert db.execute("SELECT jobledger.reconcile_orphaned('test', '1 microsecond') AS n").fetchone() == {"n": 0}
        runner.execute("SELECT jobledger_internal.complete_run(%s, 1, %s, 3, '1')", (run, WORKER))
    assert db.execute("SELECT jobledger.cancel_run(%s) AS c", (run,)).fetchone() == {"c": False}
    assert dbtools.run_row(db, run)["status"] == "succeeded"


# ---- define_job with result and parquet: destinations ------------------------------


@pytest.fixture
def lake_dir() -> Iterator[pathlib.Path]:
    """A directory the database server's OS user can read (tmp_path may be private)."""
    path = pathlib.Path(tempfile.mkdtemp(prefix="jl_lake_"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def define(db: psycopg.Connection, name: str, query: str, destination: str, mode: str = "append") -> int:
    return db.execute("SELECT jobledger.define_job(%s, %s, %s, %s) AS v", (name, query, destination, mode)
                      ).fetchone()["v"]


def test_destinations_are_stored_canonically_and_modes_checked(db, lake_dir) -> None:
    assert define(db, "r", "SELECT 1 AS a", "result") == 1
    target = f"parquet:{lake_dir}//ds/?create_if_missing=true"
    assert define(db, "p", "SELECT 1 AS a", target) == 1
    stored = {r["job"]: r["destination"] for r in db.execute("SELECT job, destination FROM jobledger.job_version")}
    assert stored == {"r": "result", "p": f"parquet:{lake_dir}/ds?create_if_missing=true"}
    for destination, mode in (("result", "overwrite"), ("result", "merge"), (target, "merge")):
        with pytest.raises(psycopg.errors.InvalidParameterValue) as refused:
            define(db, "bad", "SELECT 1 AS a", destination, mode)
        assert dbtools.category(refused.value) == "invalid_argument"
    for destination in ("parquet:relative/dir", f"parquet:{lake_dir}/../x", f"parquet:{lake_dir}?nope=1"):
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            define(db, "bad", "SELECT 1 AS a", destination)
    assert define(db, "p2", "SELECT 1 AS a", target, "overwrite") == 1


def test_every_type_has_an_arrow_mapping_when_defined(db, lake_dir) -> None:
    # Plain numeric (sum, avg) and interval were refused until 0.5.0; now a string and month_day_nano.
    assert define(db, "r", "SELECT sum(x) AS n, interval '1 day' AS i, '1'::money AS m, 2 AS ok"
                           " FROM (VALUES (1.5)) v(x)", "result") == 1


def test_a_missing_dataset_needs_create_if_missing(db, lake_dir) -> None:
    with pytest.raises(psycopg.errors.UndefinedTable) as missing:
        define(db, "p", "SELECT 1 AS a", f"parquet:{lake_dir}/ds")
    assert dbtools.category(missing.value) == "destination_missing"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs a directory the server's OS user cannot read")
def test_a_directory_the_server_cannot_read_is_refused_clearly(db, lake_dir) -> None:
    private = lake_dir / "private"
    private.mkdir(mode=0o700)
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
        define(db, "p", "SELECT 1 AS a", f"parquet:{private}/ds?create_if_missing=true")
    assert dbtools.category(refused.value) == "permission_denied"
    assert "cannot read the dataset directory" in str(refused.value)
    assert "same directory" in refused.value.diag.message_hint


def test_parquet_destinations_need_pg_write_server_files(db, lake_dir, make_role, connect) -> None:
    owner = make_role("owner")
    conn = connect(user=owner)
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
        define(conn, "p", "SELECT 1 AS a", f"parquet:{lake_dir}/ds?create_if_missing=true")
    assert dbtools.category(refused.value) == "permission_denied" and "pg_write_server_files" in str(refused.value)
    assert define(conn, "r", "SELECT 1 AS a", "result") == 1  # results need nothing more
    db.execute(f"GRANT pg_write_server_files TO {owner}")
    assert define(conn, "p", "SELECT 1 AS a", f"parquet:{lake_dir}/ds?create_if_missing=true") == 1
    db.execute(f"REVOKE pg_write_server_files FROM {owner}")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):  # checked again at submit
        conn.execute("SELECT jobledger.submit_job('p')")


def test_submit_compares_the_query_with_the_dataset(db, lake_dir) -> None:
    manifests = lake_dir / "ds" / "_manifests"
    manifests.mkdir(parents=True)
    manifests.joinpath("v1.json").write_text(json.dumps({
        "format": "jobledger-parquet-dataset", "format_version": 1, "version": 1, "parent": None,
        "operation": "append", "run": "r", "attempt": 1, "created_at": "2026-01-01T00:00:00+00:00", "rows": 0,
        "schema": [{"name": "a", "type": "int64"}, {"name": "b", "type": "string"}], "files": [], "added": []}))
    for path in (lake_dir / "ds", manifests):
        path.chmod(0o755)
    manifests.joinpath("v1.json").chmod(0o644)
    # int32 widens to int64; b is missing.
    with pytest.raises(psycopg.errors.DatatypeMismatch) as mismatch:
        define(db, "p", "SELECT 1::int4 AS a, 2 AS c", f"parquet:{lake_dir}/ds")
    assert dbtools.category(mismatch.value) == "schema_mismatch"
    assert mismatch.value.diag.message_detail.splitlines()[1:] == [
        'column "c" (int32) does not exist in the dataset',
        'column "b" (string) of the dataset is not produced by the query',
    ]
    assert define(db, "p", "SELECT 1::int4 AS a, 'x'::text AS b", f"parquet:{lake_dir}/ds") == 1
    db.execute("SELECT jobledger.submit_job('p')")
    # The dataset changes under the job: the next submit sees it.
    manifests.joinpath("v2.json").write_text(manifests.joinpath("v1.json").read_text().replace(
        '"type": "string"', '"type": "int16"').replace('"version": 1', '"version": 2'))
    manifests.joinpath("v2.json").chmod(0o644)
    with pytest.raises(psycopg.errors.DatatypeMismatch) as changed:
        db.execute("SELECT jobledger.submit_job('p')")
    assert 'column "b" is string in the query but int16 in the dataset' in changed.value.diag.message_detail
    assert db.execute("SELECT count(*) AS n FROM jobledger.run").fetchone() == {"n": 1}


def test_run_output_returns_the_newest_of_a_name_or_says_why_not(db, job, connect, make_role) -> None:
    runner = connect()
    run = claimed_run(db, runner, job)
    emit(runner, run, "notes", b"first")
    emit(runner, run, "notes", b"second")
    assert db.execute("SELECT jobledger.run_output(%s, 'notes') AS d", (run,)).fetchone() == {"d": b"second"}

    def refused(conn, run_id, name) -> psycopg.Error:
        with pytest.raises(psycopg.Error) as caught:
            conn.execute("SELECT jobledger.run_output(%s, %s)", (run_id, name))
        return caught.value

    # Still running: nothing named so yet.
    error = refused(db, run, "result")
    assert dbtools.category(error) == "no_result" and "running" in str(error)
    assert error.diag.message_hint == "Wait for it to succeed."
    runner.execute("SELECT jobledger_internal.complete_run(%s, 1, %s, 0)", (run, WORKER))
    error = refused(db, run, "result")
    assert dbtools.category(error) == "no_result"
    assert "destination is result" in error.diag.message_hint
    assert dbtools.category(refused(db, uuid.uuid4(), "notes")) == "unknown_run"
    # A run the caller may not see is, for it, not there.
    outsider = connect(user=make_role("outsider"))
    assert dbtools.category(refused(outsider, run, "notes")) == "unknown_run"
