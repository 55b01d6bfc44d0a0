"""What a job's destination string means: a table, ``result``, or ``parquet:<directory>``.

Pure Python: define_job and submit_job (PL/Python) and the runner read the
same string the same way.

* a table name, ``schema.table`` or ``table`` (in ``public``), as before;
* ``result``: the query's answer is kept with the run as an output (Arrow IPC
  stream plus an exact JSON rendering).  Mode ``append`` only, meaning "one
  result per run": overwrite and merge have nothing to replace or merge into;
* ``parquet:<absolute directory>``: a versioned Parquet dataset in that
  directory (``parquet_dataset``).  Modes ``append`` and ``overwrite``
  (``merge`` is refused: Parquet files are immutable and there is no key).
  Options after ``?``: ``create_if_missing=true`` creates the dataset on the
  first run when it does not exist yet (default false:
  ``destination_missing``).
* ``delta:<uri>``: a Delta Lake table (``delta_table``), ``<uri>`` an
  absolute local directory or ``s3://bucket/prefix``.  Modes ``append``,
  ``overwrite`` and ``merge`` (on the key columns named by the option
  ``merge_keys=a,b``, which merge requires).  Options:
  ``create_if_missing=true``, ``partition_by=col1,col2`` (used when the run
  creates the table), ``merge_keys=...``.
* ``lance:<uri>``: a Lance dataset (``lance_dataset``), ``<uri>`` as for
  ``delta:``.  Modes ``append`` and ``overwrite`` (``merge`` is refused:
  jobledger declares no key for Lance's merge_insert).  Option:
  ``create_if_missing=true``.  The location and the options are read by the
  same code as ``delta:``'s (``_lake_location``, ``_lake_options``).

Why an option inside the string rather than a new define_job argument: it is
a property of the destination, versioned with it (changing it makes a new job
version, as any destination change does), needs no new signature for
define_job (whose 0.2.0 signature callers and grants name), and reads the
same in the ledger as in the call.  The canonical form define_job stores is
``parquet:<normalised path>`` plus ``?create_if_missing=true`` when set.

The names ``result``, ``parquet:...``, ``delta:...`` and ``lance:...`` cannot be
mistaken for tables: define_job stores table names schema-qualified
(``public.result``), so a stored destination is exactly ``result`` or starts
with ``parquet:``, ``delta:`` or ``lance:`` only when it is one of these.
"""

from __future__ import annotations

import collections
import collections.abc
import posixpath

from jobledger.core import errors

RESULT = "result"
PARQUET_PREFIX = "parquet:"
RESULT_MODES = ("append",)
PARQUET_MODES = ("append", "overwrite")
DELTA_PREFIX = "delta:"
DELTA_MODES = ("append", "overwrite", "merge")
_PARQUET_OPTIONS = {"create_if_missing"}
_DELTA_FLAGS = {"create_if_missing"}
_DELTA_LISTS = ("partition_by", "merge_keys")
LANCE_PREFIX = "lance:"
LANCE_MODES = ("append", "overwrite")
_LANCE_FLAGS = {"create_if_missing"}
_TRUE = {"true": True, "on": True, "yes": True, "1": True, "false": False, "off": False, "no": False, "0": False}


class Table(collections.namedtuple("Table", "name")):
    """A table destination (looked up by preflight)."""

    __slots__ = ()
    kind = "table"


class Result(collections.namedtuple("Result", "")):
    """The run keeps its result as an output."""

    __slots__ = ()
    kind = "result"

    @property
    def canonical(self) -> str:
        return RESULT


class Parquet(collections.namedtuple("Parquet", "root create_if_missing", defaults=(False,))):
    """A Parquet dataset in directory ``root``."""

    __slots__ = ()
    kind = "parquet"

    @property
    def canonical(self) -> str:
        return PARQUET_PREFIX + self.root + ("?create_if_missing=true" if self.create_if_missing else "")


class Delta(collections.namedtuple("Delta", "uri create_if_missing partition_by merge_keys",
                                   defaults=(False, (), ()))):
    """A Delta Lake table at ``uri`` (an absolute local directory or ``s3://bucket/prefix``)."""

    __slots__ = ()
    kind = "delta"

    @property
    def canonical(self) -> str:
        options = []
        if self.create_if_missing:
            options.append("create_if_missing=true")
        for name in _DELTA_LISTS:
            if getattr(self, name):
                options.append(f"{name}={','.join(getattr(self, name))}")
        return DELTA_PREFIX + self.uri + ("?" + "&".join(options) if options else "")

    @property
    def local(self) -> bool:
        """True for a directory of this machine, False for an object store (s3://)."""
        return self.uri.startswith("/")


