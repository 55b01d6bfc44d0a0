"""A Parquet dataset in a directory: atomic commits, versions, exactly-once retries, retention.

A run writes its batches into Parquet files under ``_tmp/`` (one
``ParquetWriter`` at a time, rolled at ``max_file_bytes``, so memory is one
batch whatever the size of the result), moves them to their final names
``part-<run>-<attempt>-<n>.parquet`` (not yet read by anyone: readers read
only what a manifest lists) and publishes a new version (``dataset_manifest``)
in one create-exclusive step.  ``snapshot_id`` is that version's number.

* ``append``: the new version lists the previous version's files and the new ones.
* ``overwrite``: the new version lists only the new files.  Old files stay on
  disk for readers of earlier versions until ``remove_unreferenced`` (the
  retention setting) removes them.
* Two committers racing for version N: one wins the link; the other re-reads
  the newest version, re-checks the schema and that its run has not been
  committed meanwhile, and publishes N+1 (up to ``MAX_PUBLISH_TRIES``, then
  ``dataset_conflict``).  Append is commutative and overwrite is last-wins, so
  the result is that of the two commits in publication order.
* Exactly once: each version records the run and attempt that committed it.
  A retry calls ``find_commit(run)`` before running the query; ``commit``
  checks again right before publishing and, if the run is already committed,
  discards its files and returns the existing version (``already_committed``).
  This covers a crash between publishing and the ledger update.  It cannot
  stop a zombie attempt that still runs concurrently with its retry: the
  runner must check its claim (the ledger's fence) right before ``commit``.
* Ownership (``dataset_manifest``): a Writer opens only a directory that is
  jobledger's (its marker, or new, or empty, or a dataset of 0.4.0) and
  writes the marker before anything else; others are refused
  (``destination_missing``) before a row is read.  Retention removes only
  files under jobledger's own names.
* The dataset's schema is fixed by its first version: later commits, in both
  modes, must produce the same columns with the same or losslessly widening
  types (``arrow_types.schema_problems``); batches are cast to the dataset's
  types.  To change a schema, write a new dataset.
* Parquet has no month-day-nano interval: such columns (``interval``) are
  written, and listed in the manifest, as
  ``struct<months: int32, days: int32, nanoseconds: int64>``
  (``arrow_types.parquet_description``).
"""

from __future__ import annotations

import collections.abc
import dataclasses
import datetime
import os
import pathlib
import stat
import uuid
from typing import Any, Callable

import pyarrow
import pyarrow.dataset
import pyarrow.parquet

from jobledger.core import dataset_manifest, errors
from jobledger.lake import arrow_schema

DEFAULT_MAX_FILE_BYTES = 256 * 2**20
MAX_PUBLISH_TRIES = 100

Progress = Callable[[int], None]


@dataclasses.dataclass(frozen=True)
class Commit:
    """The outcome of a run's write: the version that holds its rows.

    ``already_committed`` is true when an earlier attempt of the run had
    published it and this one wrote nothing.
    """

    manifest: dataset_manifest.Manifest
    already_committed: bool = False

    @property
    def snapshot_id(self) -> int:
        return self.manifest.version

    @property
    def rows_written(self) -> int:
        return self.manifest.added_rows


@dataclasses.dataclass(frozen=True)
class Removed:
    """What ``remove_unreferenced`` deleted (paths relative to the dataset)."""

    versions: tuple[int, ...]
    files: tuple[str, ...]


