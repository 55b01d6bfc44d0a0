"""The PostgreSQL → Arrow mapping and the comparison of Arrow schemas (no database)."""

from __future__ import annotations

import decimal

import pyarrow
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobledger.core import arrow_types, errors
from jobledger.lake import arrow_schema


def arrow_type(pg_type: str) -> str | None:
    """The Arrow description for a format_type() text, or None when it is refused."""
    if arrow_types.unsupported_reason(pg_type) is not None:
        return None
    [column] = arrow_types.map_columns([("c", pg_type)])
    return column.arrow


@pytest.mark.parametrize(
    ("pg_type", "arrow"),
    [
        ("smallint", "int16"),
        ("integer", "int32"),
        ("bigint", "int64"),
        ("real", "float32"),
        ("double precision", "float64"),
        ("numeric(12,2)", "decimal128(12,2)"),
        ("numeric(38,0)", "decimal128(38,0)"),
        ("numeric(38,38)", "decimal128(38,38)"),
        ("numeric(39,2)", "decimal256(39,2)"),
        ("numeric(76,10)", "decimal256(76,10)"),
        ("text", "string"),
        ("character varying(20)", "string"),
        ("character varying", "string"),
        ("character(3)", "string"),
        ("name", "string"),
        ("boolean", "bool"),
        ("date", "date32"),
        ("timestamp without time zone", "timestamp[us]"),
        ("timestamp(3) without time zone", "timestamp[us]"),
        ("timestamp with time zone", "timestamp[us, tz=UTC]"),
        ("timestamp(0) with time zone", "timestamp[us, tz=UTC]"),
        ("uuid", "uuid"),
        ("json", "json"),
        ("jsonb", "json"),
        ("bytea", "binary"),
        ("bigint[]", "list<int64>"),
        ("numeric(10,3)[]", "list<decimal128(10,3)>"),
        ("timestamp with time zone[]", "list<timestamp[us, tz=UTC]>"),
        ("uuid[]", "list<uuid>"),
        ("jsonb[]", "list<json>"),
        ("character varying(5)[]", "list<string>"),
    ],
)
def test_mapped_types(pg_type: str, arrow: str) -> None:
    assert arrow_type(pg_type) == arrow
    assert arrow_types.unsupported_reason(pg_type) is None
    # Every description converts to a pyarrow type and back unchanged.
    assert arrow_schema.describe(arrow_schema.data_type(arrow)) == arrow


@pytest.mark.parametrize(
    ("pg_type", "reason"),
    [
        ("numeric", "without precision and scale"),
        ("numeric(77,0)", "more than 76 digits"),
        ("numeric(1000,2)", "more than 76 digits"),
        ("numeric(5,-2)", "scale outside"),
        ("numeric(3,5)", "scale outside"),
        ("numeric[]", "without precision and scale"),
        ("integer[][]", "one-dimensional"),
        ("interval", "no Arrow mapping"),
        ("time without time zone", "no Arrow mapping"),
        ("money", "no Arrow mapping"),
        ("inet", "no Arrow mapping"),
        ('"char"', "no Arrow mapping"),
        ("int4range", "no Arrow mapping"),
        ("public.mood", "no Arrow mapping"),
    ],
)
def test_refused_types(pg_type: str, reason: str) -> None:
    assert arrow_type(pg_type) is None
    assert reason in (arrow_types.unsupported_reason(pg_type) or "")


def test_map_columns_names_every_refused_column_at_once() -> None:
    with pytest.raises(errors.JobledgerError) as caught:
        arrow_types.map_columns([("id", "bigint"), ("total", "numeric"), ("took", "interval")])
    assert caught.value.category == "unsupported_type"
    assert caught.value.sqlstate == "0A000"
    assert 'column "total" is numeric' in str(caught.value)
    assert "(and 1 more)" in str(caught.value)
    assert (caught.value.detail or "").splitlines() == [
        'column "total" is numeric: numeric without precision and scale has no fixed Arrow decimal '
        "type; cast it, e.g. CAST(... AS numeric(20,2))",
        'column "took" is interval: it has no Arrow mapping; cast it to a mapped type, e.g. CAST(... AS text)',
    ]


def test_map_columns_keeps_order_and_types() -> None:
    mapped = arrow_types.map_columns([("b", "text"), ("a", "numeric(5,1)")])
    assert mapped == [arrow_types.MappedColumn("b", "text", "string"),
                      arrow_types.MappedColumn("a", "numeric(5,1)", "decimal128(5,1)")]


