"""Parquet directory datasets: versions, append/overwrite, exactly-once retries, races, retention."""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import subprocess
import sys
import threading
from typing import Any, Iterator

import pyarrow
import pyarrow.parquet
import pytest

from jobledger.core import dataset_manifest, errors
from jobledger.lake import arrow_schema, parquet_dataset

PYTHON_DIR = pathlib.Path(__file__).resolve().parents[2] / "python"
SCHEMA = arrow_schema.schema([("id", "int64"), ("amount", "decimal128(12,2)"), ("label", "string")])


def batch(start: int, count: int, schema: pyarrow.Schema = SCHEMA) -> pyarrow.RecordBatch:
    ids = list(range(start, start + count))
    return pyarrow.record_batch({
        "id": pyarrow.array(ids, schema.field("id").type),
        "amount": pyarrow.array([f"{i}.25" for i in ids]).cast(schema.field("amount").type),
        "label": [f"row {i} ☃" for i in ids],
    }, schema=schema)


def ids(table: pyarrow.Table) -> list[int]:
    return table.column("id").to_pylist()


def data_files(root: pathlib.Path) -> list[str]:
    return sorted(p.name for p in root.glob("*.parquet"))


def test_a_missing_dataset_is_refused_unless_created(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "ds"
    with pytest.raises(errors.JobledgerError) as caught:
        parquet_dataset.write(root, SCHEMA, [batch(0, 3)], run="r1", attempt=1)
    assert caught.value.category == "destination_missing"
    assert not root.exists()
    commit = parquet_dataset.write(root, SCHEMA, [batch(0, 3)], run="r1", attempt=1, create_if_missing=True)
    assert (commit.snapshot_id, commit.rows_written, commit.already_committed) == (1, 3, False)
    assert ids(parquet_dataset.read_table(root)) == [0, 1, 2]


def test_append_and_overwrite_publish_versions_that_stay_readable(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "ds"
    v1 = parquet_dataset.write(root, SCHEMA, [batch(0, 3)], run="r1", attempt=1, create_if_missing=True)
    v2 = parquet_dataset.write(root, SCHEMA, [batch(10, 2), batch(12, 1)], run="r2", attempt=1)
    v3 = parquet_dataset.write(root, SCHEMA, [batch(100, 2)], run="r3", attempt=2, mode="overwrite")
    assert [v1.snapshot_id, v2.snapshot_id, v3.snapshot_id] == [1, 2, 3]
    assert [v1.rows_written, v2.rows_written, v3.rows_written] == [3, 3, 2]
    assert ids(parquet_dataset.read_table(root)) == [100, 101]
    assert ids(parquet_dataset.read_table(root, 2)) == [0, 1, 2, 10, 11, 12]
    assert ids(parquet_dataset.read_table(root, 1)) == [0, 1, 2]
    # Overwrite deleted nothing: readers of version 2 still find its files.
    assert data_files(root) == ["part-r1-1-1.parquet", "part-r2-1-1.parquet", "part-r3-2-1.parquet"]
    current = parquet_dataset.manifest(root)
    assert (current.operation, current.parent, current.run, current.attempt) == ("overwrite", 2, "r3", 2)
    assert [f.path for f in current.files] == ["part-r3-2-1.parquet"]
    table = parquet_dataset.read_table(root, 2)
    assert table.schema == SCHEMA
    assert table.column("amount").to_pylist()[0] == pyarrow.scalar("0.25").cast(pyarrow.decimal128(12, 2)).as_py()


def test_manifest_describes_the_version(tmp_path: pathlib.Path) -> None:
    parquet_dataset.write(tmp_path, SCHEMA, [batch(0, 5)], run="run-a", attempt=3, create_if_missing=True)
    data = json.loads((tmp_path / "_manifests" / "v1.json").read_text())
    assert data["schema"] == [{"name": "id", "type": "int64"}, {"name": "amount", "type": "decimal128(12,2)"},
                              {"name": "label", "type": "string"}]
    assert (data["run"], data["attempt"], data["rows"], data["version"]) == ("run-a", 3, 5, 1)
    assert data["files"] == [{"path": "part-run-a-3-1.parquet", "rows": 5,
                              "bytes": (tmp_path / "part-run-a-3-1.parquet").stat().st_size}]
    assert datetime.datetime.fromisoformat(data["created_at"]).tzinfo is not None
    # Every file is readable Parquet with the dataset's schema and the rows the manifest says.
    assert pyarrow.parquet.read_table(tmp_path / "part-run-a-3-1.parquet").num_rows == 5


def test_files_roll_at_the_size_limit_and_progress_advances(tmp_path: pathlib.Path) -> None:
    seen: list[int] = []
    commit = parquet_dataset.write(tmp_path, SCHEMA, (batch(i * 100, 100) for i in range(10)), run="r",
                                   attempt=1, create_if_missing=True, max_file_bytes=3000, progress=seen.append)
    assert seen == [100 * (i + 1) for i in range(10)]
    files = commit.manifest.files
    assert len(files) > 2
    assert [f.path for f in files] == [f"part-r-1-{n}.parquet" for n in range(1, len(files) + 1)]
    assert sum(f.rows for f in files) == 1000
    assert ids(parquet_dataset.read_table(tmp_path)) == list(range(1000))
    assert list((tmp_path / "_tmp").iterdir()) == []


def test_empty_commit_publishes_a_version_without_rows(tmp_path: pathlib.Path) -> None:
    parquet_dataset.write(tmp_path, SCHEMA, [batch(0, 2)], run="r1", attempt=1, create_if_missing=True)
    commit = parquet_dataset.write(tmp_path, SCHEMA, [], run="r2", attempt=1, mode="overwrite")
    assert (commit.snapshot_id, commit.rows_written) == (2, 0)
    table = parquet_dataset.read_table(tmp_path)
    assert table.num_rows == 0 and table.schema == SCHEMA


# --- schema ------------------------------------------------------------------------


def test_schema_mismatch_is_refused_before_writing(tmp_path: pathlib.Path) -> None:
    parquet_dataset.write(tmp_path, SCHEMA, [batch(0, 2)], run="r1", attempt=1, create_if_missing=True)
    other = arrow_schema.schema([("id", "string"), ("label", "string"), ("extra", "bool")])
    with pytest.raises(errors.JobledgerError) as caught:
        parquet_dataset.Writer(tmp_path, other, run="r2", attempt=1)
    assert caught.value.category == "schema_mismatch"
    assert (caught.value.detail or "").splitlines() == [
        'column "id" is string in the query but int64 in the dataset, which is not the same type or a lossless widening',
        'column "extra" (bool) does not exist in the dataset',
        'column "amount" (decimal128(12,2)) of the dataset is not produced by the query',
    ]
    assert dataset_manifest.versions(tmp_path) == [1]
    assert list((tmp_path / "_tmp").iterdir()) == []


def test_widening_columns_in_another_order_are_cast_to_the_dataset(tmp_path: pathlib.Path) -> None:
    parquet_dataset.write(tmp_path, SCHEMA, [batch(0, 2)], run="r1", attempt=1, create_if_missing=True)
    narrow = arrow_schema.schema([("label", "string"), ("amount", "decimal128(6,1)"), ("id", "int32")])
    produced = pyarrow.record_batch({"label": ["x"], "amount": pyarrow.array(["7.5"]).cast(pyarrow.decimal128(6, 1)),
                                     "id": pyarrow.array([9], pyarrow.int32())}, schema=narrow)
    parquet_dataset.write(tmp_path, narrow, [produced], run="r2", attempt=1)
    table = parquet_dataset.read_table(tmp_path)
    assert table.schema == SCHEMA
    assert table.slice(2).to_pylist() == [{"id": 9, "amount": pyarrow.scalar("7.50").cast(
        pyarrow.decimal128(12, 2)).as_py(), "label": "x"}]
    for f in parquet_dataset.manifest(tmp_path).files:
        assert pyarrow.parquet.read_schema(tmp_path / f.path).remove_metadata() == SCHEMA


def test_check_destination_is_the_preflight(tmp_path: pathlib.Path) -> None:
    produced = arrow_schema.columns(SCHEMA)
    assert dataset_manifest.check_destination(tmp_path, produced, create_if_missing=True) is None
    with pytest.raises(errors.JobledgerError) as caught:
        dataset_manifest.check_destination(tmp_path, produced, create_if_missing=False)
    assert caught.value.category == "destination_missing"
    parquet_dataset.write(tmp_path, SCHEMA, [batch(0, 1)], run="r1", attempt=1, create_if_missing=True)
    assert dataset_manifest.check_destination(tmp_path, produced, create_if_missing=False).version == 1
    with pytest.raises(errors.JobledgerError) as caught:
        dataset_manifest.check_destination(tmp_path, produced[:2], create_if_missing=False)
    assert caught.value.category == "schema_mismatch"


# --- exactly once ---------------------------------------------------------------------


def never_read() -> Iterator[pyarrow.RecordBatch]:
    raise AssertionError("a retry of a committed run read its query again")
    yield  # pragma: no cover


def committed_by(root: pathlib.Path, run: str, attempt: int) -> dataset_manifest.Manifest | None:
    """The version attempt ``attempt`` of ``run`` published, or None."""
    return next((m for m in dataset_manifest.history(root) if m.run == run and m.attempt == attempt), None)


def test_retry_after_a_crash_between_publish_and_ledger_update_writes_nothing(tmp_path: pathlib.Path) -> None:
    parquet_dataset.write(tmp_path, SCHEMA, [batch(0, 2)], run="before", attempt=1, create_if_missing=True)
    first = parquet_dataset.write(tmp_path, SCHEMA, [batch(10, 3)], run="r", attempt=1)
    # ... the runner dies here: the ledger still says attempt 1 is running.
    files, versions = data_files(tmp_path), dataset_manifest.versions(tmp_path)
    retry = parquet_dataset.write(tmp_path, SCHEMA, never_read(), run="r", attempt=2)
    assert retry.already_committed
    assert (retry.snapshot_id, retry.rows_written) == (first.snapshot_id, 3)
    assert data_files(tmp_path) == files and dataset_manifest.versions(tmp_path) == versions
    assert ids(parquet_dataset.read_table(tmp_path)) == [0, 1, 10, 11, 12]
    assert committed_by(tmp_path, "r", 1) == first.manifest
    assert committed_by(tmp_path, "r", 2) is None
    assert dataset_manifest.find_commit(tmp_path, "r") == first.manifest
    assert dataset_manifest.find_commit(tmp_path, "nobody") is None


def test_a_retry_that_wrote_anyway_finds_the_commit_and_discards_its_files(tmp_path: pathlib.Path) -> None:
    parquet_dataset.write(tmp_path, SCHEMA, [batch(0, 2)], run="r", attempt=1, create_if_missing=True)
    with parquet_dataset.Writer(tmp_path, SCHEMA, run="r", attempt=2) as writer:
        writer.write_batch(batch(50, 5))
        commit = writer.commit()
    assert commit.already_committed and commit.snapshot_id == 1
    assert dataset_manifest.versions(tmp_path) == [1]
    assert data_files(tmp_path) == ["part-r-1-1.parquet"]
    assert list((tmp_path / "_tmp").iterdir()) == []


def test_a_failed_write_leaves_nothing(tmp_path: pathlib.Path) -> None:
    parquet_dataset.write(tmp_path, SCHEMA, [batch(0, 2)], run="r0", attempt=1, create_if_missing=True)

    def failing() -> Iterator[pyarrow.RecordBatch]:
        yield batch(10, 100)
        raise RuntimeError("the query failed")

    with pytest.raises(RuntimeError):
        parquet_dataset.write(tmp_path, SCHEMA, failing(), run="r1", attempt=1, max_file_bytes=1)
    assert dataset_manifest.versions(tmp_path) == [1]
    assert data_files(tmp_path) == ["part-r0-1-1.parquet"]
    assert list((tmp_path / "_tmp").iterdir()) == []


def test_a_hard_crash_before_publishing_is_invisible_and_retried_cleanly(tmp_path: pathlib.Path) -> None:
    parquet_dataset.write(tmp_path, SCHEMA, [batch(0, 2)], run="r0", attempt=1, create_if_missing=True)
    # Attempt 1 placed its files and died before its manifest (no abort ran).
    crashed = parquet_dataset.Writer(tmp_path, SCHEMA, run="r1", attempt=1)
    crashed.write_batch(batch(10, 3))
    crashed._close_file()
    crashed._place_files()
    assert "part-r1-1-1.parquet" in data_files(tmp_path)
    assert ids(parquet_dataset.read_table(tmp_path)) == [0, 1]
    assert dataset_manifest.find_commit(tmp_path, "r1") is None
    retry = parquet_dataset.write(tmp_path, SCHEMA, [batch(20, 1)], run="r1", attempt=2)
    assert not retry.already_committed
    assert ids(parquet_dataset.read_table(tmp_path)) == [0, 1, 20]
    # The same attempt writing again replaces its own unpublished file.
    crashed = parquet_dataset.Writer(tmp_path, SCHEMA, run="r7", attempt=1)
    crashed.write_batch(batch(70, 5))
    crashed._close_file()
    crashed._place_files()
    again = parquet_dataset.write(tmp_path, SCHEMA, [batch(30, 1)], run="r7", attempt=1)
    assert (again.snapshot_id, [f.path for f in again.manifest.files][-1]) == (3, "part-r7-1-1.parquet")
    assert ids(parquet_dataset.read_table(tmp_path)) == [0, 1, 20, 30]


def test_publish_is_create_exclusive(tmp_path: pathlib.Path) -> None:
    commit = parquet_dataset.write(tmp_path, SCHEMA, [batch(0, 1)], run="r1", attempt=1, create_if_missing=True)
    impostor = dataset_manifest.Manifest(**{**commit.manifest.__dict__, "run": "other"})
    assert dataset_manifest.publish(tmp_path, impostor) is False
    assert dataset_manifest.read(tmp_path, 1) == commit.manifest
    assert list((tmp_path / "_tmp").iterdir()) == []


# --- concurrent committers -------------------------------------------------------------


def test_two_committers_racing_for_one_version_both_land(tmp_path: pathlib.Path, monkeypatch: Any) -> None:
    parquet_dataset.write(tmp_path, SCHEMA, [batch(0, 1)], run="r0", attempt=1, create_if_missing=True)
    real_publish = dataset_manifest.publish
    both_ready = threading.Barrier(2, timeout=30)
    wanted: list[int] = []

    def racing_publish(root: Any, manifest: dataset_manifest.Manifest) -> bool:
        if threading.current_thread().name.startswith("racer") and not getattr(
                threading.current_thread(), "raced", False):
            threading.current_thread().raced = True  # type: ignore[attr-defined]
            wanted.append(manifest.version)
            both_ready.wait()  # both computed the same next version before either links it
        return real_publish(root, manifest)

    monkeypatch.setattr(dataset_manifest, "publish", racing_publish)
    commits: dict[str, parquet_dataset.Commit] = {}
    failures: list[BaseException] = []

    def racer(run: str, start: int) -> None:
        try:
            commits[run] = parquet_dataset.write(tmp_path, SCHEMA, [batch(start, 2)], run=run, attempt=1)
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=racer, args=(f"r{n}", n * 10), name=f"racer-{n}") for n in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures
    assert wanted == [2, 2]
    assert sorted(c.snapshot_id for c in commits.values()) == [2, 3]
    loser = max(commits.values(), key=lambda c: c.snapshot_id)
    assert loser.manifest.parent == 2
    assert sorted(ids(parquet_dataset.read_table(tmp_path))) == [0, 10, 11, 20, 21]


WORKER = """
import sys
import pyarrow
from jobledger.lake import arrow_schema, parquet_dataset
root, worker = sys.argv[1], int(sys.argv[2])
schema = arrow_schema.schema([("id", "int64")])
for n in range(5):
    i = worker * 100 + n
    parquet_dataset.write(root, schema, [pyarrow.record_batch({"id": [i]}, schema=schema)],
                          run=f"w{i}", attempt=1, create_if_missing=True)
"""


def test_concurrent_processes_lose_no_commit(tmp_path: pathlib.Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(PYTHON_DIR)}
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path), str(w)], env=env,
                                stderr=subprocess.PIPE, text=True) for w in range(4)]
    for w in workers:
        _, err = w.communicate(timeout=120)
        assert w.returncode == 0, err
    assert dataset_manifest.versions(tmp_path) == list(range(1, 21))
    assert sorted(ids(parquet_dataset.read_table(tmp_path))) == sorted(w * 100 + n for w in range(4) for n in range(5))
    # Each version extends its parent by exactly one commit.
    for version in range(2, 21):
        m = dataset_manifest.read(tmp_path, version)
        assert m.parent == version - 1 and m.rows == version