class Lance(collections.namedtuple("Lance", "uri create_if_missing", defaults=(False,))):
    """A Lance dataset at ``uri`` (an absolute local directory or ``s3://bucket/prefix``)."""

    __slots__ = ()
    kind = "lance"

    @property
    def canonical(self) -> str:
        return LANCE_PREFIX + self.uri + ("?create_if_missing=true" if self.create_if_missing else "")

    @property
    def local(self) -> bool:
        """True for a directory of this machine, False for an object store (s3://)."""
        return self.uri.startswith("/")


def parse(destination: str) -> Table | Result | Parquet | Delta | Lance:
    """The destination a define_job argument or a stored job version names.

    Table names are returned as given (preflight resolves them);
    ``invalid_argument`` for a malformed ``parquet:`` destination.
    """
    found = kind(destination)
    if found == Result.kind:
        return Result()
    if found == Table.kind:
        return Table(destination)
    if found == Delta.kind:
        return _parse_delta(destination)
    if found == Lance.kind:
        return _parse_lance(destination)
    spec = destination[len(PARQUET_PREFIX):]
    path, _, query = spec.partition("?")
    if not path.startswith("/"):
        raise errors.JobledgerError(
            "invalid_argument",
            f"the parquet destination {destination!r} needs an absolute directory, e.g. parquet:/data/sales",
        )
    if "\x00" in path or any(part in (".", "..") for part in path.split("/")):
        raise errors.JobledgerError(
            "invalid_argument", f"the parquet destination {destination!r} must be a plain absolute path"
                                " (no . or .. components)")
    root = posixpath.normpath(path)
    if root == "/":
        raise errors.JobledgerError("invalid_argument", "a parquet dataset cannot be the root directory")
    options: dict[str, bool] = {}
    if query:
        for key, value in _options(destination, query):
            if key not in _PARQUET_OPTIONS or value.lower() not in _TRUE:
                raise errors.JobledgerError(
                    "invalid_argument",
                    f"the parquet destination {destination!r} has an unknown option {key}={value}",
                    hint="Options: create_if_missing=true|false.",
                )
            options[key] = _TRUE[value.lower()]
    return Parquet(root, options.get("create_if_missing", False))


def _parse_delta(destination: str) -> Delta:
    uri, query = _lake_location(destination, DELTA_PREFIX)
    flags, lists = _lake_options(
        destination, query, _DELTA_FLAGS, _DELTA_LISTS,
        "Options: create_if_missing=true|false, partition_by=col1,col2, merge_keys=col1,col2.")
    return Delta(uri, flags.get("create_if_missing", False), lists.get("partition_by", ()),
                 lists.get("merge_keys", ()))


def _parse_lance(destination: str) -> Lance:
    uri, query = _lake_location(destination, LANCE_PREFIX)
    flags, _ = _lake_options(destination, query, _LANCE_FLAGS, (), "Options: create_if_missing=true|false.")
    return Lance(uri, flags.get("create_if_missing", False))


def _lake_location(destination: str, prefix: str) -> tuple[str, str]:
    """The normalised location of a lake destination (``delta:``, ``lance:``;
    ``lake_uri``'s rule, the one the write grants use) and the text of its options."""
    location, _, query = destination[len(prefix):].partition("?")
    return lake_uri(location, f"the {prefix.rstrip(':')} destination {destination!r}", example=prefix), query


def _lake_options(destination: str, query: str, flag_names: collections.abc.Set[str],
                  list_names: collections.abc.Sequence[str],
                  hint: str) -> tuple[dict[str, bool], dict[str, tuple[str, ...]]]:
    """The options of a lake destination: boolean flags and column lists
    (``a,b``, no name twice); ``invalid_argument`` naming anything else."""
    name = destination.partition(":")[0]
    flags: dict[str, bool] = {}
    lists: dict[str, tuple[str, ...]] = {}
    for key, value in _options(destination, query):
        if key in flag_names and value.lower() in _TRUE:
            flags[key] = _TRUE[value.lower()]
        elif key in list_names and value and all(column.strip() for column in value.split(",")):
            names = tuple(column.strip() for column in value.split(","))
            if len(set(names)) != len(names):
                raise errors.JobledgerError(
                    "invalid_argument", f"the {name} destination {destination!r} names a column twice in {key}")
            lists[key] = names
        else:
            raise errors.JobledgerError(
                "invalid_argument",
                f"the {name} destination {destination!r} has an unknown option {key}={value}",
                hint=hint,
            )
    return flags, lists