class Writer:
    """One run's write into a dataset: ``write_batch`` any number of times, then ``commit``.

    Used as a context manager, an exception before ``commit`` removes what was
    written.  The destination is checked on opening (``destination_missing``,
    ``schema_mismatch``), before any row is read, and again at commit.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        schema: pyarrow.Schema,
        *,
        run: str,
        attempt: int,
        mode: str = "append",
        create_if_missing: bool = False,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        progress: Progress | None = None,
    ) -> None:
        if mode not in dataset_manifest.MODES:
            raise errors.JobledgerError(
                "invalid_argument", f"mode must be one of {', '.join(dataset_manifest.MODES)}, not {mode!r}")
        if max_file_bytes < 1:
            raise errors.JobledgerError("invalid_argument", "max_file_bytes must be positive")
        self.root = pathlib.Path(root)
        self.run = str(run)
        dataset_manifest.data_file_name(self.run, attempt, 1)  # a run id that makes a file name
        self.attempt = attempt
        self.mode = mode
        self.create_if_missing = create_if_missing
        self.max_file_bytes = max_file_bytes
        self.progress = progress
        schema = arrow_schema.parquet_schema(schema)  # intervals as structs: Parquet has no month_day_nano
        self.produced = arrow_schema.columns(schema)
        latest = dataset_manifest.check_destination(
            self.root, self.produced, create_if_missing=create_if_missing, what=f"run {self.run}")
        dataset_manifest.mark(self.root)  # created or adopted (checked above): ours from now on
        # Batches are written in the dataset's column order and types.
        self.schema = schema if latest is None else arrow_schema.schema(latest.schema)
        self.rows_written = 0
        self._files: list[tuple[pathlib.Path, str, int]] = []  # (temporary, final name, rows)
        self._writer: pyarrow.parquet.ParquetWriter | None = None
        self._current: pathlib.Path | None = None
        self._current_rows = 0
        self._closed = False

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, kind: Any, value: Any, traceback: Any) -> None:
        if not self._closed:
            self.abort()

    def write_batch(self, batch: pyarrow.RecordBatch) -> None:
        """Append a batch to the current file, rolling to a new file at ``max_file_bytes``."""
        if self._closed:
            raise errors.JobledgerError("invalid_argument", "this write is already committed or aborted")
        if batch.num_rows == 0:
            return
        batch = arrow_schema.parquet_batch(batch)
        if batch.schema != self.schema:
            batch = batch.select(self.schema.names).cast(self.schema)
        if self._writer is None:
            self._open_file()
        assert self._writer is not None and self._current is not None
        self._writer.write_batch(batch)
        self._current_rows += batch.num_rows
        self.rows_written += batch.num_rows
        if self.progress is not None:
            self.progress(self.rows_written)
        if self._current.stat().st_size >= self.max_file_bytes:
            self._close_file()

    def write(self, batches: collections.abc.Iterable[pyarrow.RecordBatch]) -> None:
        for batch in batches:
            self.write_batch(batch)

    def commit(self) -> Commit:
        """Publish a new version with this run's files; see the module's notes on races and retries."""
        if self._closed:
            raise errors.JobledgerError("invalid_argument", "this write is already committed or aborted")
        self._close_file()
        placed = False
        for _ in range(MAX_PUBLISH_TRIES):
            earlier = dataset_manifest.find_commit(self.root, self.run)
            if earlier is not None:
                self.abort()
                return Commit(earlier, already_committed=True)
            latest = dataset_manifest.check_destination(
                self.root, self.produced, create_if_missing=self.create_if_missing, what=f"run {self.run}")
            if latest is not None and arrow_schema.schema(latest.schema) != self.schema:
                # A racing first commit created the dataset with other types.
                raise errors.JobledgerError(
                    "schema_mismatch", f"the dataset {self.root} was created meanwhile with another schema")
            if not placed:
                added = self._place_files()
                placed = True
            kept = latest.files if latest is not None and self.mode == "append" else ()
            manifest = dataset_manifest.Manifest(
                version=(latest.version + 1) if latest is not None else 1,
                operation=self.mode,
                schema=tuple(arrow_schema.columns(self.schema)),
                files=tuple(kept) + added,
                added=tuple(f.path for f in added),
                run=self.run,
                attempt=self.attempt,
                created_at=dataset_manifest.now(),
                parent=latest.version if latest is not None else None,
            )
            if dataset_manifest.publish(self.root, manifest):
                self._closed = True
                return Commit(manifest)
        raise errors.JobledgerError(
            "dataset_conflict",
            f"could not publish a version of {self.root}: {MAX_PUBLISH_TRIES} concurrent commits won first",
        )

    def abort(self) -> None:
        """Remove every file this write made; no version refers to them."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._current is not None:
            self._files.append((self._current, "", 0))
            self._current = None
        for temporary, final, _ in self._files:
            for path in (temporary, self.root / final if final else None):
                if path is not None:
                    path.unlink(missing_ok=True)
        self._files.clear()
        self._closed = True

    # --- files ---------------------------------------------------------------

    def _open_file(self) -> None:
        number = len(self._files) + 1
        final = dataset_manifest.data_file_name(self.run, self.attempt, number)
        (self.root / dataset_manifest.TMP).mkdir(parents=True, exist_ok=True)
        self._current = self.root / dataset_manifest.TMP / f"{final}.{uuid.uuid4().hex}.tmp"
        self._current_rows = 0
        self._writer = pyarrow.parquet.ParquetWriter(self._current, self.schema)

    def _close_file(self) -> None:
        if self._writer is None or self._current is None:
            return
        self._writer.close()
        with open(self._current, "rb") as written:
            os.fsync(written.fileno())
        name = self._current.name.split(".parquet.")[0] + ".parquet"
        self._files.append((self._current, name, self._current_rows))
        self._writer, self._current = None, None

    def _place_files(self) -> tuple[dataset_manifest.DataFile, ...]:
        """Move the written files to their final names (still unread: no manifest lists them).

        The names are this run's and attempt's; one left by an earlier
        unpublished try of the same attempt is replaced.  mtime is reset so
        that retention counts a file's age from here.
        """
        placed = []
        for temporary, final, rows in self._files:
            target = self.root / final
            try:
                os.link(temporary, target)
            except FileExistsError:
                if any(final == f.path for m in dataset_manifest.history(self.root) for f in m.files):
                    raise errors.JobledgerError(
                        "dataset_conflict",
                        f"{final} of {self.root} is already part of a version: "
                        f"attempt {self.attempt} of run {self.run} was committed twice",
                    ) from None
                os.replace(temporary, target)
            else:
                temporary.unlink()
            os.utime(target)
            placed.append(dataset_manifest.DataFile(final, rows, target.stat().st_size))
        dataset_manifest.fsync_directory(self.root)
        self._files = [(self.root / f.path, f.path, f.rows) for f in placed]
        return tuple(placed)