# --- retention ------------------------------------------------------------------------


def test_retention_keeps_what_current_and_recent_versions_need(tmp_path: pathlib.Path) -> None:
    parquet_dataset.write(tmp_path, SCHEMA, [batch(0, 1)], run="r1", attempt=1, create_if_missing=True)
    parquet_dataset.write(tmp_path, SCHEMA, [batch(1, 1)], run="r2", attempt=1)
    parquet_dataset.write(tmp_path, SCHEMA, [batch(2, 1)], run="r3", attempt=1, mode="overwrite")
    parquet_dataset.write(tmp_path, SCHEMA, [batch(3, 1)], run="r4", attempt=1)
    hour = datetime.timedelta(hours=1)
    # Everything is younger than an hour: nothing goes.
    assert parquet_dataset.remove_unreferenced(tmp_path, hour) == parquet_dataset.Removed((), ())
    assert len(data_files(tmp_path)) == 4
    # An hour later, only the current version (4) is kept, with both files it reads.
    later = datetime.datetime.now(datetime.timezone.utc) + 2 * hour
    for f in tmp_path.glob("*.parquet"):
        os.utime(f, (later.timestamp() - 3 * 3600,) * 2)
    removed = parquet_dataset.remove_unreferenced(tmp_path, hour, now=later)
    assert removed == parquet_dataset.Removed((1, 2, 3), ("part-r1-1-1.parquet", "part-r2-1-1.parquet"))
    assert data_files(tmp_path) == ["part-r3-1-1.parquet", "part-r4-1-1.parquet"]
    assert dataset_manifest.versions(tmp_path) == [4]
    assert ids(parquet_dataset.read_table(tmp_path)) == [2, 3]
    with pytest.raises(errors.JobledgerError) as caught:
        parquet_dataset.read_table(tmp_path, 2)
    assert caught.value.category == "invalid_argument"
    # The next commit still gets the next version.
    assert parquet_dataset.write(tmp_path, SCHEMA, [batch(4, 1)], run="r5", attempt=1).snapshot_id == 5


