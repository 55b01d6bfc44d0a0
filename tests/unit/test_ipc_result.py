"""Arrow IPC results with a size cap, and their exact JSON rendering (no database)."""

from __future__ import annotations

import datetime
import decimal
import json
import uuid
from typing import Iterator

import pyarrow
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobledger.core import errors
from jobledger.lake import arrow_schema, ipc_result

UTC = datetime.timezone.utc
BIG = decimal.Decimal("9" * 38)
MINUS_BIG = decimal.Decimal("-" + "9" * 38)  # not -BIG: negation rounds to the context's 28 digits
TINY = decimal.Decimal("-0." + "0" * 37 + "1")


def sample_table() -> pyarrow.Table:
    schema = arrow_schema.schema([
        ("i", "int64"), ("n", "decimal128(38,0)"), ("f", "decimal128(38,38)"), ("w", "decimal256(76,10)"),
        ("x", "float64"), ("s", "string"), ("b", "bool"), ("d", "date32"), ("t", "timestamp[us]"),
        ("tz", "timestamp[us, tz=UTC]"), ("u", "uuid"), ("j", "json"), ("y", "binary"), ("l", "list<int32>"),
    ])
    wide = decimal.Decimal("-" + "9" * 66 + "." + "9" * 10)
    return pyarrow.table({
        "i": [2**63 - 1, None, -(2**63)],
        "n": [BIG, None, MINUS_BIG],
        "f": [TINY, None, decimal.Decimal("0." + "9" * 38)],
        "w": [wide, None, decimal.Decimal("0E-10")],
        "x": [float("nan"), None, float("-inf")],
        "s": ["héllo ☃ \"quoted\" \\ \n", None, ""],
        "b": [True, None, False],
        "d": [datetime.date(2024, 2, 29), None, datetime.date(1, 1, 1)],
        "t": [datetime.datetime(2024, 1, 1, 12, 0, 0, 123456), None, datetime.datetime(1970, 1, 1)],
        "tz": [datetime.datetime(2024, 1, 1, 6, 30, tzinfo=UTC), None, datetime.datetime(1969, 12, 31, 23, 59, 59, 1, tzinfo=UTC)],
        "u": pyarrow.ExtensionArray.from_storage(pyarrow.uuid(), pyarrow.array(
            [uuid.UUID(int=1).bytes, None, uuid.UUID(int=2**128 - 1).bytes], pyarrow.binary(16))),
        "j": pyarrow.ExtensionArray.from_storage(pyarrow.json_(), pyarrow.array(
            ['{"a": [1, 2.50, null]}', None, '"x"'])),
        "y": [b"\x00\xff", None, b""],
        "l": [[1, None, 3], None, []],
    }, schema=schema)


def bits(table: pyarrow.Table) -> pyarrow.Table:
    """Floats as their bit patterns, so that NaN equals NaN in Table.equals."""
    columns = [c.combine_chunks().view(pyarrow.int64()) if pyarrow.types.is_float64(c.type) else c.combine_chunks()
               for c in table.columns]
    return pyarrow.table(columns, names=table.column_names)


def test_round_trip_keeps_every_value_and_type() -> None:
    table = sample_table()
    data = ipc_result.encode(table.schema, table.to_batches(max_chunksize=1))
    back = ipc_result.decode(data)
    assert back.schema == table.schema
    assert bits(back).equals(bits(table))


def test_empty_result_keeps_its_schema() -> None:
    schema = arrow_schema.schema([("a", "decimal128(12,2)"), ("b", "list<uuid>")])
    back = ipc_result.decode(ipc_result.encode(schema, []))
    assert back.schema == schema and back.num_rows == 0


def test_result_over_the_cap_is_refused_and_stops_reading() -> None:
    read = []

    def batches() -> Iterator[pyarrow.RecordBatch]:
        for n in range(1000):
            read.append(n)
            yield pyarrow.record_batch({"s": ["x" * 1000] * 10})

    schema = pyarrow.schema([("s", pyarrow.string())])
    with pytest.raises(errors.JobledgerError) as caught:
        ipc_result.encode(schema, batches(), max_bytes=50_000)
    assert caught.value.category == "result_too_large"
    assert caught.value.sqlstate == "54000"
    assert "50000 bytes" in str(caught.value)
    # It stopped at the first batch over the cap, not at the end of the stream.
    assert len(read) <= 6


def test_result_at_the_cap_is_kept() -> None:
    table = sample_table()
    size = len(ipc_result.encode(table.schema, table.to_batches()))
    kept = ipc_result.decode(ipc_result.encode(table.schema, table.to_batches(), max_bytes=size))
    assert bits(kept).equals(bits(table))
    with pytest.raises(errors.JobledgerError):
        ipc_result.encode(table.schema, table.to_batches(), max_bytes=size - 1)


