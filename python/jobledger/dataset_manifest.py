"""The versions of a Parquet directory dataset: manifests, published atomically.

Pure Python (json, os): the server-side preflight can read a dataset's schema
without pyarrow, and ``parquet_dataset`` builds its writer and reader on it.

Layout of a dataset directory::

    part-<run>-<attempt>-<n>.parquet     data files, immutable once written
    _manifests/v<N>.json                 version N: its files, schema, rows, who committed it
    _tmp/                                files being written, not yet part of any version

A version is published by creating ``_manifests/v<N>.json`` with ``os.link``
from a fully written and fsynced temporary file: creating a link fails if the
name exists, so of two committers that both want version N exactly one wins,
and a reader sees either no version N or all of it.  The current version is
the highest N; readers read only the files a manifest lists, so files being
written or left behind by a crash are never seen.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import datetime
import json
import os
import pathlib
import re
import uuid

from jobledger import arrow_types, errors

FORMAT = "jobledger-parquet-dataset"
FORMAT_VERSION = 1
MANIFESTS = "_manifests"
TMP = "_tmp"
MODES = ("append", "overwrite")

_MANIFEST_NAME = re.compile(r"v(?P<version>[1-9][0-9]*)\.json")


@dataclasses.dataclass(frozen=True)
class DataFile:
    """One Parquet file of a version, relative to the dataset's directory."""

    path: str
    rows: int
    bytes: int


@dataclasses.dataclass(frozen=True)
class Manifest:
    """One version of a dataset.

    ``files`` is everything a reader of this version reads; ``added`` the
    paths this commit wrote (all of ``files`` after an overwrite);
    ``run``/``attempt`` the run that committed it, so that a retry can find the
    commit (``find_commit``) instead of writing again.
    """

    version: int
    operation: str
    schema: tuple[tuple[str, str], ...]
    files: tuple[DataFile, ...]
    added: tuple[str, ...]
    run: str
    attempt: int
    created_at: str
    parent: int | None

    @property
    def rows(self) -> int:
        """Rows in this version."""
        return sum(f.rows for f in self.files)

    @property
    def added_rows(self) -> int:
        """Rows this commit wrote."""
        added = set(self.added)
        return sum(f.rows for f in self.files if f.path in added)

    def to_json(self) -> str:
        return json.dumps({
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "version": self.version,
            "parent": self.parent,
            "operation": self.operation,
            "run": self.run,
            "attempt": self.attempt,
            "created_at": self.created_at,
            "rows": self.rows,
            "schema": [{"name": name, "type": arrow} for name, arrow in self.schema],
            "files": [dataclasses.asdict(f) for f in self.files],
            "added": list(self.added),
        }, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        if data.get("format") != FORMAT or data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"not a {FORMAT} manifest of format version {FORMAT_VERSION}")
        return cls(
            version=data["version"],
            operation=data["operation"],
            schema=tuple((c["name"], c["type"]) for c in data["schema"]),
            files=tuple(DataFile(**f) for f in data["files"]),
            added=tuple(data["added"]),
            run=data["run"],
            attempt=data["attempt"],
            created_at=data["created_at"],
            parent=data["parent"],
        )


def now() -> str:
    """The current time as a manifest writes it (ISO 8601, UTC)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


def versions(root: str | os.PathLike[str]) -> list[int]:
    """The published versions of the dataset at ``root``, oldest first (empty if none)."""
    try:
        names = os.listdir(pathlib.Path(root) / MANIFESTS)
    except FileNotFoundError:
        return []
    found = (_MANIFEST_NAME.fullmatch(name) for name in names)
    return sorted(int(m["version"]) for m in found if m)


def manifest_path(root: str | os.PathLike[str], version: int) -> pathlib.Path:
    return pathlib.Path(root) / MANIFESTS / f"v{version}.json"


def read(root: str | os.PathLike[str], version: int) -> Manifest:
    """Version ``version``; FileNotFoundError if it was never published or retention removed it."""
    return Manifest.from_json(manifest_path(root, version).read_text(encoding="utf-8"))


def current(root: str | os.PathLike[str]) -> Manifest | None:
    """The newest version, or None when the dataset has none (does not exist)."""
    for version in reversed(versions(root)):
        try:
            return read(root, version)
        except FileNotFoundError:  # removed by retention since the listing
            continue
    return None


def history(root: str | os.PathLike[str]) -> collections.abc.Iterator[Manifest]:
    """Every version still kept, newest first."""
    for version in reversed(versions(root)):
        try:
            yield read(root, version)
        except FileNotFoundError:
            continue


def find_commit(root: str | os.PathLike[str], run: str) -> Manifest | None:
    """The version any attempt of ``run`` published, or None.

    A retry calls this before writing: a crash after publishing and before the
    ledger update must not write the run's rows twice.
    """
    return next((m for m in history(root) if m.run == str(run)), None)


def committed_by(root: str | os.PathLike[str], run: str, attempt: int) -> Manifest | None:
    """The version attempt ``attempt`` of ``run`` published, or None."""
    return next((m for m in history(root) if m.run == str(run) and m.attempt == attempt), None)


def publish(root: str | os.PathLike[str], manifest: Manifest) -> bool:
    """Publish ``manifest`` as its version; False if another committer has that version.

    The manifest is written and fsynced under a temporary name, then linked
    to ``_manifests/v<N>.json`` (create-exclusive, atomic), and the directory
    fsynced, so a published version survives a crash whole.
    """
    base = pathlib.Path(root)
    (base / MANIFESTS).mkdir(parents=True, exist_ok=True)
    (base / TMP).mkdir(exist_ok=True)
    temporary = base / TMP / f"manifest-{manifest.version}-{uuid.uuid4().hex}.json"
    with open(temporary, "w", encoding="utf-8") as out:
        out.write(manifest.to_json())
        out.flush()
        os.fsync(out.fileno())
    try:
        os.link(temporary, manifest_path(root, manifest.version))
    except FileExistsError:
        return False
    finally:
        temporary.unlink()
    fsync_directory(base / MANIFESTS)
    return True


def fsync_directory(path: str | os.PathLike[str]) -> None:
    """Make the names in a directory durable (renames, links, unlinks)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_destination(
    root: str | os.PathLike[str],
    produced: collections.abc.Sequence[tuple[str, str]],
    *,
    create_if_missing: bool,
    what: str = "the query",
) -> Manifest | None:
    """Preflight: may ``produced`` ((name, Arrow description) pairs) be written to the dataset?

    Returns the current version (None for a dataset that will be created).
    ``destination_missing`` when there is none and ``create_if_missing`` is
    false; ``schema_mismatch`` listing every difference otherwise.
    """
    latest = current(root)
    if latest is None:
        if not create_if_missing:
            raise errors.JobledgerError(
                "destination_missing",
                f"the dataset {os.fspath(root)} does not exist",
                hint="Create it with create_if_missing, or check the path.",
            )
        return None
    arrow_types.check_schema(what, produced, latest.schema)
    return latest