def test_retention_keeps_the_current_version_whatever_its_age(tmp_path: pathlib.Path) -> None:
    parquet_dataset.write(tmp_path, SCHEMA, [batch(0, 1)], run="r1", attempt=1, create_if_missing=True)
    for f in tmp_path.glob("*.parquet"):
        os.utime(f, (0, 0))
    removed = parquet_dataset.remove_unreferenced(tmp_path, datetime.timedelta(0),
                                                  now=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=9))
    assert removed == parquet_dataset.Removed((), ())
    assert ids(parquet_dataset.read_table(tmp_path)) == [0]


def test_retention_removes_old_leftovers_of_crashes_but_not_writes_in_progress(tmp_path: pathlib.Path) -> None:
    parquet_dataset.write(tmp_path, SCHEMA, [batch(0, 1)], run="r1", attempt=1, create_if_missing=True)
    old_orphan = tmp_path / "part-dead-1-1.parquet"
    old_temp = tmp_path / "_tmp" / f"part-dead-1-2.parquet.{'a' * 32}.tmp"
    for path in (old_orphan, old_temp):
        path.write_bytes(b"left by a crash")
        os.utime(path, (1, 1))
    in_progress = parquet_dataset.Writer(tmp_path, SCHEMA, run="r2", attempt=1)
    in_progress.write_batch(batch(5, 1))
    removed = parquet_dataset.remove_unreferenced(tmp_path, datetime.timedelta(minutes=5))
    assert removed.files == (f"_tmp/part-dead-1-2.parquet.{'a' * 32}.tmp", "part-dead-1-1.parquet")
    commit = in_progress.commit()
    assert ids(parquet_dataset.read_table(tmp_path, commit.snapshot_id)) == [0, 5]


