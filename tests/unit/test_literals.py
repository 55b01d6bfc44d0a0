"""Unit tests for jobledger.server.literals: the SQL literal of one bound value.

The forms are those of the module's docstring.  The property tests read each
literal back with PostgreSQL's own grammar (pglast's ``parse_sql``, the AST
objects, independent of jobledger's JSON decoding) and check that it is one
constant (or a CAST of one, or a CAST of an ARRAY of them) whose value is
exactly the value, and that it reads the same under both settings of
standard_conforming_strings: no plain '...' string holds a backslash, and
escape strings decode (by PostgreSQL's documented rules, written out here)
to the same text either way.
"""

from __future__ import annotations

import datetime
import decimal
import json
import uuid
from typing import Any

import hypothesis
import hypothesis.strategies as st
import pytest

from jobledger.server import literals, params, pgparse
from tests import strategies

SETTINGS = hypothesis.settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[hypothesis.HealthCheck.too_slow, hypothesis.HealthCheck.data_too_large],
)

ALL_TYPES = [*params.SCALAR_TYPES, *(f"{t}[]" for t in params.SCALAR_TYPES)]

# The type name each CAST reads as in PostgreSQL's grammar.
GRAMMAR_TYPES = {
    "text": ("text",),
    "integer": ("pg_catalog", "int4"),
    "bigint": ("pg_catalog", "int8"),
    "numeric": ("pg_catalog", "numeric"),
    "boolean": ("pg_catalog", "bool"),
    "date": ("date",),
    "timestamptz": ("timestamptz",),
    "uuid": ("uuid",),
    "jsonb": ("jsonb",),
}


def bound(type_name: str | None, value: object) -> params.BoundValue:
    """``value`` (decoded JSON) bound as parameter v of ``type_name`` (None: untyped)."""
    declared = None if type_name is None else {"v": {"type": type_name, "nullable": True}}
    decls = params.parse_declarations(declared, frozenset({"v"}))
    return params.bind(decls, strategies.submitted("v", value))["v"]


def bound_raw(type_name: str | None, raw: str) -> params.BoundValue:
    declared = None if type_name is None else {"v": {"type": type_name, "nullable": True}}
    decls = params.parse_declarations(declared, frozenset({"v"}))
    return params.bind(decls, '{"v": ' + raw + "}")["v"]


# --- PostgreSQL's reading of string constants, by its documentation ----------

_SIMPLE_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def pg_string(source: str, standard_conforming_strings: bool) -> str:
    """The text PostgreSQL's lexer gives a '...' or E'...' constant.

    Plain strings process backslash escapes only when the setting is off;
    E'...' strings always do.
    """
    prefix = source[: source.index("'")].upper()
    body = source[len(prefix) + 1 : -1]
    assert prefix in ("", "E"), source
    if prefix == "E" or not standard_conforming_strings:
        return _unescape(body)
    return body.replace("''", "'")


def _unescape(body: str) -> str:
    out = bytearray()
    index = 0
    while index < len(body):
        char = body[index]
        if char == "'":
            assert body[index + 1] == "'", body
            out += b"'"
            index += 2
        elif char != "\\":
            out += char.encode("utf-8")
            index += 1
        else:
            index = _escape(body, index + 1, out)
    return out.decode("utf-8")


def _escape(body: str, index: int, out: bytearray) -> int:
    char = body[index]
    if char in _SIMPLE_ESCAPES:
        out += _SIMPLE_ESCAPES[char].encode()
        return index + 1
    if char in "01234567":
        digits = _take(body, index, "01234567", 3)
        out.append(int(digits, 8) & 0xFF)
        return index + len(digits)
    hexdigits = "0123456789abcdefABCDEF"
    if char == "x" and _take(body, index + 1, hexdigits, 2):
        digits = _take(body, index + 1, hexdigits, 2)
        out.append(int(digits, 16))
        return index + 1 + len(digits)
    if char in "uU":
        width = 4 if char == "u" else 8
        digits = _take(body, index + 1, hexdigits, width)
        assert len(digits) == width, body
        out += chr(int(digits, 16)).encode("utf-8")
        return index + 1 + width
    out += char.encode("utf-8")
    return index + 1