def lake_uri(location: str, what: str, *, example: str = "", whole_bucket: bool = False) -> str:
    """The normalised form of a lake location: an absolute local directory
    (``posixpath.normpath``, never ``/``) or ``s3://bucket/prefix`` (no
    trailing ``/``); ``invalid_argument`` naming ``what`` otherwise.

    Lake destinations (``delta:``, ``lance:``) and the owners' write grants
    (``lake_grants.prefix``) go through this one rule, so a grant and a destination
    that name the same place are the same string.  ``whole_bucket`` also
    accepts ``s3://bucket`` (a grant on a whole bucket)."""
    if "\x00" in location or any(part in (".", "..") for part in location.split("/")):
        raise errors.JobledgerError(
            "invalid_argument", f"{what} must be a plain location (no . or .. components)")
    if location.startswith("s3://"):
        bucket, _, prefix = location[len("s3://"):].partition("/")
        if not bucket or (not whole_bucket and not prefix.strip("/")) or "//" in prefix.strip("/"):
            raise errors.JobledgerError(
                "invalid_argument", f"{what} needs a bucket and a prefix, e.g. {example}s3://lake/sales")
        return f"s3://{bucket}/{prefix.strip('/')}" if prefix.strip("/") else f"s3://{bucket}"
    if location.startswith("/"):
        # normpath keeps a leading "//" (POSIX leaves its meaning open): one "/".
        uri = "/" + posixpath.normpath(location).lstrip("/")
        if uri == "/":
            raise errors.JobledgerError("invalid_argument", f"{what} cannot be the root directory")
        return uri
    raise errors.JobledgerError(
        "invalid_argument",
        f"{what} needs an absolute directory or an s3:// location, e.g. {example}/data/sales or {example}s3://lake/sales",
    )


def _options(destination: str, query: str) -> list[tuple[str, str]]:
    """The ``key=value`` pairs after ``?`` (one unreadable pair when malformed)."""
    if not query:
        return []
    try:
        import urllib.parse  # only lake destinations have options

        return urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        return [("?", query)]


def check_mode(destination: Table | Result | Parquet | Delta | Lance, mode: str, job: str) -> None:
    """Refuse a mode the destination has no meaning for (invalid_argument)."""
    if isinstance(destination, Result) and mode not in RESULT_MODES:
        raise errors.JobledgerError(
            "invalid_argument",
            f'job "{job}": destination result keeps one result per run, so its mode is append, not {mode}',
        )
    if isinstance(destination, Parquet) and mode not in PARQUET_MODES:
        raise errors.JobledgerError(
            "invalid_argument",
            f'job "{job}": a parquet destination supports append and overwrite, not {mode}',
            hint="Parquet files are immutable and have no key to merge on; overwrite publishes a new version.",
        )
    if isinstance(destination, Delta) and mode not in DELTA_MODES:
        raise errors.JobledgerError(
            "invalid_argument", f'job "{job}": a delta destination supports append, overwrite and merge, not {mode}')
    if isinstance(destination, Delta) and mode == "merge" and not destination.merge_keys:
        raise errors.JobledgerError(
            "invalid_argument",
            f'job "{job}": merge into a delta table needs its key columns: the option merge_keys=col1,col2',
            hint="e.g. delta:/data/customers?merge_keys=id",
        )
    if isinstance(destination, Lance) and mode not in LANCE_MODES:
        raise errors.JobledgerError(
            "invalid_argument",
            f'job "{job}": a lance destination supports append and overwrite, not {mode}',
            hint="jobledger declares no key columns for a Lance dataset; merge into a delta: table instead.",
        )


def kind(destination: str) -> str:
    """``table``, ``result``, ``parquet``, ``delta`` or ``lance``: the kind of destination a name is.

    The rule in Python; SQL asks ``jobledger_internal.destination_kind``
    (sql/objects/08_destination_kind.sql), and submit_job takes that answer
    from its query.  tests/integration/test_destination_kind.py holds the
    two to the same answers.
    """
    if destination == RESULT:
        return Result.kind
    if destination.startswith(PARQUET_PREFIX):
        return Parquet.kind
    if destination.startswith(DELTA_PREFIX):
        return Delta.kind
    if destination.startswith(LANCE_PREFIX):
        return Lance.kind
    return Table.kind


def outside_database(stored: str) -> bool:
    """True for a stored destination that is no table (``result``, ``parquet:...``, ``delta:...``, ``lance:...``)."""
    return kind(stored) != Table.kind
