"""Unit tests for jobledger.core.schema_diff: does a query's output fit its destination table?"""

from __future__ import annotations

import pytest

from jobledger.core import errors, schema_diff

Column = schema_diff.DestinationColumn


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("integer", "integer"),
        ("numeric(10,2)", "numeric(10,2)"),
        ("character(3)", "character(3)"),
        ("interval", "interval"),
        ('"MyType"', '"MyType"'),
        ("smallint", "integer"),
        ("smallint", "bigint"),
        ("integer", "bigint"),
        ("smallint", "numeric"),
        ("integer", "numeric"),
        ("bigint", "numeric"),
        ("integer", "numeric(12,2)"),
        ("bigint", "numeric(19,0)"),
        ("smallint", "double precision"),
        ("integer", "double precision"),
        ("real", "double precision"),
        ("numeric(10,2)", "numeric"),
        ("numeric(10,2)", "numeric(12,4)"),
        ("numeric(10,2)", "numeric(11,3)"),
        ("numeric(5)", "numeric(7,2)"),
        ("character varying(20)", "character varying(30)"),
        ("character varying(20)", "character varying"),
        ("character varying(20)", "text"),
        ("character varying", "text"),
        ("text", "character varying"),
        ("date", "timestamp without time zone"),
        ("date", "timestamp with time zone"),
        ("timestamp without time zone", "timestamp with time zone"),
        ("timestamp(3) without time zone", "timestamp without time zone"),
        ("timestamp(3) with time zone", "timestamp(6) with time zone"),
        ("json", "jsonb"),
        ("integer[]", "bigint[]"),
        ("text[]", "text[]"),
        ("character varying(5)[]", "text[]"),
        ("int4", "int8"),
        ("timestamptz", "timestamp with time zone"),
    ],
)
def test_lossless_widenings_fit(source: str, target: str) -> None:
    assert schema_diff.is_widening(source, target)


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("integer", "smallint"),
        ("bigint", "integer"),
        ("bigint", "double precision"),
        ("integer", "real"),
        ("numeric", "double precision"),
        ("double precision", "real"),
        ("integer", "numeric(11,2)"),
        ("integer", "numeric(12,-1)"),
        ("numeric", "numeric(10,2)"),
        ("numeric(10,2)", "numeric(10,1)"),
        ("numeric(10,2)", "numeric(10,3)"),
        ("character varying(30)", "character varying(20)"),
        ("character varying", "character varying(20)"),
        ("text", "character varying(20)"),
        ("character(3)", "text"),
        ("character(3)", "character varying(3)"),
        ("character(3)", "character(5)"),
        ("text", "character(3)"),
        ("timestamp with time zone", "timestamp without time zone"),
        ("timestamp without time zone", "date"),
        ("timestamp without time zone", "timestamp(3) without time zone"),
        ("jsonb", "json"),
        ("text", "jsonb"),
        ("integer[]", "integer"),
        ("integer", "integer[]"),
        ("bigint[]", "integer[]"),
        ("uuid", "text"),
        ('"MyType"', '"mytype"'),
    ],
)
def test_everything_else_does_not_fit(source: str, target: str) -> None:
    assert not schema_diff.is_widening(source, target)


def test_parse_type_reads_format_type_output() -> None:
    assert schema_diff.parse_type("timestamp(3) with time zone") == schema_diff.PgType(
        "timestamp with time zone", (3,), 0
    )
    assert schema_diff.parse_type("character varying(20)[]") == schema_diff.PgType(
        "character varying", (20,), 1
    )
    assert schema_diff.parse_type("numeric(10,2)") == schema_diff.PgType("numeric", (10, 2), 0)
    assert schema_diff.parse_type("bpchar") == schema_diff.PgType("character", (), 0)
    assert schema_diff.parse_type("public.thing") == schema_diff.PgType("public.thing", (), 0)


def test_widenings_are_one_list_of_rows() -> None:
    rows = [(rule.source, rule.target, rule.condition) for rule in schema_diff.WIDENINGS]
    assert ("smallint", "integer", "always") in rows
    assert ("json", "jsonb", rows[-1][2]) in rows
    assert len(rows) == len(schema_diff.WIDENINGS)
    assert all(len(row) == 3 and all(isinstance(part, str) for part in row) for row in rows)
    assert not any(row[0] == "character" for row in rows)


DESTINATION = [
    Column("id", "bigint", not_null=True, generated=True),
    Column("day", "date", not_null=True),
    Column("amount", "numeric(12,2)", not_null=True),
    Column("note", "text"),
    Column("created", "timestamp with time zone", not_null=True, has_default=True),
]


def test_a_fitting_query_has_no_differences_in_any_order() -> None:
    produced = [("note", "character varying(20)"), ("amount", "numeric(10,2)"), ("day", "date")]
    assert schema_diff.diff(produced, DESTINATION) == []
    schema_diff.check("daily", produced, DESTINATION)


def test_lists_every_difference() -> None:
    produced = [
        ("day", "timestamp with time zone"),
        ("id", "bigint"),
        ("extra", "text"),
        ("note", "text"),
        ("note", "text"),
    ]
    assert schema_diff.diff(produced, DESTINATION) == [
        'column "note" is produced 2 times',
        'column "day" is timestamp with time zone in the query but date in the destination, '
        "which is not the same type or a lossless widening",
        'column "id" is a generated column in the destination and cannot be written',
        'column "extra" (text) does not exist in the destination',
        'column "amount" is NOT NULL without a default in the destination but the query does '
        "not produce it",
    ]


def test_column_names_are_case_sensitive() -> None:
    differences = schema_diff.diff([("Day", "date")], [Column("day", "date")])
    assert differences == ['column "Day" (date) does not exist in the destination']


def test_check_raises_one_schema_mismatch_naming_the_job() -> None:
    with pytest.raises(errors.JobledgerError) as caught:
        schema_diff.check("daily_totals", [("extra", "text")], DESTINATION)
    error = caught.value
    assert error.category == "schema_mismatch"
    assert 'job "daily_totals"' in error.message
    assert error.message == (
        'the output of job "daily_totals" does not fit its destination table: '
        'column "extra" (text) does not exist in the destination (and 2 more)'
    )
    assert error.detail is not None
    assert error.detail.split("\n") == [
        'column "extra" (text) does not exist in the destination',
        'column "day" is NOT NULL without a default in the destination but the query does '
        "not produce it",
        'column "amount" is NOT NULL without a default in the destination but the query does '
        "not produce it",
    ]


def test_a_single_difference_is_the_whole_message() -> None:
    with pytest.raises(errors.JobledgerError) as caught:
        schema_diff.check("j", [("note", "integer")], [Column("note", "text")])
    assert caught.value.message.endswith("lossless widening")
    assert "more)" not in caught.value.message