def _take(body: str, index: int, allowed: str, limit: int) -> str:
    end = index
    while end < len(body) and end - index < limit and body[end] in allowed:
        end += 1
    return body[index:end]


def test_pg_string_decoder_follows_the_documentation() -> None:
    assert pg_string("'a\\nb'", True) == "a\\nb"
    assert pg_string("'a\\nb'", False) == "a\nb"
    assert pg_string("E'a\\\\b''c\\x41\\101\\u00e9\\v'", True) == "a\\b'cAAév"


def string_sources(sql: str) -> list[str]:
    """The source text of every string constant PostgreSQL's lexer finds in ``sql``."""
    parser = pgparse.pglast_parser()
    return [sql[t.start : t.end + 1] for t in parser.scan(sql) if t.name == "SCONST"]


def assert_same_under_both_settings(sql: str) -> None:
    for source in string_sources(sql):
        if source.startswith("'"):
            assert "\\" not in source, source
        assert pg_string(source, True) == pg_string(source, False), source


# --- reading a literal back with pglast ------------------------------------------


def read_back(text: str) -> Any:
    """The one expression PostgreSQL's grammar reads in ``SELECT <text>``."""
    parser = pgparse.pglast_parser()
    statements = parser.parse_sql("SELECT " + text)
    assert len(statements) == 1
    stmt = statements[0].stmt
    assert type(stmt).__name__ == "SelectStmt"
    assert len(stmt.targetList) == 1 and stmt.fromClause is None and stmt.whereClause is None
    return stmt.targetList[0].val


def constant(node: Any) -> tuple[str, object]:
    """(kind, value) of one A_Const node: ("null", None), ("integer", int),
    ("number", Decimal from its text), ("string", str) or ("boolean", bool)."""
    assert type(node).__name__ == "A_Const", node
    if node.isnull:
        return ("null", None)
    value = node.val
    kind = type(value).__name__
    if kind == "Integer":
        return ("integer", value.ival)
    if kind == "Float":
        text = value.fval
        assert all(c in "-0123456789." for c in text), text
        return ("number", decimal.Decimal(text))
    if kind == "String":
        return ("string", value.sval)
    assert kind == "Boolean", node
    return ("boolean", value.boolval)


def cast_of(node: Any, type_name: str) -> Any:
    """The argument of a CAST to ``type_name`` (e.g. ``date[]``)."""
    assert type(node).__name__ == "TypeCast", node
    base = type_name.removesuffix("[]")
    names = tuple(n.sval for n in node.typeName.names)
    assert names == GRAMMAR_TYPES[base], names
    bounds = node.typeName.arrayBounds
    assert (bounds is not None and len(bounds) == 1) == type_name.endswith("[]"), bounds
    return node.arg


def same_number(got: object, want: decimal.Decimal) -> bool:
    """Equal and with numeric's scale (digits after the point) of ``want``."""
    if isinstance(got, int):
        got = decimal.Decimal(got)
    assert isinstance(got, decimal.Decimal)
    scale = max(0, -want.as_tuple().exponent)
    return got == want and max(0, -got.as_tuple().exponent) == scale


def assert_scalar(node: Any, base: str, value: object) -> None:
    """``node`` is one constant standing for submitted ``value`` of type ``base``."""
    kind, read = constant(node)
    if base == "boolean":
        assert (kind, read) == ("boolean", value)
    elif base in ("integer", "bigint"):
        assert kind in ("integer", "number") and same_number(read, value), (read, value)
    elif base == "numeric":
        assert kind in ("integer", "number") and same_number(read, value), (read, value)
    else:
        assert kind == "string", node
        if base == "text":
            assert read == value
        elif base == "date":
            assert read == value
        elif base == "timestamptz":
            assert isinstance(read, str) and read.endswith("+00:00")
            assert datetime.datetime.fromisoformat(read) == datetime.datetime.fromisoformat(
                str(value).replace("Z", "+00:00")
            )
        elif base == "uuid":
            assert read == str(uuid.UUID(str(value)))
        else:
            assert base == "jsonb"
            assert params.loads_json(read) == value