# --- ownership: the marker, adoption, foreign files ------------------------------------------

LONG_AGO = (1, 1)  # atime, mtime: 1970


def snapshot(root: pathlib.Path) -> dict[str, bytes | str]:
    """Every entry under ``root``: file contents, link targets, directories."""
    found: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if path.is_symlink():
            found[relative] = "-> " + os.readlink(path)
        elif path.is_dir():
            found[relative] = "dir"
        else:
            found[relative] = path.read_bytes()
    return found


def far_future() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=3650)


def foreign_directory(root: pathlib.Path) -> dict[str, bytes | str]:
    root.mkdir()
    (root / "notes.txt").write_bytes(b"someone else's notes\n")
    (root / "part-theirs-1-1.parquet").write_bytes(b"looks like ours, is not")
    (root / "sub").mkdir()
    (root / "sub" / "data.parquet").write_bytes(b"PAR1 theirs")
    for path in root.rglob("*"):
        os.utime(path, LONG_AGO)
    return snapshot(root)


def test_a_directory_holding_someone_elses_files_is_refused_and_left_alone(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "theirs"
    before = foreign_directory(root)
    produced = arrow_schema.columns(SCHEMA)
    for create_if_missing in (True, False):
        # The preflight (server side, pure Python) and the writer refuse alike, before a row is read.
        with pytest.raises(errors.JobledgerError) as caught:
            dataset_manifest.check_destination(root, produced, create_if_missing=create_if_missing)
        assert caught.value.category == "destination_missing"
        assert "not empty" in caught.value.message and "notes.txt" not in caught.value.message
        with pytest.raises(errors.JobledgerError) as caught:
            parquet_dataset.write(root, SCHEMA, never_read(), run="r1", attempt=1,
                                  create_if_missing=create_if_missing)
        assert caught.value.category == "destination_missing"
    # Retention finds no dataset there and removes nothing, however old.
    assert parquet_dataset.remove_unreferenced(root, datetime.timedelta(0), now=far_future()) == \
        parquet_dataset.Removed((), ())
    assert snapshot(root) == before  # no marker, no _tmp, every file byte-identical


def test_a_file_named_like_the_marker_is_no_marker(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "ds"
    root.mkdir()
    (root / dataset_manifest.MARKER).write_text('{"format": "something else"}')
    (root / "keep.csv").write_text("a,b\n")
    before = snapshot(root)
    with pytest.raises(errors.JobledgerError) as caught:
        parquet_dataset.write(root, SCHEMA, never_read(), run="r1", attempt=1, create_if_missing=True)
    assert caught.value.category == "destination_missing"
    (root / "keep.csv").unlink()  # only the false marker is left: not empty, not adopted
    with pytest.raises(errors.JobledgerError) as caught:
        parquet_dataset.write(root, SCHEMA, never_read(), run="r1", attempt=1, create_if_missing=True)
    assert caught.value.category == "destination_missing"
    assert snapshot(root) == {dataset_manifest.MARKER: before[dataset_manifest.MARKER]}
    # A symbolic link by that name is no marker either.
    (root / dataset_manifest.MARKER).unlink()
    (root / dataset_manifest.MARKER).symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(errors.JobledgerError) as caught:
        dataset_manifest.check_destination(root, arrow_schema.columns(SCHEMA), create_if_missing=True)
    assert caught.value.category == "destination_missing"
    # A file where the directory should be.
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(errors.JobledgerError) as caught:
        parquet_dataset.write(tmp_path / "a_file", SCHEMA, never_read(), run="r1", attempt=1,
                              create_if_missing=True)
    assert caught.value.category == "destination_missing"
    assert (tmp_path / "a_file").read_text() == "x"


def test_an_empty_or_new_directory_is_adopted_with_a_marker(tmp_path: pathlib.Path) -> None:
    for root in (tmp_path / "empty", tmp_path / "new" / "nested"):
        if root.name == "empty":
            root.mkdir()
        parquet_dataset.write(root, SCHEMA, [batch(0, 2)], run="r1", attempt=1, create_if_missing=True)
        marker = json.loads((root / dataset_manifest.MARKER).read_text())
        assert (marker["format"], marker["format_version"]) == ("jobledger-parquet-dataset-directory", 1)
        assert datetime.datetime.fromisoformat(marker["created_at"]).tzinfo is not None
        assert sorted(p.name for p in root.iterdir()) == [
            "_jobledger_dataset.json", "_manifests", "_tmp", "part-r1-1-1.parquet"]
        assert dataset_manifest.is_marked(root)
        assert ids(parquet_dataset.read_table(root)) == [0, 1]


def test_a_marked_directory_is_written_whatever_else_it_holds(tmp_path: pathlib.Path) -> None:
    # Marked, no version yet (e.g. the first run failed after opening): still ours.
    with pytest.raises(RuntimeError):
        with parquet_dataset.Writer(tmp_path, SCHEMA, run="r0", attempt=1, create_if_missing=True):
            raise RuntimeError("the query failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == [dataset_manifest.MARKER]
    (tmp_path / "README.txt").write_text("someone's note")
    commit = parquet_dataset.write(tmp_path, SCHEMA, [batch(0, 1)], run="r1", attempt=1, create_if_missing=True)
    assert commit.snapshot_id == 1
    assert (tmp_path / "README.txt").read_text() == "someone's note"


def test_a_dataset_written_before_the_marker_is_still_written_and_gets_the_marker(tmp_path: pathlib.Path) -> None:
    parquet_dataset.write(tmp_path, SCHEMA, [batch(0, 1)], run="r1", attempt=1, create_if_missing=True)
    (tmp_path / dataset_manifest.MARKER).unlink()  # as 0.4.0 left it
    produced = arrow_schema.columns(SCHEMA)
    assert dataset_manifest.check_destination(tmp_path, produced, create_if_missing=False).version == 1
    parquet_dataset.write(tmp_path, SCHEMA, [batch(1, 1)], run="r2", attempt=1)
    assert dataset_manifest.is_marked(tmp_path)
    assert ids(parquet_dataset.read_table(tmp_path)) == [0, 1]


def test_foreign_files_put_into_a_dataset_survive_retention(tmp_path: pathlib.Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.parquet").write_bytes(b"not jobledger's")
    (outside / f"part-x-1-1.parquet.{'b' * 32}.tmp").write_bytes(b"behind a link")
    root = tmp_path / "ds"
    parquet_dataset.write(root, SCHEMA, [batch(0, 1)], run="r1", attempt=1, create_if_missing=True)
    # Someone else's files, under every kind of name, in every place of the dataset.
    (root / "notes.txt").write_bytes(b"notes \x00\xff")
    (root / "other.parquet").write_bytes(b"PAR1 other")
    (root / "part-x.parquet").write_bytes(b"almost our name")
    (root / "part-x-1-1.parquet.bak").write_bytes(b"a backup")
    (root / "_tmp" / "scratch.tmp").write_bytes(b"their temporary")
    (root / "_manifests" / "notes.json").write_bytes(b"{}")
    (root / "archive").mkdir()
    (root / "archive" / "part-y-1-1.parquet").write_bytes(b"our name, their directory")
    (root / "part-link-1-1.parquet").symlink_to(outside / "precious.parquet")
    # jobledger's own leftovers of crashed writes, old and unreferenced.
    (root / "part-dead-1-1.parquet").write_bytes(b"left by a crash")
    (root / "_tmp" / f"part-dead-1-2.parquet.{'c' * 32}.tmp").write_bytes(b"left by a crash")
    (root / "_tmp" / f"manifest-7-{'d' * 32}.json").write_bytes(b"left by a crash")
    (root / f"{dataset_manifest.MARKER}.{'e' * 32}.tmp").write_bytes(b"left by a crash")
    parquet_dataset.write(root, SCHEMA, [batch(5, 1)], run="r2", attempt=1, mode="overwrite")
    for path in root.rglob("*"):
        os.utime(path, LONG_AGO, follow_symlinks=False)
    foreign_names = ["notes.txt", "other.parquet", "part-x.parquet", "part-x-1-1.parquet.bak", "_tmp/scratch.tmp",
                     "_manifests/notes.json", "archive", "archive/part-y-1-1.parquet", "part-link-1-1.parquet"]
    foreign = {name: content for name, content in snapshot(root).items() if name in foreign_names}
    assert len(foreign) == len(foreign_names)
    outside_before = snapshot(outside)

    removed = parquet_dataset.remove_unreferenced(root, datetime.timedelta(hours=1), now=far_future())
    # jobledger's own unreferenced files are cleaned ...
    assert removed == parquet_dataset.Removed((1,), (
        f"_jobledger_dataset.json.{'e' * 32}.tmp",
        f"_tmp/manifest-7-{'d' * 32}.json",
        f"_tmp/part-dead-1-2.parquet.{'c' * 32}.tmp",
        "part-dead-1-1.parquet",
        "part-r1-1-1.parquet",
    ))
    assert ids(parquet_dataset.read_table(root)) == [5]
    # ... and everything else is still there, byte-identical.
    after = snapshot(root)
    assert {name: after.get(name) for name in foreign} == foreign
    assert sorted(set(after) - set(foreign)) == [
        "_jobledger_dataset.json", "_manifests", "_manifests/v2.json", "_tmp", "part-r2-1-1.parquet"]
    assert snapshot(outside) == outside_before


def test_retention_follows_no_link_out_of_the_dataset(tmp_path: pathlib.Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    leftover = outside / f"part-x-1-1.parquet.{'b' * 32}.tmp"
    leftover.write_bytes(b"named like ours, somewhere else")
    os.utime(leftover, LONG_AGO)
    root = tmp_path / "ds"
    parquet_dataset.write(root, SCHEMA, [batch(0, 1)], run="r1", attempt=1, create_if_missing=True)
    (root / "_tmp").rmdir()
    (root / "_tmp").symlink_to(outside)
    removed = parquet_dataset.remove_unreferenced(root, datetime.timedelta(0), now=far_future())
    assert removed == parquet_dataset.Removed((), ())
    assert leftover.read_bytes() == b"named like ours, somewhere else"


def test_a_run_id_that_is_no_file_name_is_refused(tmp_path: pathlib.Path) -> None:
    for run in ("../escape", "a/b", "r.1", ""):
        with pytest.raises(errors.JobledgerError) as caught:
            parquet_dataset.Writer(tmp_path / "ds", SCHEMA, run=run, attempt=1, create_if_missing=True)
        assert caught.value.category == "invalid_argument"
    assert list(tmp_path.iterdir()) == []
