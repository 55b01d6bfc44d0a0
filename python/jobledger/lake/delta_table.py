"""Writing a run's batches into a Delta Lake table (``delta:<uri>``) with delta-rs.

One run commits exactly one new table version; its number is the run's
snapshot_id.  The batches are streamed into delta-rs as a
``pyarrow.RecordBatchReader`` (memory: the batches in flight and one
Parquet row group of ``ROW_GROUP_ROWS`` rows, never the whole result).

* ``append`` adds files, ``overwrite`` replaces the table's rows (earlier
  versions stay readable by time travel until they are vacuumed), ``merge``
  updates the rows whose ``merge_keys`` match and inserts the others
  (delta-rs's merge).
* Types Delta lacks are stored in the forms of ``arrow_types.delta_description``:
  intervals as ``struct<months, days, nanoseconds>`` (as Parquet datasets
  store them), decimal256, time64, uuid and json as their text.
* Exactly once, with Delta's own mechanism: every commit carries the app
  transaction ``(app_id(run), attempt)`` and the run and attempt in its
  commit info.  A retried attempt first asks the table
  ``transaction_version(app_id(run))``: if its run already committed, it
  takes that version from the table's history and writes nothing
  (``find_commit``).
* The table's real schema (its Delta schema) is compared with the query's
  before anything is written (``schema_mismatch`` listing every difference),
  so a table changed outside jobledger is never written with the wrong types.
* Storage: a local directory, or S3 with the credentials of the runner's
  environment (``storage_options``: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
  AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL, AWS_ALLOW_HTTP); nothing of
  them is ever stored in the database.  Storage failures become categories
  (``storage_failure``): a missing bucket ``destination_missing``, refused
  credentials ``permission_denied``, anything else ``storage_error``.
  ``lake_dataset`` (Lance) shares these rules: ``table_format`` holds them.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import json
import os
import uuid
from typing import Any, Callable

import deltalake
import deltalake.exceptions
from deltalake.fs import DeltaStorageHandler
import pyarrow

from jobledger.core import arrow_types, errors
from jobledger.lake import arrow_schema, table_format

RUN_KEY = "jobledger.run"
ATTEMPT_KEY = "jobledger.attempt"
# The runner's environment variables passed to delta-rs for s3:// tables.
STORAGE_VARIABLES = table_format.STORAGE_VARIABLES
MODES = ("append", "overwrite", "merge")
# Rows per Parquet row group of the files a run writes.  delta-rs's default,
# 1,048,576 (the parquet crate's), keeps up to that many rows' encoded pages
# in memory, so the runner's peak RSS grew with the result up to a few
# million rows (bench/bench_lake.py: 1M rows 296 MiB, 10M 337 MiB); at
# 262,144 it stays flat, for about 20% more bytes on disk.  Compression
# stays delta-rs's default, Snappy (WriterProperties without one would
# write uncompressed files).
ROW_GROUP_ROWS = 262_144
COMPRESSION = "SNAPPY"

Progress = table_format.Progress
Commit = table_format.Commit


def app_id(run: str) -> str:
    """The Delta app transaction id of a run (its version is the attempt)."""
    return f"jobledger-run-{run}"


def storage_options(uri: str, environ: collections.abc.Mapping[str, str] | None = None) -> dict[str, str] | None:
    """delta-rs's storage options for ``uri``: None for a local directory,
    the AWS_* variables of the environment for s3://."""
    options = table_format.aws_environment(uri, environ)
    if options is None:
        return None
    # S3 has conditional writes: a commit that loses the race for a version
    # number retries on the next, without an external lock.
    options.setdefault("conditional_put", "etag")
    return options


def open_table(uri: str, storage: dict[str, str] | None = None) -> deltalake.DeltaTable | None:
    """The table at ``uri``, or None when there is none (yet)."""
    try:
        return deltalake.DeltaTable(uri, storage_options=storage)
    except deltalake.exceptions.TableNotFoundError:
        return None
    except (deltalake.exceptions.DeltaError, OSError) as exc:
        raise storage_failure(uri, exc) from None


def schema_of(table: deltalake.DeltaTable) -> list[tuple[str, str]]:
    """The table's columns as (name, description); types outside the mapping
    are described as ``delta <type>`` (they match no query column)."""
    fields = json.loads(table.schema().to_json())["fields"]
    return [(field["name"], _description(field["type"])) for field in fields]


_PRIMITIVES = {
    "short": "int16", "integer": "int32", "long": "int64", "float": "float32", "double": "float64",
    "string": "string", "binary": "binary", "boolean": "bool", "date": "date32",
    "timestamp": "timestamp[us, tz=UTC]", "timestamp_ntz": "timestamp[us]",
}
_INTERVAL_FIELDS = [("months", "integer"), ("days", "integer"), ("nanoseconds", "long")]