def assert_literal_is_exactly(type_name: str | None, value: object) -> str:
    """The literal of ``value`` passes literals.check, reads back in PostgreSQL's
    grammar as exactly that value, and the same under both settings."""
    b = bound(type_name, value)
    text = literals.literal(b)
    assert literals.check(b, text) is None
    assert text == literals.write(b)
    assert_same_under_both_settings("SELECT " + text)
    node = read_back(text)
    if type_name is None:
        kind, read = constant(node)
        if value is None:
            assert kind == "null"
        elif isinstance(value, bool):
            assert (kind, read) == ("boolean", value)
        elif isinstance(value, str):
            assert (kind, read) == ("string", value)
            assert value in {pg_string(s, False) for s in string_sources(text)}
        else:
            assert kind in ("integer", "number") and same_number(read, value), (text[:80], read, value)
            if value < 0:
                assert text.startswith("(-") and text.endswith(")")
        return text
    inner = cast_of(node, type_name)
    if value is None:
        assert constant(inner) == ("null", None)
    elif type_name.endswith("[]"):
        assert type(inner).__name__ == "A_ArrayExpr", inner
        elements = inner.elements or ()
        assert len(elements) == len(value)
        for element, item in zip(elements, value):
            assert_scalar(element, type_name[:-2], item)
    else:
        assert_scalar(inner, type_name, value)
    return text


# --- the forms -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_name", "raw", "sql"),
    [
        ("text", '"abc"', "CAST('abc' AS TEXT)"),
        ("text", '"it\'s"', "CAST('it''s' AS TEXT)"),
        ("text", '""', "CAST('' AS TEXT)"),
        ("text", json.dumps("C:\\dir\\'x'"), "CAST(E'C:\\\\dir\\\\''x''' AS TEXT)"),
        ("text", json.dumps("\\\x0b"), "CAST(E'\\\\\x0b' AS TEXT)"),
        ("integer", "42", "CAST(42 AS INT)"),
        ("integer", "-2147483648", "CAST(-2147483648 AS INT)"),
        ("integer", "5.0", "CAST(5 AS INT)"),
        ("bigint", "42", "CAST(42 AS BIGINT)"),
        ("bigint", "-9223372036854775808", "CAST(-9223372036854775808 AS BIGINT)"),
        ("numeric", "123456789012345678901234567890.123456789",
         "CAST(123456789012345678901234567890.123456789 AS DECIMAL)"),
        ("numeric", "-0.50", "CAST(-0.50 AS DECIMAL)"),
        ("numeric", "-0", "CAST(0 AS DECIMAL)"),
        ("numeric", "1E+400", "CAST(1" + "0" * 400 + " AS DECIMAL)"),
        ("numeric", "-1.5e-3", "CAST(-0.0015 AS DECIMAL)"),
        ("boolean", "true", "CAST(TRUE AS BOOLEAN)"),
        ("boolean", "false", "CAST(FALSE AS BOOLEAN)"),
        ("date", '"2026-11-01"', "CAST('2026-11-01' AS DATE)"),
        ("timestamptz", '"2026-11-01T10:00:00+02:00"', "CAST('2026-11-01 08:00:00+00:00' AS TIMESTAMPTZ)"),
        ("uuid", '"0B5D7E4C-1111-2222-3333-444455556666"', "CAST('0b5d7e4c-1111-2222-3333-444455556666' AS UUID)"),
        ("jsonb", '{"a": 1}', "CAST('{\"a\": 1}' AS JSONB)"),
        ("jsonb", '{"a": "x\\ny"}', "CAST(E'{\"a\": \"x\\\\ny\"}' AS JSONB)"),
        ("bigint[]", "[1, -2, 3]", "CAST(ARRAY[1, -2, 3] AS BIGINT[])"),
        ("text[]", '["a", "b\\\\c"]', "CAST(ARRAY['a', E'b\\\\c'] AS TEXT[])"),
        ("date[]", "[]", "CAST(ARRAY[] AS DATE[])"),
        ("boolean[]", "[true, false]", "CAST(ARRAY[TRUE, FALSE] AS BOOLEAN[])"),
        ("jsonb[]", '[{"a": [1]}, 2]', "CAST(ARRAY['{\"a\": [1]}', '2'] AS JSONB[])"),
        ("numeric[]", "[1.50, -2]", "CAST(ARRAY[1.50, -2] AS DECIMAL[])"),
        ("uuid[]", '["0b5d7e4c-1111-2222-3333-444455556666"]',
         "CAST(ARRAY['0b5d7e4c-1111-2222-3333-444455556666'] AS UUID[])"),
        ("timestamptz[]", '["2026-01-01T00:00:00Z"]', "CAST(ARRAY['2026-01-01 00:00:00+00:00'] AS TIMESTAMPTZ[])"),
        ("integer[]", "[]", "CAST(ARRAY[] AS INT[])"),
    ],
)
def test_typed_values_are_one_cast_constant(type_name: str, raw: str, sql: str) -> None:
    b = bound_raw(type_name, raw)
    assert literals.write(b) == sql
    assert literals.literal(b) == sql
    assert literals.check(b, sql) is None


