"""Writing a run's batches into a Lance dataset (``lance:<uri>``) with pylance.

One run commits exactly one new dataset version; its number is the run's
snapshot_id (Lance numbers versions from 1: the run that creates the dataset
commits version 1).  The batches are streamed into ``lance.write_dataset`` as
a ``pyarrow.RecordBatchReader`` (memory: the batches in flight, never the
whole result).

* ``append`` adds fragments, ``overwrite`` replaces the dataset's rows
  (earlier versions stay readable by time travel, ``lance.dataset(uri,
  version=N)``, until they are cleaned up).  No ``merge``: jobledger declares
  no key for Lance (destinations.check_mode refuses it at define time).
* Types: Lance stores every type of the mapping as it is except the
  month-day-nano interval, stored as ``struct<months, days, nanoseconds>``
  (``arrow_types.lance_description``, as Parquet datasets store it).
* Exactly once, with Lance's own mechanism: every commit carries the
  transaction properties ``jobledger.run`` and ``jobledger.attempt``, kept
  in the dataset's transaction file of that version.  A retried attempt
  (attempt > 1: the first attempt of a run has nothing before it) first asks
  the dataset, newest version first, whether a version's transaction names
  its run (``find_commit``): if one does, that version is the run's and
  nothing is written.
* The dataset's real schema is compared with the query's before anything is
  written (``schema_mismatch`` listing every difference), so a dataset
  changed outside jobledger is never written with the wrong types.
* Memory: a run's peak stays flat however many rows it writes
  (docs/benchmarks.md, "Lake writes"): the column data Lance buffers before
  writing pages is bounded for all columns together (``DATA_CACHE_BYTES``;
  Lance's default is 8 MiB per column), and the runner process sets glibc's
  malloc, which pylance allocates with, to one arena and a fixed mmap
  threshold at its start (``jobledger.runner.allocator``).
* Storage: a local directory, or S3 with the credentials of the runner's
  environment (``table_format.aws_environment``), never stored in the
  database; failures become categories (``table_format.storage_failure``).
"""

from __future__ import annotations

import collections.abc
import os
from typing import Callable

import lance
import pyarrow

from jobledger.core import arrow_types, errors
from jobledger.lake import arrow_schema, table_format

RUN_KEY = "jobledger.run"
ATTEMPT_KEY = "jobledger.attempt"
MODES = ("append", "overwrite")
FOREIGN = "lance"
# Column data buffered before pages are written, all columns together (passed
# as write_dataset's data_cache_bytes, divided evenly among the columns).
DATA_CACHE_BYTES = 8 * 2**20

Commit = table_format.Commit


def storage_options(uri: str, environ: collections.abc.Mapping[str, str] | None = None) -> dict[str, str] | None:
    """pylance's storage options for ``uri``: None for a local directory, the
    AWS_* variables of the environment for s3://.  (Lance commits to S3 with
    conditional writes: a commit that loses the race for a version number
    retries on the next, without an external lock.)"""
    return table_format.aws_environment(uri, environ)


def open_dataset(uri: str, storage: dict[str, str] | None = None) -> lance.LanceDataset | None:
    """The dataset at ``uri`` (its latest version), or None when there is none (yet)."""
    try:
        return lance.dataset(uri, storage_options=storage)
    except ValueError as exc:
        if "was not found" in str(exc) and "nosuchbucket" not in str(exc).lower():
            return None
        raise storage_failure(uri, exc) from None
    except OSError as exc:
        raise storage_failure(uri, exc) from None


def storage_failure(uri: str, exc: BaseException) -> errors.JobledgerError:
    """A pylance or object store error as a category a user can act on."""
    return table_format.storage_failure(uri, exc, "the lance dataset")


def schema_of(dataset: lance.LanceDataset) -> list[tuple[str, str]]:
    """The dataset's columns as (name, description); types outside the
    mapping are described as ``lance <type>`` (they match no query column)."""
    described = []
    for field in dataset.schema:
        try:
            described.append((field.name, arrow_schema.describe(field.type)))
        except ValueError:
            described.append((field.name, f"{FOREIGN} {field.type}"))
    return described


def lance_columns(schema: pyarrow.Schema) -> list[tuple[str, str]]:
    """The query's columns in the forms a Lance dataset stores them."""
    return [(name, arrow_types.lance_description(arrow)) for name, arrow in arrow_schema.columns(schema)]


def check_schema(what: str, produced: list[tuple[str, str]], existing: list[tuple[str, str]]) -> None:
    """schema_mismatch listing every difference between the query's Lance
    forms and the dataset's columns (types the mapping lacks never fit)."""
    table_format.check_schema(what, "lance dataset", produced, existing, FOREIGN)


