"""delta_table.find_commit against a real local Delta table: the version of a
run's commit is read from the log's own files, so a commit that lands after
the snapshot was loaded (another runner) cannot shift it."""

from __future__ import annotations

import pathlib

import deltalake
import pyarrow
import pytest

from jobledger.core import errors
from jobledger.lake import delta_table


def _commit(uri: str, run: str, n: int) -> None:
    properties = deltalake.CommitProperties(
        custom_metadata={delta_table.RUN_KEY: run, delta_table.ATTEMPT_KEY: "1"},
        app_transactions=[deltalake.Transaction(delta_table.app_id(run), 1)])
    deltalake.write_deltalake(uri, pyarrow.table({"n": [n]}), mode="append", commit_properties=properties)


def test_a_commit_after_the_snapshot_does_not_shift_the_version(tmp_path: pathlib.Path) -> None:
    uri = str(tmp_path / "t")
    for version, run in enumerate(("run-a", "run-b")):
        _commit(uri, run, version)
    snapshot = deltalake.DeltaTable(uri)  # version 1
    _commit(uri, "run-c", 2)  # version 2, after the snapshot was loaded
    # What history() says of the snapshot: every number one off.
    assert [(h["version"], h.get(delta_table.RUN_KEY)) for h in snapshot.history()] == [
        (1, "run-c"), (0, "run-b"), (-1, "run-a")]
    found = {run: delta_table.find_commit(uri, run, table=snapshot) for run in ("run-a", "run-b", "run-c")}
    assert {run: (c.version, c.rows_written, c.attempt) if c else None for run, c in found.items()} == {
        "run-a": (0, 1, 1), "run-b": (1, 1, 1), "run-c": None}  # c is not in the snapshot
    assert delta_table.find_commit(uri, "run-c").version == 2
    assert delta_table.find_commit(uri, "run-d") is None


def test_a_commit_whose_log_entry_is_gone(tmp_path: pathlib.Path) -> None:
    uri = str(tmp_path / "t")
    _commit(uri, "run-a", 0)
    _commit(uri, "run-b", 1)
    deltalake.DeltaTable(uri).create_checkpoint()
    (tmp_path / "t" / "_delta_log" / f"{0:020d}.json").unlink()  # as log retention does
    assert delta_table.find_commit(uri, "run-b").version == 1
    with pytest.raises(errors.JobledgerError) as gone:
        delta_table.find_commit(uri, "run-a")
    assert gone.value.category == "runner_error"
