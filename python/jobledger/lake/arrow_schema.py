"""Arrow type descriptions (``arrow_types``) to pyarrow types and back.

Separate from ``arrow_types`` because it imports pyarrow, which the server's
PL/Python does not have; client code (``arrow_batches``, ``ipc_result``,
``parquet_dataset``) converts through here so that a manifest's schema, an IPC
stream's schema and the batches built from a query always agree.
"""

from __future__ import annotations

import collections.abc

import pyarrow
import pyarrow.compute

from jobledger.core import arrow_types

_SCALARS: dict[str, pyarrow.DataType] = {
    "bool": pyarrow.bool_(),
    "int16": pyarrow.int16(),
    "int32": pyarrow.int32(),
    "int64": pyarrow.int64(),
    "float32": pyarrow.float32(),
    "float64": pyarrow.float64(),
    "string": pyarrow.string(),
    "binary": pyarrow.binary(),
    "date32": pyarrow.date32(),
    "timestamp[us]": pyarrow.timestamp("us"),
    "timestamp[us, tz=UTC]": pyarrow.timestamp("us", tz="UTC"),
    "time64[us]": pyarrow.time64("us"),
    arrow_types.MONTH_DAY_NANO: pyarrow.month_day_nano_interval(),
    arrow_types.INTERVAL_STRUCT: pyarrow.struct([("months", pyarrow.int32()), ("days", pyarrow.int32()),
                                                 ("nanoseconds", pyarrow.int64())]),
    "uuid": pyarrow.uuid(),
    "json": pyarrow.json_(),
}


def data_type(description: str) -> pyarrow.DataType:
    """The pyarrow type of a description (``decimal128(12,2)``, ``list<uuid>`` ...)."""
    return _data_type(arrow_types.parse(description))


def _data_type(parsed: arrow_types.ArrowType) -> pyarrow.DataType:
    if parsed.kind == "list":
        assert parsed.element is not None
        return pyarrow.list_(_data_type(parsed.element))
    if parsed.kind == "decimal128":
        return pyarrow.decimal128(parsed.precision, parsed.scale)
    if parsed.kind == "decimal256":
        return pyarrow.decimal256(parsed.precision, parsed.scale)
    return _SCALARS[parsed.kind]


def describe(data: pyarrow.DataType) -> str:
    """The description of a pyarrow type; ValueError for types outside the mapping."""
    if isinstance(data, pyarrow.ListType):
        return f"list<{describe(data.value_type)}>"
    if isinstance(data, pyarrow.Decimal128Type):
        return f"decimal128({data.precision},{data.scale})"
    if isinstance(data, pyarrow.Decimal256Type):
        return f"decimal256({data.precision},{data.scale})"
    for name, known in _SCALARS.items():
        if data == known:
            return name
    raise ValueError(f"Arrow type {data} is outside jobledger's mapping")


def schema(columns: collections.abc.Sequence[tuple[str, str]]) -> pyarrow.Schema:
    """A pyarrow schema from (name, description) pairs."""
    return pyarrow.schema([pyarrow.field(name, data_type(arrow)) for name, arrow in columns])


def columns(arrow_schema: pyarrow.Schema) -> list[tuple[str, str]]:
    """(name, description) pairs of a pyarrow schema."""
    return [(field.name, describe(field.type)) for field in arrow_schema]


# --- Parquet's forms (arrow_types.parquet_description) -------------------------


def parquet_schema(arrow_schema: pyarrow.Schema) -> pyarrow.Schema:
    """The schema as Parquet stores it: month_day_nano columns as ``INTERVAL_STRUCT``."""
    return schema([(name, arrow_types.parquet_description(arrow)) for name, arrow in columns(arrow_schema)])


def parquet_batch(batch: pyarrow.RecordBatch | pyarrow.Table) -> pyarrow.RecordBatch | pyarrow.Table:
    """``batch`` with its month_day_nano columns (also in lists) as structs of the same three fields."""
    target = parquet_schema(batch.schema)
    if target == batch.schema:
        return batch
    converted = [_parquet_array(column) for column in batch.columns]
    if isinstance(batch, pyarrow.Table):
        return pyarrow.Table.from_arrays(converted, schema=target)
    return pyarrow.RecordBatch.from_arrays(converted, schema=target)


def _parquet_type(data: pyarrow.DataType) -> pyarrow.DataType:
    return data_type(arrow_types.parquet_description(describe(data)))


def _parquet_array(array: pyarrow.Array | pyarrow.ChunkedArray) -> pyarrow.Array | pyarrow.ChunkedArray:
    if isinstance(array, pyarrow.ChunkedArray):
        return pyarrow.chunked_array([_parquet_array(chunk) for chunk in array.chunks], _parquet_type(array.type))
    if isinstance(array.type, pyarrow.ListType):
        if array.type.value_type == _parquet_type(array.type.value_type):
            return array
        if array.offset:
            array = pyarrow.concat_arrays([array])  # unsliced: offsets from 0
        values = _parquet_array(array.values)
        return pyarrow.ListArray.from_arrays(array.offsets, values, type=pyarrow.list_(values.type),
                                             mask=array.is_null() if array.null_count else None)
    if array.type != pyarrow.month_day_nano_interval():
        return array
    # Arrow's layout: per value int32 months, int32 days, int64 nanoseconds (little-endian).
    rows, offset = len(array), array.offset
    data = array.buffers()[1]
    as_int32 = pyarrow.Array.from_buffers(pyarrow.int32(), 4 * (rows + offset), [None, data])
    as_int64 = pyarrow.Array.from_buffers(pyarrow.int64(), 2 * (rows + offset), [None, data])
    index = pyarrow.array(range(offset, offset + rows), pyarrow.int64())
    four = pyarrow.compute.multiply(index, 4)
    fields = [as_int32.take(four), as_int32.take(pyarrow.compute.add(four, 1)),
              as_int64.take(pyarrow.compute.add(pyarrow.compute.multiply(index, 2), 1))]
    struct = data_type(arrow_types.INTERVAL_STRUCT)
    return pyarrow.StructArray.from_arrays(fields, fields=list(struct),
                                           mask=array.is_null() if array.null_count else None)