def find_commit(uri: str, run: str, storage: dict[str, str] | None = None,
                dataset: lance.LanceDataset | None = None) -> Commit | None:
    """The version an earlier attempt of ``run`` committed, or None if none did.

    Reads the transaction of every version, newest first, until one names the
    run (a retry comes soon after its crash: its version is among the last
    few).  A version whose transaction Lance no longer has (cleaned up) is
    passed by."""
    dataset = dataset if dataset is not None else open_dataset(uri, storage)
    if dataset is None:
        return None
    try:
        for version in range(dataset.latest_version, 0, -1):
            transaction = dataset.read_transaction(version)
            properties = (transaction.transaction_properties or {}) if transaction is not None else {}
            if properties.get(RUN_KEY) == run:
                rows = sum(fragment.physical_rows or 0
                           for fragment in getattr(transaction.operation, "fragments", None) or ())
                return Commit(version, rows, int(properties.get(ATTEMPT_KEY, 0)), already_committed=True,
                              schema=tuple(schema_of(dataset)))
    except (OSError, ValueError) as exc:
        raise storage_failure(uri, exc) from None
    return None


def write(uri: str, schema: pyarrow.Schema, batches: collections.abc.Iterable[pyarrow.RecordBatch], *,
          run: str, attempt: int, mode: str = "append", create_if_missing: bool = False,
          storage: dict[str, str] | None = None, progress: table_format.Progress | None = None,
          before_write: Callable[[], None] | None = None,
          before_create: Callable[[], None] | None = None) -> Commit:
    """Write ``batches`` as one commit of ``run`` (one new version).

    An earlier commit of the run is returned without reading a batch.  The
    dataset is checked (``destination_missing``, ``schema_mismatch``) before
    ``before_write`` (the runner takes its fence there) and the first batch.
    A missing dataset that may be created is looked up again after
    ``before_create`` (the runner serialises creators there), so that of two
    first runs the second appends to the dataset the first created.
    """
    if mode not in MODES:
        raise errors.JobledgerError("invalid_argument", f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    dataset = open_dataset(uri, storage)
    if attempt > 1:
        earlier = find_commit(uri, run, storage, dataset)
        if earlier is not None:
            return earlier
    produced = lance_columns(schema)
    if dataset is None and create_if_missing and before_create is not None:
        before_create()
        dataset = open_dataset(uri, storage)
    if dataset is None:
        _check_creatable(uri, create_if_missing)
        target = arrow_schema.schema(produced)
        lance_mode = "create"  # overwrite too: there is nothing to replace yet
    else:
        check_schema(f"run {run}", produced, schema_of(dataset))
        target = dataset.schema  # its types and column order, nullability and metadata included
        lance_mode = mode
    counter = table_format.Counter(progress, lance_batch)
    reader = pyarrow.RecordBatchReader.from_batches(target, counter.stream(batches, target))
    if before_write is not None:
        before_write()
    try:
        written = lance.write_dataset(
            reader, uri, mode=lance_mode, storage_options=storage, data_cache_bytes=DATA_CACHE_BYTES,
            transaction_properties={RUN_KEY: run, ATTEMPT_KEY: str(attempt)})
    except Exception as exc:
        if counter.error is not None:  # reading the query failed, not the dataset
            raise counter.error from None
        if isinstance(exc, (OSError, ValueError, pyarrow.ArrowException)):
            raise storage_failure(uri, exc) from None
        raise
    version = written.version
    transaction = written.read_transaction(version)
    if transaction is None or (transaction.transaction_properties or {}).get(RUN_KEY) != run:
        committed = find_commit(uri, run, storage)  # a fresh look: the dataset as of the commit
        if committed is None:
            raise errors.JobledgerError("runner_error",
                                        f"the lance dataset {uri} has no commit of run {run} after writing")
        version = committed.version
    return Commit(version, counter.rows, attempt, schema=tuple(schema_of(written)))


def _check_creatable(uri: str, create_if_missing: bool) -> None:
    if not create_if_missing:
        raise errors.JobledgerError(
            "destination_missing", f"the lance dataset {uri} does not exist",
            hint="Create it, or add ?create_if_missing=true to the destination.")
    if uri.startswith("/") and os.path.isdir(uri) and os.listdir(uri):
        raise errors.JobledgerError(
            "destination_missing",
            f"the directory {uri} is not empty and holds no lance dataset: jobledger writes no dataset beside "
            "other files")


def lance_batch(batch: pyarrow.RecordBatch, target: pyarrow.Schema) -> pyarrow.RecordBatch:
    """``batch`` in the dataset's types: intervals as structs (also in lists),
    then cast to ``target``'s (widening) types in its column order."""
    converted = arrow_schema.parquet_batch(batch).select(target.names)
    if converted.schema == target:
        return converted
    arrays = [column if column.type == field.type else column.cast(field.type)
              for column, field in zip(converted.columns, target)]
    return pyarrow.RecordBatch.from_arrays(arrays, schema=target)
