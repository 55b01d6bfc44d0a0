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

Why an option inside the string rather than a new define_job argument: it is
a property of the destination, versioned with it (changing it makes a new job
version, as any destination change does), needs no new signature for
define_job (whose 0.2.0 signature callers and grants name), and reads the
same in the ledger as in the call.  The canonical form define_job stores is
``parquet:<normalised path>`` plus ``?create_if_missing=true`` when set.

The names ``result`` and ``parquet:...`` cannot be mistaken for tables:
define_job stores table names schema-qualified (``public.result``), so a
stored destination is exactly ``result`` or starts with ``parquet:`` only
when it is one of these.
"""

from __future__ import annotations

import collections
import posixpath

from jobledger.core import errors

RESULT = "result"
PARQUET_PREFIX = "parquet:"
RESULT_MODES = ("append",)
PARQUET_MODES = ("append", "overwrite")
_PARQUET_OPTIONS = {"create_if_missing"}
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


def parse(destination: str) -> Table | Result | Parquet:
    """The destination a define_job argument or a stored job version names.

    Table names are returned as given (preflight resolves them);
    ``invalid_argument`` for a malformed ``parquet:`` destination.
    """
    found = kind(destination)
    if found == Result.kind:
        return Result()
    if found == Table.kind:
        return Table(destination)
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
        try:
            import urllib.parse  # only parquet destinations have options

            pairs = urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            pairs = [("?", query)]
        for key, value in pairs:
            if key not in _PARQUET_OPTIONS or value.lower() not in _TRUE:
                raise errors.JobledgerError(
                    "invalid_argument",
                    f"the parquet destination {destination!r} has an unknown option {key}={value}",
                    hint="Options: create_if_missing=true|false.",
                )
            options[key] = _TRUE[value.lower()]
    return Parquet(root, options.get("create_if_missing", False))


def check_mode(destination: Table | Result | Parquet, mode: str, job: str) -> None:
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


def kind(destination: str) -> str:
    """``table``, ``result`` or ``parquet``: the kind of destination a name is.

    The rule in Python; SQL asks ``jobledger_internal.destination_kind``
    (sql/objects/08_destination_kind.sql), and submit_job takes that answer
    from its query.  tests/integration/test_destination_kind.py holds the
    two to the same answers.
    """
    if destination == RESULT:
        return Result.kind
    if destination.startswith(PARQUET_PREFIX):
        return Parquet.kind
    return Table.kind


def outside_database(stored: str) -> bool:
    """True for a stored destination that is no table (``result``, ``parquet:...``)."""
    return kind(stored) != Table.kind
