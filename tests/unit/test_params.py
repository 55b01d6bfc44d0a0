"""Unit tests for jobledger.server.params: declarations, and binding of submitted values."""

from __future__ import annotations

import datetime
import decimal
import json
import uuid

import pytest

from jobledger.core import errors
from jobledger.server import params

EXAMPLE = {
    "day": {"type": "date"},
    "ids": {"type": "bigint[]"},
    "limit": {"type": "integer", "default": 100},
    "note": {"type": "text", "nullable": True, "description": "free text"},
}


def declare(spec: dict[str, object]) -> params.Declarations:
    return params.parse_declarations(spec, frozenset(spec))


def one(type_name: str, **extra: object) -> params.Declarations:
    return declare({"v": {"type": type_name, **extra}})


def bind_one(type_name: str, value: object, **extra: object) -> object:
    return params.bind(one(type_name, **extra), json.dumps({"v": value}))["v"].value


def bind_raw(type_name: str, raw: str, **extra: object) -> object:
    return params.bind(one(type_name, **extra), '{"v": ' + raw + "}")["v"].value


def rejection(call, *args: object) -> errors.JobledgerError:
    with pytest.raises(errors.JobledgerError) as caught:
        call(*args)
    return caught.value


def invalid(type_name: str, raw: str) -> errors.JobledgerError:
    error = rejection(bind_raw, type_name, raw)
    assert error.category == "invalid_parameter"
    assert '"v"' in error.message
    return error


# --- declarations -----------------------------------------------------------


def test_parses_the_issue_example() -> None:
    decls = declare(EXAMPLE)
    assert decls.typed
    assert decls.names == frozenset(EXAMPLE)
    assert [d.name for d in decls.items] == ["day", "ids", "limit", "note"]
    limit = decls.get("limit")
    assert limit is not None
    assert limit.type == params.ParamType("integer")
    assert (limit.has_default, limit.default, limit.nullable) == (True, 100, False)
    ids = decls.get("ids")
    assert ids is not None and ids.type == params.ParamType("bigint", is_array=True)
    assert str(ids.type) == "bigint[]"
    note = decls.get("note")
    assert note is not None and note.nullable and note.description == "free text"
    assert decls.get("nope") is None


ALL_TYPES = [*params.SCALAR_TYPES, *(name + "[]" for name in params.SCALAR_TYPES)]


@pytest.mark.parametrize("type_name", ALL_TYPES)
def test_every_type_can_be_declared(type_name: str) -> None:
    declaration = one(type_name).get("v")
    assert declaration is not None and declaration.type is not None
    assert declaration.type.name == type_name


def test_type_names_are_case_insensitive() -> None:
    declaration = one(" BigInt[] ").get("v")
    assert declaration is not None and declaration.type == params.ParamType("bigint", True)


def test_untyped_jobs_take_scalars_for_every_placeholder() -> None:
    decls = params.parse_declarations(None, frozenset({"b", "a"}))
    assert not decls.typed
    assert [(d.name, d.type, d.nullable, d.has_default) for d in decls.items] == [
        ("a", None, True, False),
        ("b", None, True, False),
    ]


def test_defaults_are_validated_and_normalised() -> None:
    decls = declare(
        {
            "a": {"type": "numeric", "default": decimal.Decimal("1.50")},
            "b": {"type": "uuid", "default": "0B5D7E4C-1111-2222-3333-444455556666"},
            "c": {"type": "date", "nullable": True, "default": None},
            "d": {"type": "integer", "default": 7.0},
        }
    )
    assert [d.default for d in decls.items] == [
        decimal.Decimal("1.50"),
        uuid.UUID("0b5d7e4c-1111-2222-3333-444455556666"),
        None,
        7,
    ]
    assert all(d.has_default for d in decls.items)


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ({"type": "text", "size": 3}, "unknown keys size"),
        ({"nullable": True}, '"type" is required'),
        ({"type": "varchar"}, "unknown type 'varchar'"),
        ({"type": "int[][]"}, "unknown type"),
        ({"type": 5}, "unknown type"),
        ({"type": "text", "nullable": "yes"}, '"nullable" must be true or false'),
        ({"type": "text", "description": 5}, '"description" must be a string'),
        ({"type": "integer", "default": "100"}, "default is not valid"),
        ({"type": "integer", "default": 2**31}, "out of range"),
        ({"type": "date", "default": None}, "null is not allowed"),
        ({"type": "bigint[]", "default": 5}, "expected an array"),
        ("text", "must be an object"),
    ],
)
def test_refuses_bad_declarations_naming_the_parameter(spec: object, says: str) -> None:
    error = rejection(params.parse_declarations, {"p": spec}, frozenset({"p"}))
    assert error.category == "invalid_parameter"
    assert '"p"' in error.message
    assert says in error.message


