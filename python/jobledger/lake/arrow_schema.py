"""Arrow type descriptions (``arrow_types``) to pyarrow types and back.

Separate from ``arrow_types`` because it imports pyarrow, which the server's
PL/Python does not have; client code (``arrow_batches``, ``ipc_result``,
``parquet_dataset``) converts through here so that a manifest's schema, an IPC
stream's schema and the batches built from a query always agree.
"""

from __future__ import annotations

import collections.abc

import pyarrow

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
