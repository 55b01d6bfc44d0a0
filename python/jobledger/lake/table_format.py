"""What the writers of lake table formats (``delta_table``, ``lance_dataset``) share.

Both commit one new table version per run, both read object-store settings
from the runner's environment only, and both must turn a storage library's
error into a category a user can act on; one copy of each rule here:

* ``Commit``: the version that holds a run's rows, as both return it;
* ``aws_environment``: the AWS_* variables of the runner's environment for an
  ``s3://`` uri (never anything stored in the database);
* ``storage_failure``: a missing bucket ``destination_missing``, refused
  credentials ``permission_denied``, anything else ``storage_error``;
* ``check_schema``: the query's columns against the table's real ones,
  every difference in one ``schema_mismatch``;
* ``Counter``: the batches counted (rows_written, progress) on their way
  into the library, keeping an error of the query apart from the library's.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import os
import re
from typing import Callable

import pyarrow

from jobledger.core import arrow_types, errors

# The runner's environment variables passed to the storage library for s3:// uris.
STORAGE_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
                     "AWS_ENDPOINT_URL", "AWS_ALLOW_HTTP")

Progress = Callable[[int], None]


@dataclasses.dataclass(frozen=True)
class Commit:
    """The table version that holds a run's rows; ``already_committed`` when
    an earlier attempt committed it and this one wrote nothing."""

    version: int
    rows_written: int
    attempt: int
    already_committed: bool = False
    # The table's columns after the commit, (name, description) pairs.
    schema: tuple[tuple[str, str], ...] = ()


def aws_environment(uri: str, environ: collections.abc.Mapping[str, str] | None = None) -> dict[str, str] | None:
    """None for a local directory; for s3:// the AWS_* variables set in the
    environment (``os.environ`` unless given), under their own names, which
    delta-rs and Lance (both on the Rust object_store) read alike."""
    if not uri.startswith("s3://"):
        return None
    environ = os.environ if environ is None else environ
    return {name: environ[name] for name in STORAGE_VARIABLES if environ.get(name)}


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_HTTP_403 = re.compile(r"(?<![\w.])403(?![\w.])")


def storage_failure(uri: str, exc: BaseException, what: str) -> errors.JobledgerError:
    """A storage library's or object store's error about ``what`` (e.g. "the
    delta table s3://b/t") as a category a user can act on."""
    text = " ".join(_ANSI.sub("", str(exc).split("\n   0:")[0]).replace("\u21b3", " ").split())[:2000]
    lowered = text.lower()
    if "nosuchbucket" in lowered or "bucket does not exist" in lowered or "specified bucket does not" in lowered:
        return errors.JobledgerError("destination_missing", f"the bucket of {what} {uri} does not exist: {text}")
    # (403 as a word: the text also holds durations such as "in 2.540310403s")
    if _HTTP_403.search(text) or any(word in lowered for word in (
            "invalidaccesskeyid", "signaturedoesnotmatch", "accessdenied", "forbidden", "permission denied",
            "missing credentials", "no credentials")):
        return errors.JobledgerError(
            "permission_denied", f"the runner's credentials may not write {what} {uri}: {text}",
            hint="The runner reads AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (and AWS_REGION, AWS_ENDPOINT_URL) "
                 "from its environment.")
    return errors.JobledgerError("storage_error", f"{what} {uri} could not be written: {text}")


def check_schema(what: str, table: str, produced: list[tuple[str, str]], existing: list[tuple[str, str]],
                 foreign: str) -> None:
    """schema_mismatch listing every difference between the query's columns
    (in the format's forms) and the table's.  A table column described as
    ``"<foreign> <type>"`` has a type outside the mapping: no query column fits it."""
    prefix = foreign + " "
    strange = [(name, arrow) for name, arrow in existing if arrow.startswith(prefix)]
    problems = [f'column "{name}" is {arrow[len(prefix):]} in the table, which no query column can fill'
                for name, arrow in strange]
    known = [(name, arrow) for name, arrow in existing if not arrow.startswith(prefix)]
    produced_known = [(name, arrow) for name, arrow in produced if name not in dict(strange)]
    problems += arrow_types.schema_problems(produced_known, known)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise errors.JobledgerError(
            "schema_mismatch", f"the output of {what} does not fit the {table}: {problems[0]}{more}",
            detail="\n".join(problems))


class Counter:
    """The batches in the table's forms (``convert``), counted and reported as progress.

    An exception raised while producing a batch (a timeout, a value the
    mapping cannot hold, a lost connection) is kept in ``error``: the
    storage library reports it as an error of its own, and the caller
    raises the original."""

    def __init__(self, progress: Progress | None,
                 convert: Callable[[pyarrow.RecordBatch, pyarrow.Schema], pyarrow.RecordBatch]) -> None:
        self.rows = 0
        self.progress = progress
        self.convert = convert
        self.error: BaseException | None = None

    def stream(self, batches: collections.abc.Iterable[pyarrow.RecordBatch],
               target: pyarrow.Schema) -> collections.abc.Iterator[pyarrow.RecordBatch]:
        try:
            for batch in batches:
                converted = self.convert(batch, target)
                self.rows += converted.num_rows
                if self.progress is not None:
                    self.progress(self.rows)
                yield converted
        except BaseException as exc:
            self.error = exc
            raise