def write(
    root: str | os.PathLike[str],
    schema: pyarrow.Schema,
    batches: collections.abc.Iterable[pyarrow.RecordBatch],
    *,
    run: str,
    attempt: int,
    mode: str = "append",
    create_if_missing: bool = False,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    progress: Progress | None = None,
) -> Commit:
    """Write ``batches`` as one commit of ``run``; an earlier commit of the run is returned
    without reading a batch."""
    earlier = dataset_manifest.find_commit(root, str(run))
    if earlier is not None:
        return Commit(earlier, already_committed=True)
    with Writer(root, schema, run=run, attempt=attempt, mode=mode, create_if_missing=create_if_missing,
                max_file_bytes=max_file_bytes, progress=progress) as writer:
        writer.write(batches)
        return writer.commit()


# --- reading -------------------------------------------------------------------


def manifest(root: str | os.PathLike[str], version: int | None = None) -> dataset_manifest.Manifest:
    """Version ``version`` (default: the current one); ``destination_missing`` if there is none."""
    found = dataset_manifest.current(root) if version is None else _read_version(root, version)
    if found is None:
        raise errors.JobledgerError("destination_missing", f"the dataset {os.fspath(root)} does not exist")
    return found


def _read_version(root: str | os.PathLike[str], version: int) -> dataset_manifest.Manifest | None:
    try:
        return dataset_manifest.read(root, version)
    except FileNotFoundError:
        raise errors.JobledgerError(
            "invalid_argument", f"the dataset {os.fspath(root)} has no version {version} (any more)") from None


def to_dataset(root: str | os.PathLike[str], version: int | None = None) -> pyarrow.dataset.Dataset:
    """A pyarrow dataset of one version's files (default: the current version)."""
    found = manifest(root, version)
    base = pathlib.Path(root)
    return pyarrow.dataset.dataset([str(base / f.path) for f in found.files],
                                   schema=arrow_schema.schema(found.schema), format="parquet")


def read_table(root: str | os.PathLike[str], version: int | None = None) -> pyarrow.Table:
    """One version of the dataset as a table, rows in the order they were committed."""
    return to_dataset(root, version).to_table()


# --- retention -------------------------------------------------------------------


def remove_unreferenced(
    root: str | os.PathLike[str],
    older_than: datetime.timedelta,
    *,
    now: datetime.datetime | None = None,
) -> Removed:
    """Delete versions older than the cutoff (never the current one) and jobledger's own files
    that no kept version lists.

    The cutoff is ``now - older_than``.  Kept: the current version and every
    version created after the cutoff, with every file they list.  Removed:
    the other manifests, then the regular files under jobledger's own names
    (``dataset_manifest.is_own_leftover``: data files ``part-<run>-<attempt>-<n>.parquet``
    in the dataset's directory, temporaries in ``_tmp/`` and of the marker)
    that no kept version lists and that were last modified before the cutoff
    (a write in progress or awaiting its commit is younger than that, as long
    as ``older_than`` exceeds the longest write).  Nothing else is ever
    removed: no file under another name (someone else's, put beside the
    dataset), no directory, nothing behind a symbolic link.  If a manifest
    cannot be read, what it lists is unknown and nothing is removed.

    Readers of a removed version lose it; that is the retention setting's
    promise, keep it longer than any read.
    """
    base = pathlib.Path(root)
    cutoff = (now or datetime.datetime.now(datetime.timezone.utc)) - older_than
    all_versions = dataset_manifest.versions(base)
    if not all_versions or not _real_directory(base / dataset_manifest.MANIFESTS):
        return Removed((), ())
    newest = all_versions[-1]
    kept_files: set[str] = set()
    dropped: list[int] = []
    for version in all_versions:
        try:
            found = dataset_manifest.read(base, version)
        except FileNotFoundError:
            continue
        except (ValueError, KeyError, TypeError):
            return Removed((), ())
        if version == newest or datetime.datetime.fromisoformat(found.created_at) >= cutoff:
            kept_files.update(f.path for f in found.files)
        else:
            dropped.append(version)
    for version in dropped:
        dataset_manifest.manifest_path(base, version).unlink(missing_ok=True)
    removed: list[str] = []
    for directory in ("", dataset_manifest.TMP):
        folder = base / directory
        if directory and not _real_directory(folder):
            continue
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            continue
        for name in names:
            relative = f"{directory}/{name}" if directory else name
            if relative in kept_files or not dataset_manifest.is_own_leftover(relative):
                continue
            try:
                info = os.lstat(folder / name)
            except FileNotFoundError:
                continue
            modified = datetime.datetime.fromtimestamp(info.st_mtime, datetime.timezone.utc)
            if stat.S_ISREG(info.st_mode) and modified < cutoff:
                (folder / name).unlink(missing_ok=True)
                removed.append(relative)
    if dropped or removed:
        dataset_manifest.fsync_directory(base)
    return Removed(tuple(dropped), tuple(sorted(removed)))


def _real_directory(path: pathlib.Path) -> bool:
    """A directory itself, not a symbolic link to one (whose files would be someone else's)."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False