def test_declared_but_unused_parameters_are_unknown() -> None:
    error = rejection(params.parse_declarations, EXAMPLE, frozenset({"day", "ids"}))
    assert error.category == "unknown_parameters"
    assert "limit, note" in error.message


def test_used_but_undeclared_parameters_are_missing() -> None:
    used = frozenset({"day", "ids", "limit", "note", "x", "y"})
    error = rejection(params.parse_declarations, EXAMPLE, used)
    assert error.category == "missing_parameters"
    assert "x, y" in error.message


def test_declarations_must_be_an_object() -> None:
    error = rejection(params.parse_declarations, ["day"], frozenset({"day"}))
    assert error.category == "invalid_argument"


# --- binding: accepted values -------------------------------------------------


def test_binds_the_issue_example_with_defaults() -> None:
    bound = params.bind(declare(EXAMPLE), '{"day": "2026-11-01", "ids": [1, 2], "note": null}')
    assert {name: value.value for name, value in bound.items()} == {
        "day": datetime.date(2026, 11, 1),
        "ids": (1, 2),
        "limit": 100,
        "note": None,
    }
    assert bound["ids"].type == params.ParamType("bigint", True)
    assert bound["ids"].name == "ids"


@pytest.mark.parametrize(
    ("type_name", "raw", "expected"),
    [
        ("text", '"héllo \\u20ac \'; --"', "héllo € '; --"),
        ("integer", "-2147483648", -(2**31)),
        ("integer", "2147483647", 2**31 - 1),
        ("integer", "5.0", 5),
        ("integer", "1E+2", 100),
        ("bigint", "-9223372036854775808", -(2**63)),
        ("bigint", "9223372036854775807", 2**63 - 1),
        ("numeric", "123456789012345678901234567890.123456789",
         decimal.Decimal("123456789012345678901234567890.123456789")),
        ("numeric", "1E+400", decimal.Decimal("1E+400")),
        ("numeric", "-0.000", decimal.Decimal("-0.000")),
        ("boolean", "true", True),
        ("boolean", "false", False),
        ("date", '"2024-02-29"', datetime.date(2024, 2, 29)),
        ("date", '"0001-01-01"', datetime.date(1, 1, 1)),
        ("uuid", '"0B5D7E4C-1111-2222-3333-444455556666"',
         uuid.UUID("0b5d7e4c-1111-2222-3333-444455556666")),
        ("text[]", '["a", "", "b"]', ("a", "", "b")),
        ("integer[]", "[]", ()),
        ("date[]", '["2026-01-01"]', (datetime.date(2026, 1, 1),)),
    ],
)
def test_binds_and_normalises_values(type_name: str, raw: str, expected: object) -> None:
    value = bind_raw(type_name, raw)
    assert value == expected
    assert type(value) is type(expected)


def test_numbers_keep_every_digit() -> None:
    value = bind_raw("numeric", "0.1000000000000000000000000000000000000001")
    assert str(value) == "0.1000000000000000000000000000000000000001"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('"2026-11-01T10:00:00Z"', "2026-11-01 10:00:00+00:00"),
        ('"2026-11-01t10:00z"', "2026-11-01 10:00:00+00:00"),
        ('"2026-11-01 10:00:00+02:00"', "2026-11-01 08:00:00+00:00"),
        ('"2026-11-01T10:00:00.5-0330"', "2026-11-01 13:30:00.500000+00:00"),
        ('"2026-11-01T23:30:00-01"', "2026-11-02 00:30:00+00:00"),
        ('"2026-11-01T10:00:00.123456+00:00"', "2026-11-01 10:00:00.123456+00:00"),
    ],
)
def test_timestamps_are_normalised_to_utc(raw: str, expected: str) -> None:
    value = bind_raw("timestamptz", raw)
    assert isinstance(value, datetime.datetime)
    assert value.utcoffset() == datetime.timedelta(0)
    assert value.isoformat(sep=" ") == expected


def test_jsonb_is_kept_exactly_as_canonical_text() -> None:
    raw = '{"b": [1.50, 1e3, -0, "x\\"y", null, true], "a": {"\\u00e9": 1e400}}'
    value = bind_raw("jsonb", raw)
    assert value == (
        '{"b": [1.50, 1000, 0, "x\\"y", null, true], "a": {"é": 1' + "0" * 400 + "}}"
    )
    assert bind_raw("jsonb", '"just a string"') == '"just a string"'
    assert bind_raw("jsonb", "[]") == "[]"