def _description(delta_type: Any) -> str:
    if isinstance(delta_type, str):
        if delta_type in _PRIMITIVES:
            return _PRIMITIVES[delta_type]
        if delta_type.startswith("decimal(") and delta_type.endswith(")"):
            return "decimal128(" + delta_type[len("decimal("):].replace(" ", "")
        return f"delta {delta_type}"
    if delta_type.get("type") == "array":
        return f"list<{_description(delta_type['elementType'])}>"
    if delta_type.get("type") == "struct" and [(f["name"], f["type"]) for f in delta_type["fields"]] == _INTERVAL_FIELDS:
        return arrow_types.INTERVAL_STRUCT
    return f"delta {json.dumps(delta_type, sort_keys=True)}"


def check_schema(what: str, produced: list[tuple[str, str]], existing: list[tuple[str, str]]) -> None:
    """schema_mismatch listing every difference between the query's Delta
    forms and the table's columns (types the mapping lacks never fit)."""
    table_format.check_schema(what, "delta table", produced, existing, "delta")


def delta_columns(schema: pyarrow.Schema) -> list[tuple[str, str]]:
    """The query's columns in the forms a Delta table stores them."""
    return [(name, arrow_types.delta_description(arrow)) for name, arrow in arrow_schema.columns(schema)]


def find_commit(uri: str, run: str, storage: dict[str, str] | None = None,
                table: deltalake.DeltaTable | None = None) -> Commit | None:
    """The version an earlier attempt of ``run`` committed, or None if none did."""
    table = table if table is not None else open_table(uri, storage)
    if table is None:
        return None
    try:
        attempt = table.transaction_version(app_id(run))
        if attempt is None:
            return None
        found = _committed(table, storage, run)
    except (deltalake.exceptions.DeltaError, OSError) as exc:
        raise storage_failure(uri, exc) from None
    if found is None:
        raise errors.JobledgerError(
            "runner_error", f"the delta table {uri} records a commit of run {run} whose log entry is gone")
    version, info = found
    metrics = info.get("operationMetrics") or {}
    rows = metrics.get("num_source_rows", metrics.get("num_added_rows", 0))
    return Commit(version, int(rows), int(attempt), already_committed=True, schema=tuple(schema_of(table)))


def _committed(table: deltalake.DeltaTable, storage: dict[str, str] | None,
               run: str) -> tuple[int, dict[str, Any]] | None:
    """The version whose commit names ``run``, and its commit info, read from
    the log's own files, newest first from the snapshot ``table`` loaded
    (whose app transaction says the run committed, so at or below it).

    Not ``DeltaTable.history()``: it numbers the commits it lists counting
    down from a latest version, and a commit that lands while it lists (a
    concurrent writer) shifts every number: a run recorded one version off,
    or as version -1 (seen on S3 with two runners)."""
    handler = DeltaStorageHandler(table.table_uri, storage)
    for version in range(table.version(), -1, -1):
        try:
            with handler.open_input_file(f"_delta_log/{version:020d}.json") as entry:
                lines = entry.read().decode().splitlines()
        except FileNotFoundError:
            return None  # the log before this version was cleaned up
        for line in lines:
            info = json.loads(line).get("commitInfo") if line.strip() else None
            if info is not None and info.get(RUN_KEY) == run:
                return version, info
    return None