@pytest.mark.parametrize("type_name", ALL_TYPES)
def test_typed_null_is_a_cast_null(type_name: str) -> None:
    b = bound_raw(type_name, "null")
    assert literals.literal(b) == f"CAST(NULL AS {literals.sql_type(b.type)})"
    assert constant(cast_of(read_back(literals.literal(b)), type_name)) == ("null", None)


def test_sql_types() -> None:
    assert {t: literals.sql_type(params.parse_type(t)) for t in ("bigint[]", "numeric", "integer[]")} == {
        "bigint[]": "BIGINT[]", "numeric": "DECIMAL", "integer[]": "INT[]"}


@pytest.mark.parametrize(
    ("raw", "sql"),
    [
        ('"abc"', "'abc'"),
        ('"it\'s"', "'it''s'"),
        ('"a\\\\b"', "E'a\\\\b'"),
        ("42", "42"),
        ("-42", "(-42)"),
        ("1.50", "1.50"),
        ("-1.50", "(-1.50)"),
        ("1e3", "1000"),
        ("-0", "0"),
        ("true", "TRUE"),
        ("false", "FALSE"),
        ("null", "NULL"),
    ],
)
def test_untyped_values_are_plain_constants(raw: str, sql: str) -> None:
    b = bound_raw(None, raw)
    assert literals.literal(b) == sql
    assert literals.check(b, sql) is None


@pytest.mark.parametrize(
    ("type_name", "raw", "text"),
    [
        (None, '"a\\\\b"', "'a\\b'"),  # a backslash in a plain string
        (None, '"it\'s"', "'it's'"),  # an unescaped quote
        (None, '"x"', "'x' || 'y'"),
        (None, '"x"', "'y'"),
        (None, "-42", "-42"),  # a bare negative number
        (None, "42", "(42)"),
        (None, "42", "42.0"),
        (None, "true", "'true'"),
        (None, "null", "'NULL'"),
        ("text", '"x"', "'x'"),
        ("text", '"x"', "CAST('x' AS VARCHAR)"),
        ("text", '"x"', "CAST('x' AS TEXT)::int"),
        ("text", '"x"', "CAST( 'x' AS TEXT)"),
        ("text", '"a\\\\b"', "CAST('a\\b' AS TEXT)"),
        ("text", '"a\\\\b"', "CAST(E'a\\b' AS TEXT)"),
        ("integer", "1", "CAST(1 AS BIGINT)"),
        ("integer", "1", "CAST(2 AS INT)"),
        ("integer", "1", "CAST('1' AS INT)"),
        ("numeric", "1.50", "CAST(1.5 AS DECIMAL)"),
        ("date", "null", "CAST('2026-01-01' AS DATE)"),
        ("date", '"2026-01-01"', "CAST(NULL AS DATE)"),
        ("bigint[]", "[1, 2]", "CAST(ARRAY[1] AS BIGINT[])"),
        ("bigint[]", "[1, 2]", "CAST(ARRAY[1,2] AS BIGINT[])"),
        ("bigint[]", "[1, 2]", "CAST(ARRAY[1, 2] AS BIGINT)"),
        ("text[]", '["a"]', "CAST(ARRAY['a'] AS TEXT[]); DROP TABLE t"),
        ("boolean", "true", "CAST(TRUE AS BOOLEAN) OR TRUE"),
    ],
)
def test_check_refuses_any_other_text(type_name: str | None, raw: str, text: str) -> None:
    assert literals.check(bound_raw(type_name, raw), text) is not None