def test_jsonb_arrays_hold_any_json_values() -> None:
    assert bind_raw("jsonb[]", '[{"a": 1}, [2], "x"]') == ('{"a": 1}', "[2]", '"x"')


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('"text"', "text"),
        ("-12.50", decimal.Decimal("-12.50")),
        ("true", True),
        ("null", None),
    ],
)
def test_untyped_parameters_take_scalars(raw: str, expected: object) -> None:
    decls = params.parse_declarations(None, frozenset({"v"}))
    bound = params.bind(decls, '{"v": ' + raw + "}")["v"]
    assert bound.value == expected
    assert bound.type is None


def test_nullable_parameters_take_null() -> None:
    assert bind_raw("date", "null", nullable=True) is None


# --- binding: refused values ------------------------------------------------


@pytest.mark.parametrize("raw", ["[]", '"x"', "3", "null", "true"])
def test_values_must_be_a_json_object(raw: str) -> None:
    error = rejection(params.bind, declare(EXAMPLE), raw)
    assert error.category == "invalid_argument"
    assert "JSON object" in error.message


def test_values_must_be_json() -> None:
    assert rejection(params.bind, declare(EXAMPLE), "{").category == "invalid_argument"


def test_unknown_keys_are_refused() -> None:
    submitted = '{"day": "2026-01-01", "ids": [], "dya": 1, "x": 2}'
    error = rejection(params.bind, declare(EXAMPLE), submitted)
    assert error.category == "unknown_parameters"
    assert "dya, x" in error.message
    assert error.hint == "this job takes: day, ids, limit, note"


def test_missing_values_are_listed_in_one_error() -> None:
    error = rejection(params.bind, declare(EXAMPLE), "{}")
    assert error.category == "missing_parameters"
    assert error.message == "missing values for parameters: day, ids, note"


def test_untyped_values_are_all_required() -> None:
    decls = params.parse_declarations(None, frozenset({"a", "b"}))
    error = rejection(params.bind, decls, '{"a": 1}')
    assert error.category == "missing_parameters"
    assert "b" in error.message


@pytest.mark.parametrize(
    ("type_name", "raw", "says"),
    [
        ("integer", "NaN", "NaN"),
        ("numeric", "Infinity", "Infinity"),
        ("numeric", "-Infinity", "-Infinity"),
        ("jsonb", '{"a": [NaN]}', "NaN"),
        ("integer", "2147483648", "out of range for integer"),
        ("integer", "-2147483649", "out of range for integer"),
        ("bigint", "9223372036854775808", "out of range for bigint"),
        ("bigint", "-9223372036854775809", "out of range for bigint"),
        ("bigint", "1e999999999", "out of range for bigint"),
        ("integer", "true", "expected a number, got a boolean"),
        ("bigint", "false", "expected a number, got a boolean"),
        ("numeric", "true", "expected a number, got a boolean"),
        ("integer", "1.5", "integral"),
        ("bigint", "1e-1", "integral"),
        ("integer", '"5"', "expected a number, got a string"),
        ("numeric", '"1.5"', "expected a number, got a string"),
        ("numeric", "1e131072", "131073 digits before the decimal point"),
        ("numeric", "1e-16384", "16384 digits after the decimal point"),
        ("boolean", "1", "expected true or false, got a number"),
        ("boolean", '"true"', "expected true or false, got a string"),
        ("text", "5", "expected a string, got a number"),
        ("text", '{"a": 1}', "expected a string, got an object"),
        ("integer", '{"a": 1}', "expected a number, got an object"),
        ("text", '["a"]', "expected a single text value, got an array"),
        ("bigint", "[1]", "expected a single bigint value, got an array"),
        ("bigint[]", "1", "expected an array of bigint, got a number"),
        ("text[]", '"a"', "expected an array of text, got a string"),
        ("bigint[]", "[1, null]", "element 1 is null"),
        ("bigint[]", "[[1]]", "element 0: expected a single bigint value, got an array"),
        ("bigint[]", '[1, "2"]', "element 1: expected a number, got a string"),
        ("text", '"a\\u0000b"', "U+0000"),
        ("text[]", '["ok", "a\\u0000"]', "element 1: strings may not contain the character U+0000"),
        ("jsonb", '{"a": "\\u0000"}', "U+0000"),
        ("jsonb", '{"\\u0000": 1}', "U+0000"),
        ("text", '"\\ud800"', "lone surrogate"),
        ("jsonb", '["\\udc00"]', "lone surrogate"),
        ("date", '"2026-02-30"', "not a valid date"),
        ("date", '"2026-1-1"', "YYYY-MM-DD"),
        ("date", '"26-01-01"', "YYYY-MM-DD"),
        ("date", '"2026-01-01T00:00"', "YYYY-MM-DD"),
        ("date", '"２０２６-01-01"', "YYYY-MM-DD"),
        ("date", "20260101", "expected a date written YYYY-MM-DD, got a number"),
        ("timestamptz", '"2026-11-01T10:00:00"', "no UTC offset"),
        ("timestamptz", '"2026-11-01 10:00"', "no UTC offset"),
        ("timestamptz", '"2026-11-01T10:00:00.1234567Z"', "more than 6 fractional digits"),
        ("timestamptz", '"2026-11-01T10:00:00+16:00"', "invalid UTC offset"),
        ("timestamptz", '"2026-11-01T25:00:00Z"', "not a valid timestamp"),
        ("timestamptz", '"0001-01-01T00:00:00+01:00"', "not a valid timestamp"),
        ("timestamptz", '"yesterday"', "expected a timestamp"),
        ("uuid", '"0b5d7e4c111122223333444455556666"', "expected a UUID"),
        ("uuid", '"{0b5d7e4c-1111-2222-3333-444455556666}"', "expected a UUID"),
        ("uuid", '"0b5d7e4c-1111-2222-3333-44445555666g"', "expected a UUID"),
        ("integer", "null", "null is not allowed"),
        ("jsonb", "null", "null is not allowed"),
    ],
)
def test_refuses_bad_values_naming_the_parameter(type_name: str, raw: str, says: str) -> None:
    error = invalid(type_name, raw)
    assert says in error.message


