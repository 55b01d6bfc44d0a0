"""The versions of a Parquet directory dataset: manifests, published atomically.

Pure Python (json, os): the server-side preflight can read a dataset's schema
without pyarrow, and ``parquet_dataset`` builds its writer and reader on it.

Layout of a dataset directory::

    _jobledger_dataset.json              the marker: jobledger created (or adopted) this directory
    part-<run>-<attempt>-<n>.parquet     data files, immutable once written
    _manifests/v<N>.json                 version N: its files, schema, rows, who committed it
    _tmp/                                files being written, not yet part of any version

Ownership: jobledger writes only into a directory that carries its marker, or
that it creates, or that is empty (it then writes the marker first: adopting
it), or that holds published versions of a dataset written before the marker
existed (0.4.0; the marker is added on the next write).  A directory holding
anything else is refused (``destination_missing``): its files are not
jobledger's to write beside, nor to remove.  Files jobledger removes are
only those under the names below (``is_own_leftover``); anything else in a
dataset directory, put there by someone else, is never touched.

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
import errno
import json
import os
import pathlib
import re
import stat
import uuid

from jobledger.core import arrow_types, errors

FORMAT = "jobledger-parquet-dataset"
FORMAT_VERSION = 1
MANIFESTS = "_manifests"
TMP = "_tmp"
MODES = ("append", "overwrite")

MARKER = "_jobledger_dataset.json"
MARKER_FORMAT = "jobledger-parquet-dataset-directory"
MARKER_FORMAT_VERSION = 1
MARKER_MAX_BYTES = 64 * 1024

_MANIFEST_NAME = re.compile(r"v(?P<version>[1-9][0-9]*)\.json")
# The names jobledger gives files; a run id is letters, digits, '-' and '_'
# (the runner's are UUIDs), so a name never leaves its directory.
RUN_ID = re.compile(r"[A-Za-z0-9_-]+")
_DATA_FILE = r"part-[A-Za-z0-9_-]+-[0-9]+-[1-9][0-9]*\.parquet"
_HEX = r"[0-9a-f]{32}"
_OWN_NAMES = {
    # directory (relative to the dataset) -> what jobledger names its files there
    "": re.compile(rf"{_DATA_FILE}|{re.escape(MARKER)}\.{_HEX}\.tmp"),
    TMP: re.compile(rf"{_DATA_FILE}\.{_HEX}\.tmp|manifest-[1-9][0-9]*-{_HEX}\.json"),
}
_MARKER_TEMPORARY = re.compile(rf"{re.escape(MARKER)}\.{_HEX}\.tmp")


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
    except (FileNotFoundError, NotADirectoryError):  # no dataset (check_owned says why)
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
    false, or when the directory exists and is not jobledger's to write
    (``check_owned``); ``schema_mismatch`` listing every difference otherwise.
    """
    latest = current(root)
    if latest is None:
        check_owned(root)
        if not create_if_missing:
            raise errors.JobledgerError(
                "destination_missing",
                f"the dataset {os.fspath(root)} does not exist",
                hint="Create it with create_if_missing, or check the path.",
            )
        return None
    arrow_types.check_schema(what, produced, latest.schema)
    return latest


# --- ownership: the marker, adoption, jobledger's own names ----------------------------


def data_file_name(run: str, attempt: int, number: int) -> str:
    """The final name of a run's data file; ``invalid_argument`` for a run id outside ``RUN_ID``."""
    if not RUN_ID.fullmatch(run):
        raise errors.JobledgerError(
            "invalid_argument", f"a run id is letters, digits, '-' and '_', not {run!r}")
    return f"part-{run}-{attempt}-{number}.parquet"


def is_own_leftover(relative: str) -> bool:
    """Is ``relative`` (a path inside a dataset, '/'-separated) a name jobledger gives a data
    file or a temporary?  Retention removes nothing else."""
    directory, _, name = relative.rpartition("/")
    pattern = _OWN_NAMES.get(directory)
    return pattern is not None and pattern.fullmatch(name) is not None


def is_marked(root: str | os.PathLike[str]) -> bool:
    """Does ``root`` carry jobledger's marker (a small regular file of the marker's format)?"""
    try:  # never follow a link, never block on a FIFO, never read a large file
        fd = os.open(pathlib.Path(root) / MARKER, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a symbolic link
            return False
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MARKER_MAX_BYTES:
            return False
        data = json.loads(os.read(fd, MARKER_MAX_BYTES + 1))
    except ValueError:
        return False
    finally:
        os.close(fd)
    return (isinstance(data, dict) and data.get("format") == MARKER_FORMAT
            and data.get("format_version") == MARKER_FORMAT_VERSION)


def check_owned(root: str | os.PathLike[str]) -> None:
    """``destination_missing`` unless jobledger may create a dataset at ``root``: the directory
    does not exist, carries the marker, or is empty (a marker being written by a racing
    adopter counts as empty).

    The marker is looked for after the listing: a racing adopter links the
    marker before it creates anything else, so a listing that saw its other
    names is followed by a look that sees the marker.
    """
    try:
        entries = os.listdir(root)
    except FileNotFoundError:
        return
    except NotADirectoryError:
        raise errors.JobledgerError(
            "destination_missing", f"{os.fspath(root)} is not a directory",
            hint="A parquet: destination names a directory: a new one, an empty one, or a jobledger dataset.",
        ) from None
    if is_marked(root) or all(_MARKER_TEMPORARY.fullmatch(name) for name in entries):
        return
    raise errors.JobledgerError(
        "destination_missing",
        f"the directory {os.fspath(root)} is not a jobledger dataset: it is not empty and has no "
        f"{MARKER} marker",
        hint="jobledger creates a dataset only in a new or an empty directory, so that it never writes "
             "beside, or removes, files it did not write. Choose such a directory.",
    )


def mark(root: str | os.PathLike[str]) -> None:
    """Create ``root`` if missing and give it the marker, if it has none yet (atomically:
    written and fsynced under a temporary name, then linked create-exclusive).

    The caller has checked that the directory is jobledger's (``check_destination``)."""
    base = pathlib.Path(root)
    if is_marked(base):
        return
    base.mkdir(parents=True, exist_ok=True)
    temporary = base / f"{MARKER}.{uuid.uuid4().hex}.tmp"
    with open(temporary, "x", encoding="utf-8") as out:
        out.write(json.dumps({"format": MARKER_FORMAT, "format_version": MARKER_FORMAT_VERSION,
                              "created_at": now()}, indent=1) + "\n")
        out.flush()
        os.fsync(out.fileno())
    try:
        os.link(temporary, base / MARKER)
    except FileExistsError:  # a racing adopter, or a file of that name that is not a marker
        if not is_marked(base):
            raise errors.JobledgerError(
                "destination_missing",
                f"{base / MARKER} exists and is not a jobledger dataset marker",
                hint="Choose a new or an empty directory.") from None
    finally:
        temporary.unlink()
    fsync_directory(base)