def test_a_failed_check_is_a_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    b = bound_raw("text", '"it\'s"')
    monkeypatch.setattr(literals, "string", lambda text: "'" + text + "'")
    literals._checked.clear()
    with pytest.raises(RuntimeError, match="failed its check"):
        literals.literal(b)
    monkeypatch.undo()
    literals._checked.clear()


@pytest.mark.parametrize(
    ("type_name", "first", "second", "second_sql"),
    [
        # Equal as Python values, written differently: the kept text of the
        # first must not stand for the second.
        ("numeric", "1.0", "1.00", "CAST(1.00 AS DECIMAL)"),
        (None, "true", "1", "1"),
        (None, "1", "1.0", "1.0"),
        ("numeric[]", "[1.0]", "[1.00]", "CAST(ARRAY[1.00] AS DECIMAL[])"),
    ],
)
def test_kept_literals_are_kept_apart_when_values_compare_equal(
    type_name: str | None, first: str, second: str, second_sql: str
) -> None:
    literals.literal(bound_raw(type_name, first))
    assert literals.literal(bound_raw(type_name, second)) == second_sql


# --- properties ---------------------------------------------------------------------


@SETTINGS
@hypothesis.given(st.sampled_from(params.SCALAR_TYPES).flatmap(
    lambda name: st.tuples(st.just(name), strategies.typed_values(name))))
def test_any_scalar_value_is_exactly_one_constant(typed: tuple[str, object]) -> None:
    assert_literal_is_exactly(*typed)


@SETTINGS
@hypothesis.given(st.sampled_from(params.SCALAR_TYPES).flatmap(
    lambda name: st.tuples(st.just(name + "[]"), strategies.typed_values(name + "[]"))))
def test_any_array_is_one_array_of_exactly_those_constants(typed: tuple[str, list[object]]) -> None:
    assert_literal_is_exactly(*typed)


@SETTINGS
@hypothesis.given(strategies.untyped_values())
def test_any_untyped_value_is_exactly_one_constant(value: object) -> None:
    assert_literal_is_exactly(None, value)


@SETTINGS
@hypothesis.given(strategies.text_values())
def test_any_text_is_exactly_that_string(text: str) -> None:
    assert_literal_is_exactly("text", text)
    assert_literal_is_exactly(None, text)


@SETTINGS
@hypothesis.given(
    st.booleans(), st.integers(min_value=-400, max_value=400), st.integers(min_value=1, max_value=10**30)
)
def test_numbers_with_exponents_are_written_in_full(negative: bool, exponent: int, mantissa: int) -> None:
    text = f"{'-' if negative else ''}{mantissa}E{exponent:+d}"
    b = bound_raw("numeric", text)
    literal = literals.literal(b)
    number = literal.removeprefix("CAST(").removesuffix(" AS DECIMAL)")
    assert set(number) <= set("-0123456789."), number
    assert same_number(constant(cast_of(read_back(literal), "numeric"))[1], decimal.Decimal(text))


@pytest.mark.parametrize("type_name", [None, *ALL_TYPES])
def test_nulls_of_every_type(type_name: str | None) -> None:
    assert_literal_is_exactly(type_name, None)


@pytest.mark.parametrize("value", ["x" * 200_000, "\\'" * 50_000])
def test_very_long_strings_are_one_constant(value: str) -> None:
    assert_literal_is_exactly("text", value)
    assert_literal_is_exactly(None, value)