@pytest.mark.parametrize("raw", ['{"a": 1}', "[1]", "NaN", "1e131072", '"\\u0000"'])
def test_untyped_parameters_refuse_non_scalars_and_bad_scalars(raw: str) -> None:
    decls = params.parse_declarations(None, frozenset({"v"}))
    error = rejection(params.bind, decls, '{"v": ' + raw + "}")
    assert error.category == "invalid_parameter"
    assert '"v"' in error.message


def test_values_over_the_size_limit_are_refused() -> None:
    just_fits = "x" * (params.MAX_VALUE_BYTES - 2)  # the two JSON quotes count
    assert bind_one("text", just_fits) == just_fits
    error = invalid("text", json.dumps("x" * (params.MAX_VALUE_BYTES - 1)))
    assert f"at most {params.MAX_VALUE_BYTES}" in error.message
    invalid("jsonb", json.dumps({"a": ["é" * (params.MAX_VALUE_BYTES // 2)]}))
    invalid("text[]", json.dumps(["x" * 1000] * 1100))


def test_several_bad_values_are_reported_together() -> None:
    decls = declare({"a": {"type": "integer"}, "b": {"type": "date"}, "c": {"type": "text"}})
    error = rejection(params.bind, decls, '{"a": true, "b": "tomorrow", "c": "fine"}')
    assert error.category == "invalid_parameter"
    assert error.message == 'invalid values for parameters "a", "b"'
    assert error.detail is not None
    lines = error.detail.split("\n")
    assert lines[0].startswith('"a": expected a number')
    assert lines[1].startswith('"b": expected a date')


def test_long_bad_values_are_cut_short_in_messages() -> None:
    error = invalid("date", json.dumps("9" * 10_000))
    assert len(error.message) < 200


# --- JSON helpers -------------------------------------------------------------


def test_loads_json_keeps_numbers_exact_and_marks_non_finite() -> None:
    decoded = params.loads_json('{"a": 1, "b": 0.1, "c": NaN, "d": -Infinity}')
    assert decoded == {
        "a": decimal.Decimal(1),
        "b": decimal.Decimal("0.1"),
        "c": params.NonFinite("NaN"),
        "d": params.NonFinite("-Infinity"),
    }


@pytest.mark.parametrize(
    ("number", "text"),
    [
        ("1E+3", "1000"),
        ("-1.50", "-1.50"),
        ("-0", "0"),
        ("-0.00", "0.00"),
        ("1E-7", "0.0000001"),
        ("123456789012345678901234567890.123456789", "123456789012345678901234567890.123456789"),
    ],
)
def test_decimal_text_is_positional_and_exact(number: str, text: str) -> None:
    assert params.decimal_text(decimal.Decimal(number)) == text