def write(uri: str, schema: pyarrow.Schema, batches: collections.abc.Iterable[pyarrow.RecordBatch], *,
          run: str, attempt: int, mode: str = "append", create_if_missing: bool = False,
          partition_by: collections.abc.Sequence[str] = (), merge_keys: collections.abc.Sequence[str] = (),
          storage: dict[str, str] | None = None, progress: Progress | None = None,
          before_write: Callable[[], None] | None = None,
          before_create: Callable[[], None] | None = None) -> Commit:
    """Write ``batches`` as one commit of ``run`` (one new version).

    An earlier commit of the run is returned without reading a batch.  The
    table is checked (``destination_missing``, ``schema_mismatch``) before
    ``before_write`` (the runner takes its fence there) and the first batch.
    A missing table that may be created is looked up again after
    ``before_create`` (the runner serialises creators there), so that of two
    first runs the second appends to the table the first created.
    """
    if mode not in MODES:
        raise errors.JobledgerError("invalid_argument", f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    table = open_table(uri, storage)
    earlier = find_commit(uri, run, storage, table)
    if earlier is not None:
        return earlier
    produced = delta_columns(schema)
    names = [name for name, _ in produced]
    missing = [c for c in (*partition_by, *merge_keys) if c not in names]
    if missing:
        raise errors.JobledgerError(
            "schema_mismatch", f"the delta destination names columns the query does not produce: {', '.join(missing)}")
    if table is None and create_if_missing and before_create is not None:
        before_create()
        table = open_table(uri, storage)
    if table is None:
        _check_creatable(uri, create_if_missing, storage)
        target = arrow_schema.schema(produced)
    else:
        existing = schema_of(table)
        check_schema(f"run {run}", produced, existing)
        target = arrow_schema.schema(existing)
    counter = table_format.Counter(progress, delta_batch)
    reader = pyarrow.RecordBatchReader.from_batches(target, counter.stream(batches, target))
    properties = deltalake.CommitProperties(
        custom_metadata={RUN_KEY: run, ATTEMPT_KEY: str(attempt)},
        app_transactions=[deltalake.Transaction(app_id(run), attempt)])
    files = writer_properties()
    if before_write is not None:
        before_write()
    try:
        if mode == "merge" and table is not None:
            predicate = " AND ".join(f"t.{_quoted(k)} = s.{_quoted(k)}" for k in merge_keys)
            (table.merge(reader, predicate, source_alias="s", target_alias="t", commit_properties=properties,
                         writer_properties=files)
             .when_matched_update_all().when_not_matched_insert_all().execute())
        else:
            deltalake.write_deltalake(
                table if table is not None else uri, reader,
                mode="overwrite" if mode == "overwrite" else "append",
                partition_by=list(partition_by) or None if table is None else None,
                storage_options=storage if table is None else None, commit_properties=properties,
                writer_properties=files)
    except Exception as exc:
        if counter.error is not None:  # reading the query failed, not the table
            raise counter.error from None
        if isinstance(exc, (deltalake.exceptions.DeltaError, OSError, pyarrow.ArrowException)):
            raise storage_failure(uri, exc) from None
        raise
    committed = find_commit(uri, run, storage)  # a fresh look: the table as of the commit
    if committed is None:
        raise errors.JobledgerError("runner_error", f"the delta table {uri} has no commit of run {run} after writing")
    return dataclasses.replace(committed, rows_written=counter.rows, already_committed=False)


def writer_properties() -> deltalake.WriterProperties:
    """How the Parquet files of a run are written: ROW_GROUP_ROWS, COMPRESSION."""
    return deltalake.WriterProperties(max_row_group_size=ROW_GROUP_ROWS, compression=COMPRESSION)


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _check_creatable(uri: str, create_if_missing: bool, storage: dict[str, str] | None) -> None:
    if not create_if_missing:
        raise errors.JobledgerError(
            "destination_missing", f"the delta table {uri} does not exist",
            hint="Create it, or add ?create_if_missing=true to the destination.")
    if uri.startswith("/") and os.path.isdir(uri) and os.listdir(uri):
        raise errors.JobledgerError(
            "destination_missing",
            f"the directory {uri} is not empty and holds no delta table: jobledger writes no table beside other files")


def storage_failure(uri: str, exc: BaseException) -> errors.JobledgerError:
    """A delta-rs or object store error as a category a user can act on."""
    return table_format.storage_failure(uri, exc, "the delta table")


# --- batches in Delta's forms ------------------------------------------------------


def delta_batch(batch: pyarrow.RecordBatch, target: pyarrow.Schema) -> pyarrow.RecordBatch:
    """``batch`` in the table's types: intervals as structs, decimal256, time,
    uuid and json as text (``arrow_types.delta_description``), then cast to
    ``target``'s (widening) types in its column order."""
    batch = arrow_schema.parquet_batch(batch)  # intervals as structs, also in lists
    arrays = [_delta_array(column) for column in batch.columns]
    converted = pyarrow.RecordBatch.from_arrays(arrays, names=batch.schema.names)
    converted = converted.select(target.names)
    return converted if converted.schema == target else converted.cast(target)


def _delta_array(array: pyarrow.Array) -> pyarrow.Array:
    data = array.type
    if isinstance(data, pyarrow.ListType):
        values = _delta_array(array.values)
        if values.type == data.value_type:
            return array
        if array.offset:
            array = pyarrow.concat_arrays([array])  # unsliced: offsets from 0
            values = _delta_array(array.values)
        return pyarrow.ListArray.from_arrays(array.offsets, values, type=pyarrow.list_(values.type),
                                             mask=array.is_null() if array.null_count else None)
    if isinstance(data, pyarrow.Decimal256Type) or data == pyarrow.time64("us"):
        return array.cast(pyarrow.string())
    if data == pyarrow.json_():
        return array.storage.cast(pyarrow.string())
    if data == pyarrow.uuid():
        return pyarrow.array([None if value is None else str(uuid.UUID(bytes=value))
                              for value in array.storage.to_pylist()], pyarrow.string())
    return array