# --- JSON --------------------------------------------------------------------------


def test_json_is_exact() -> None:
    rows = json.loads(ipc_result.to_json(sample_table()), parse_float=decimal.Decimal)
    assert [list(r) for r in rows] == [sample_table().column_names] * 3
    first, empty, last = rows
    assert first["i"] == 2**63 - 1 and last["i"] == -(2**63)
    assert first["n"] == BIG and last["n"] == MINUS_BIG
    assert first["f"] == TINY and last["f"] == decimal.Decimal("0." + "9" * 38)
    assert first["w"] == decimal.Decimal("-" + "9" * 66 + "." + "9" * 10)
    assert first["x"] == "NaN" and last["x"] == "-Infinity"
    assert first["s"] == "héllo ☃ \"quoted\" \\ \n" and last["s"] == ""
    assert first["b"] is True and last["b"] is False
    assert first["d"] == "2024-02-29" and last["d"] == "0001-01-01"
    assert first["t"] == "2024-01-01T12:00:00.123456" and last["t"] == "1970-01-01T00:00:00"
    assert first["tz"] == "2024-01-01T06:30:00Z" and last["tz"] == "1969-12-31T23:59:59.000001Z"
    assert first["u"] == "00000000-0000-0000-0000-000000000001"
    assert last["u"] == "ffffffff-ffff-ffff-ffff-ffffffffffff"
    assert first["j"] == {"a": [1, decimal.Decimal("2.50"), None]} and last["j"] == "x"
    assert first["y"] == "\\x00ff" and last["y"] == "\\x"
    assert first["l"] == [1, None, 3] and last["l"] == []
    assert all(value is None for value in empty.values())


def test_json_keeps_trailing_zeros_of_the_scale() -> None:
    table = pyarrow.table({"a": pyarrow.array([decimal.Decimal("12.30"), decimal.Decimal("0.00")],
                                              pyarrow.decimal128(12, 2))})
    assert ipc_result.to_json(table) == '[{"a": 12.30}, {"a": 0.00}]'


def test_json_dates_and_timestamps_outside_pythons_years() -> None:
    """Arrow (and PostgreSQL) hold years before 1 and after 9999; ISO 8601 expanded years."""
    # -719528 is 0000-01-01; 400 Gregorian years are 146097 days.
    days = pyarrow.array([-719528, -719529, 2932897, -719528 - 146097 * 10000, -719528 + 146097 * 10000],
                         pyarrow.int32()).view(pyarrow.date32())
    micros = pyarrow.array([253402300800 * 10**6 + 1], pyarrow.int64()).view(pyarrow.timestamp("us", tz="UTC"))
    rows = json.loads(ipc_result.to_json(pyarrow.table({"d": days})))
    assert [r["d"] for r in rows] == [
        "+000000-01-01", "-000001-12-31", "+010000-01-01", "-4000000-01-01", "+4000000-01-01"]
    assert json.loads(ipc_result.to_json(pyarrow.table({"t": micros}))) == [
        {"t": "+010000-01-01T00:00:00.000001Z"}]


@given(st.dates())
def test_json_dates_match_python(day: datetime.date) -> None:
    table = pyarrow.table({"d": pyarrow.array([day], pyarrow.date32())})
    assert json.loads(ipc_result.to_json(table)) == [{"d": day.isoformat()}]
    # The hand-written calendar agrees with Python's wherever both exist.
    days = day.toordinal() - datetime.date(1970, 1, 1).toordinal()
    assert ipc_result._civil_from_days(days) == (day.year, day.month, day.day)


@given(st.datetimes(timezones=st.just(UTC)))
def test_json_timestamps_match_python(moment: datetime.datetime) -> None:
    table = pyarrow.table({"t": pyarrow.array([moment], pyarrow.timestamp("us", tz="UTC"))})
    [row] = json.loads(ipc_result.to_json(table))
    assert datetime.datetime.fromisoformat(row["t"].replace("Z", "+00:00")) == moment


@given(st.decimals(allow_nan=False, allow_infinity=False, places=4,
                   min_value=decimal.Decimal("-1e33"), max_value=decimal.Decimal("1e33")))
def test_json_decimals_are_exact(value: decimal.Decimal) -> None:
    table = pyarrow.table({"n": pyarrow.array([value], pyarrow.decimal128(38, 4))})
    [row] = json.loads(ipc_result.to_json(table), parse_float=decimal.Decimal, parse_int=decimal.Decimal)
    assert row["n"] == value
