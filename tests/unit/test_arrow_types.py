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
        ("time without time zone", "time64[us]"),
        ("time(3) without time zone[]", "list<time64[us]>"),
        ("interval", "month_day_nano"),
        ("interval(3)", "month_day_nano"),
        ("interval year to month", "month_day_nano"),
        ("interval day to second(2)", "month_day_nano"),
        ("interval minute", "month_day_nano"),
        ("interval[]", "list<month_day_nano>"),
    ],
)
def test_mapped_types(pg_type: str, arrow: str) -> None:
    assert arrow_type(pg_type) == arrow
    assert arrow_types.unsupported_reason(pg_type) is None
    assert not arrow_types.text_form(pg_type)
    # Every description converts to a pyarrow type and back unchanged.
    assert arrow_schema.describe(arrow_schema.data_type(arrow)) == arrow


# Types without an Arrow counterpart (and numerics no decimal type holds):
# their text output, as a string.
@pytest.mark.parametrize(
    ("pg_type", "arrow"),
    [
        ("numeric", "string"),
        ("numeric(77,0)", "string"),
        ("numeric(1000,2)", "string"),
        ("numeric(5,-2)", "string"),
        ("numeric(3,5)", "string"),
        ("numeric[]", "list<string>"),
        ("money", "string"),
        ("money[]", "list<string>"),
        ("tsvector", "string"),
        ("tsquery", "string"),
        ("jsonpath", "string"),
        ("xml[]", "list<string>"),
        ("pg_lsn", "string"),
        ("txid_snapshot", "string"),
        ("bit(3)", "string"),
        ("bit varying(8)", "string"),
        ("inet", "string"),
        ("point", "string"),
        ("box[]", "list<string>"),
        ("time with time zone", "string"),
        ('"char"', "string"),
        ("int4range", "string"),
        ("nummultirange", "string"),
        ("public.mood", "string"),
        ("record", "string"),
        ("regtype", "string"),
        ("oid", "string"),
    ],
)
def test_text_form_types(pg_type: str, arrow: str) -> None:
    assert arrow_type(pg_type) == arrow
    assert arrow_types.text_form(pg_type)
    [column] = arrow_types.map_columns([("c", pg_type)])
    assert column.text_form


def test_only_declared_multidimensional_arrays_are_refused() -> None:
    with pytest.raises(errors.JobledgerError) as caught:
        arrow_types.map_columns([("id", "bigint"), ("m", "integer[][]"), ("t", "text[][]")])
    assert caught.value.category == "unsupported_type"
    assert caught.value.sqlstate == "0A000"
    assert 'column "m" is integer[][]' in str(caught.value)
    assert "(and 1 more)" in str(caught.value)
    assert (caught.value.detail or "").splitlines() == [
        'column "m" is integer[][]: only one-dimensional arrays are supported',
        'column "t" is text[][]: only one-dimensional arrays are supported',
    ]


def test_parquet_stores_intervals_as_structs() -> None:
    assert arrow_types.parquet_description("month_day_nano") == arrow_types.INTERVAL_STRUCT
    assert arrow_types.parquet_description("list<month_day_nano>") == f"list<{arrow_types.INTERVAL_STRUCT}>"
    for other in ("int64", "decimal128(12,2)", "list<string>", "timestamp[us, tz=UTC]", "time64[us]"):
        assert arrow_types.parquet_description(other) == other
    struct = arrow_schema.data_type(arrow_types.INTERVAL_STRUCT)
    assert [(f.name, str(f.type)) for f in struct] == [("months", "int32"), ("days", "int32"),
                                                       ("nanoseconds", "int64")]
    assert arrow_schema.describe(struct) == arrow_types.INTERVAL_STRUCT
    assert not arrow_types.widens("month_day_nano", arrow_types.INTERVAL_STRUCT)


def test_parquet_batch_converts_intervals_also_in_lists_and_slices() -> None:
    mdn = pyarrow.month_day_nano_interval()
    values = [(1, -2, 3), None, (-5, 6, -(2**63) + 1)]
    batch = pyarrow.RecordBatch.from_arrays(
        [pyarrow.array(values, mdn), pyarrow.array([[(1, 2, 3), None], None, [(7, 8, 9)]], pyarrow.list_(mdn)),
         pyarrow.array([1, 2, 3])], names=["i", "l", "x"])
    fields = ("months", "days", "nanoseconds")
    for start in (0, 1):
        converted = arrow_schema.parquet_batch(batch.slice(start))
        assert arrow_schema.columns(converted.schema) == [
            ("i", arrow_types.INTERVAL_STRUCT), ("l", f"list<{arrow_types.INTERVAL_STRUCT}>"), ("x", "int64")]
        expected_i = [None if v is None else dict(zip(fields, v)) for v in values][start:]
        assert converted.column("i").to_pylist() == expected_i
        expected_l = [[{"months": 1, "days": 2, "nanoseconds": 3}, None], None,
                      [{"months": 7, "days": 8, "nanoseconds": 9}]][start:]
        assert converted.column("l").to_pylist() == expected_l
    plain = pyarrow.RecordBatch.from_arrays([pyarrow.array([1])], names=["x"])
    assert arrow_schema.parquet_batch(plain) is plain


def test_map_columns_keeps_order_and_types() -> None:
    mapped = arrow_types.map_columns([("b", "text"), ("a", "numeric(5,1)"), ("s", "numeric")])
    assert mapped == [arrow_types.MappedColumn("b", "text", "string"),
                      arrow_types.MappedColumn("a", "numeric(5,1)", "decimal128(5,1)"),
                      arrow_types.MappedColumn("s", "numeric", "string", text_form=True)]


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


def test_lance_stores_every_description_in_its_lance_form(tmp_path) -> None:
    """The rule of arrow_types.lance_description, held against pylance itself:
    every form it names is stored and read back with the same type, and the
    one type it replaces (month_day_nano) is the one Lance refuses."""
    import lance  # the client extra's, as the runner has it

    descriptions = ["bool", "int16", "int32", "int64", "float32", "float64", "decimal128(38,3)",
                    "decimal256(60,6)", "string", "binary", "date32", "timestamp[us]", "timestamp[us, tz=UTC]",
                    "time64[us]", "month_day_nano", "uuid", "json", "list<int64>", "list<month_day_nano>",
                    "list<uuid>"]
    for number, description in enumerate(descriptions):
        form = arrow_types.lance_description(description)
        assert form == (description.replace("month_day_nano", arrow_types.INTERVAL_STRUCT))
        field = pyarrow.field("c", arrow_schema.data_type(form))
        written = lance.write_dataset(pyarrow.table({"c": pyarrow.nulls(2, field.type)}), str(tmp_path / str(number)))
        assert arrow_schema.describe(lance.dataset(written.uri).schema.field("c").type) == form, description
    with pytest.raises(OSError, match="Unsupported data type"):
        lance.write_dataset(pyarrow.table({"c": pyarrow.nulls(1, pyarrow.month_day_nano_interval())}),
                            str(tmp_path / "refused"))