@pytest.mark.parametrize("bad", ["int8", "decimal(3,1)", "list<>", "list<int64", "timestamp[ns]", ""])
def test_parse_refuses_what_is_not_a_description(bad: str) -> None:
    with pytest.raises(ValueError):
        arrow_types.parse(bad)


# --- widening ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "target", "expected"),
    [
        ("int16", "int32", True),
        ("int32", "int64", True),
        ("int64", "int32", False),
        ("float32", "float64", True),
        ("float64", "float32", False),
        ("int32", "float64", False),
        ("decimal128(10,2)", "decimal128(12,2)", True),
        ("decimal128(10,2)", "decimal128(12,4)", True),
        ("decimal128(10,2)", "decimal128(12,5)", False),
        ("decimal128(10,2)", "decimal128(10,1)", False),
        ("decimal128(38,2)", "decimal256(40,4)", True),
        ("decimal256(40,2)", "decimal128(38,2)", False),
        ("timestamp[us]", "timestamp[us, tz=UTC]", False),
        ("string", "json", False),
        ("list<int32>", "list<int64>", True),
        ("list<int64>", "int64", False),
        ("uuid", "uuid", True),
    ],
)
def test_widens(source: str, target: str, expected: bool) -> None:
    assert arrow_types.widens(source, target) is expected


decimals = st.builds(
    lambda bits, p, s: f"decimal{bits}({p},{min(s, p)})",
    st.sampled_from(["128"]), st.integers(1, 38), st.integers(0, 38),
) | st.builds(lambda p, s: f"decimal256({p},{min(s, p)})", st.integers(1, 76), st.integers(0, 76))


@given(decimals, decimals)
def test_decimal_widening_keeps_the_extreme_values(source: str, target: str) -> None:
    """Where ``widens`` says yes, the largest and smallest values of the source cast exactly."""
    parsed = arrow_types.parse(source)
    assert parsed.precision is not None and parsed.scale is not None
    with decimal.localcontext(decimal.Context(prec=200)):
        largest = decimal.Decimal(10) ** (parsed.precision - parsed.scale) - decimal.Decimal(10) ** -parsed.scale
        smallest = decimal.Decimal(10) ** -parsed.scale
        values = pyarrow.array([largest, -largest, smallest, None], arrow_schema.data_type(source))
    if arrow_types.widens(source, target):
        cast = values.cast(arrow_schema.data_type(target), safe=True)
        assert cast.to_pylist() == values.to_pylist()
    else:
        with pytest.raises(pyarrow.ArrowInvalid):
            values.cast(arrow_schema.data_type(target), safe=True)


# --- schema comparison ------------------------------------------------------------


def test_same_schema_in_another_order_fits() -> None:
    existing = [("id", "int64"), ("at", "timestamp[us, tz=UTC]"), ("tags", "list<string>")]
    assert arrow_types.schema_problems(list(reversed(existing)), existing) == []


def test_widening_types_fit() -> None:
    assert arrow_types.schema_problems(
        [("id", "int32"), ("amount", "decimal128(10,2)")],
        [("id", "int64"), ("amount", "decimal128(14,2)")],
    ) == []


def test_every_difference_is_reported_in_one_list() -> None:
    problems = arrow_types.schema_problems(
        [("id", "int64"), ("id", "int64"), ("amount", "decimal128(12,2)"), ("extra", "bool"),
         ("at", "timestamp[us]")],
        [("id", "int64"), ("amount", "decimal128(12,1)"), ("at", "timestamp[us, tz=UTC]"), ("gone", "string")],
    )
    assert problems == [
        'column "id" is produced 2 times',
        'column "amount" is decimal128(12,2) in the query but decimal128(12,1) in the dataset, '
        "which is not the same type or a lossless widening",
        'column "extra" (bool) does not exist in the dataset',
        'column "at" is timestamp[us] in the query but timestamp[us, tz=UTC] in the dataset, '
        "which is not the same type or a lossless widening",
        'column "gone" (string) of the dataset is not produced by the query',
    ]


def test_check_schema_raises_schema_mismatch_with_every_problem() -> None:
    with pytest.raises(errors.JobledgerError) as caught:
        arrow_types.check_schema("job x", [("a", "string")], [("b", "string")])
    assert caught.value.category == "schema_mismatch"
    assert str(caught.value).startswith('the output of job x does not fit the dataset: column "a"')
    assert len((caught.value.detail or "").splitlines()) == 2
    arrow_types.check_schema("job x", [("b", "string")], [("b", "string")])
