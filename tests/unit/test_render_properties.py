"""Property tests: any valid value renders as exactly that one constant, under any
standard_conforming_strings setting.

Each test renders a template, reads the SQL back with sqlglot's own PostgreSQL
dialect, walks it alongside the template's tree (everything but the
placeholders must be the same) and checks the node found at each placeholder
independently of how render built it: its kind, its type and the value it
denotes.  String constants are also decoded the way PostgreSQL's lexer does,
with standard_conforming_strings on and off, and must give the same text.
"""

from __future__ import annotations

import datetime
import decimal
import functools
import uuid

import hypothesis
import hypothesis.strategies as st
import pytest
import sqlglot
import sqlglot.expressions as exp
from sqlglot import tokens as sqlglot_tokens

from jobledger import params, render, template
from tests import strategies

SETTINGS = hypothesis.settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[hypothesis.HealthCheck.too_slow, hypothesis.HealthCheck.data_too_large],
)

TEMPLATES = (
    "SELECT {v}",
    "SELECT a FROM t WHERE b = {v} AND c = 1",
    "SELECT a FROM t WHERE b IN (1, {v}) OR b = {v}",
    "SELECT coalesce({v}, a), CASE WHEN a THEN {v} END FROM t",
    "WITH w AS (SELECT {v} AS x) SELECT x FROM w -- {v} is not here\n",
    "SELECT f(a, {v}) FROM t ORDER BY a + {v}",
)
ARRAY_TEMPLATES = (
    "SELECT a FROM t WHERE b = ANY({v})",
    "SELECT {v}, cardinality({v})",
)

STRING_TOKENS = {
    sqlglot_tokens.TokenType.STRING,
    sqlglot_tokens.TokenType.BYTE_STRING,
    sqlglot_tokens.TokenType.NATIONAL_STRING,
    sqlglot_tokens.TokenType.HEREDOC_STRING,
    sqlglot_tokens.TokenType.RAW_STRING,
    sqlglot_tokens.TokenType.UNICODE_STRING,
}


# --- PostgreSQL's reading of string constants --------------------------------

_SIMPLE_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def pg_string(source: str, standard_conforming_strings: bool) -> str:
    """The text PostgreSQL's lexer gives a string constant, as its docs describe.

    Plain '...' strings process backslash escapes only when
    standard_conforming_strings is off; E'...' strings always do; dollar-quoted
    strings never.  U&'...' is refused when the setting is off.
    """
    if source.startswith("$"):
        tag_end = source.index("$", 1) + 1
        return source[tag_end : -tag_end]
    prefix = source[: source.index("'")].upper()
    body = source[len(prefix) + 1 : -1]
    if prefix == "U&":
        raise AssertionError("U& strings are rejected when standard_conforming_strings is off")
    if prefix == "E" or not standard_conforming_strings:
        return _pg_unescape(body)
    assert prefix in ("", "N"), source
    return body.replace("''", "'")


def _pg_unescape(body: str) -> str:
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
            index = _pg_escape(body, index + 1, out)
    return out.decode("utf-8")


def _pg_escape(body: str, index: int, out: bytearray) -> int:
    """Decode the escape after a backslash at body[index]; return the next index."""
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
    assert pg_string("e'a\\\\b''c\\x41\\101\\u00e9\\v'", True) == "a\\b'cAAév"
    assert pg_string("$q$a\\'$q$", False) == "a\\'"


def string_constants(sql: str) -> list[str]:
    tokens = template.DIALECT.tokenize(sql)
    return [sql[t.start : t.end + 1] for t in tokens if t.token_type in STRING_TOKENS]


def assert_same_under_both_settings(sql: str) -> None:
    for source in string_constants(sql):
        assert pg_string(source, True) == pg_string(source, False), source


# --- matching the rendered tree with the template -----------------------------


def values_at_placeholders(pattern: exp.Expr, tree: exp.Expr) -> dict[str, list[exp.Expr]]:
    """The nodes of ``tree`` standing where ``pattern`` has placeholders; everything
    else must be the same (text compared exactly)."""
    found: dict[str, list[exp.Expr]] = {}
    pending: list[tuple[object, object]] = [(pattern, tree)]
    while pending:
        a, b = pending.pop()
        if isinstance(a, exp.Placeholder):
            assert isinstance(b, exp.Expr)
            found.setdefault(a.this, []).append(b)
            continue
        assert type(a) is type(b), (a, b)
        if isinstance(a, exp.Expr):
            assert isinstance(b, exp.Expr)
            keys = _present(a)
            assert keys == _present(b), (a, b)
            pending.extend((a.args[k], b.args[k]) for k in keys)
        elif isinstance(a, list):
            assert isinstance(b, list) and len(a) == len(b)
            pending.extend(zip(a, b))
        else:
            assert a == b
    return found


def _present(node: exp.Expr) -> set[str]:
    """Argument names with a value (sqlglot treats None, False and [] as absent)."""
    return {k for k, v in node.args.items() if v is not None and v is not False and v != []}


@functools.lru_cache(maxsize=None)
def parsed_template(query: str) -> template.Template:
    """Templates are immutable, so the tests parse each one once, as the database layer does."""
    return template.parse_template(query)


@functools.lru_cache(maxsize=None)
def renderer(query: str) -> render.Renderer:
    return render.Renderer(parsed_template(query))


def render_one(query: str, type_name: str | None, value: object) -> tuple[str, list[exp.Expr]]:
    """Render ``value`` for ``{v}``; return the SQL and the nodes found at each ``{v}``."""
    parsed = parsed_template(query)
    declared = None if type_name is None else {"v": {"type": type_name, "nullable": True}}
    decls = params.parse_declarations(declared, parsed.placeholders)
    bound = params.bind(decls, strategies.submitted("v", value))
    sql = render.render(parsed, bound)
    # The renderer submit_job uses (skeleton plus checked literals, some kept
    # from earlier calls) writes exactly what the full render writes.
    fast = renderer(query)
    assert fast.fast
    assert fast.render(bound) == sql
    assert fast.render(bound) == sql
    back = sqlglot.parse_one(sql, read="postgres")
    nodes = values_at_placeholders(parsed.expression, back)["v"]
    assert len(nodes) == query.count("{v}") - query.count("-- {v}")
    assert_same_under_both_settings(sql)
    return sql, nodes


def string_of(node: exp.Expr) -> str:
    """The text a string constant node denotes; plain strings never hold a backslash."""
    assert isinstance(node, (exp.Literal, exp.ByteString)), node
    if isinstance(node, exp.Literal):
        assert node.is_string and "\\" not in node.this
    return node.this


def number_of(node: exp.Expr) -> decimal.Decimal:
    negative = isinstance(node, exp.Neg)
    literal = node.this if negative else node
    assert isinstance(literal, exp.Literal) and not literal.is_string, node
    assert all(c in "0123456789." for c in literal.this), literal.this
    number = decimal.Decimal(literal.this)
    return number.copy_negate() if negative else number  # exact: no context rounding


def same_number(rendered: decimal.Decimal, submitted: decimal.Decimal) -> bool:
    """Equal, with the same number of digits after the point (numeric's scale)."""
    scale = max(0, -submitted.as_tuple().exponent)
    return rendered == submitted and max(0, -rendered.as_tuple().exponent) == scale


def cast_to(node: exp.Expr, type_sql: str) -> exp.Expr:
    assert isinstance(node, exp.Cast), node
    assert node.to.sql("postgres") == type_sql
    return node.this


# --- properties -------------------------------------------------------------


@SETTINGS
@hypothesis.given(st.sampled_from(TEMPLATES), strategies.text_values())
def test_text_renders_as_exactly_that_string(query: str, text: str) -> None:
    sql, nodes = render_one(query, "text", text)
    for node in nodes:
        constant = cast_to(node, "TEXT")
        assert string_of(constant) == text
    sources = string_constants(sql)
    assert sum(pg_string(s, False) == text for s in sources) >= len(nodes)


@SETTINGS
@hypothesis.given(st.sampled_from(TEMPLATES), strategies.untyped_values())
def test_untyped_values_render_as_exactly_that_constant(query: str, value: object) -> None:
    sql, nodes = render_one(query, None, value)
    for node in nodes:
        if value is None:
            assert isinstance(node, exp.Null)
        elif isinstance(value, bool):
            assert isinstance(node, exp.Boolean) and node.this is value
        elif isinstance(value, str):
            assert string_of(node) == value
        else:
            if isinstance(node, exp.Paren):
                node = node.this
                assert isinstance(node, exp.Neg)
            assert same_number(number_of(node), value)


@SETTINGS
@hypothesis.given(
    st.sampled_from(TEMPLATES),
    st.sampled_from(["integer", "bigint", "numeric"]).flatmap(
        lambda name: st.tuples(st.just(name), strategies.typed_values(name))
    ),
)
def test_numbers_render_exactly(query: str, typed: tuple[str, decimal.Decimal]) -> None:
    type_name, value = typed
    _, nodes = render_one(query, type_name, value)
    sql_type = {"integer": "INT", "bigint": "BIGINT", "numeric": "DECIMAL"}[type_name]
    for node in nodes:
        rendered = number_of(cast_to(node, sql_type))
        if type_name == "numeric":
            assert same_number(rendered, value)
        else:
            assert rendered == value and rendered.as_tuple().exponent == 0


@SETTINGS
@hypothesis.given(
    st.sampled_from(TEMPLATES),
    st.booleans(),
    st.integers(min_value=-400, max_value=400),
    st.integers(min_value=1, max_value=10**30),
)
def test_numbers_with_exponents_render_in_full(
    query: str, negative: bool, exponent: int, mantissa: int
) -> None:
    text = f"{'-' if negative else ''}{mantissa}E{exponent:+d}"
    parsed = parsed_template(query)
    decls = params.parse_declarations({"v": {"type": "numeric"}}, parsed.placeholders)
    sql = render.render(parsed, params.bind(decls, '{"v": ' + text + "}"))
    nodes = values_at_placeholders(parsed.expression, sqlglot.parse_one(sql, read="postgres"))
    for node in nodes["v"]:
        assert same_number(number_of(cast_to(node, "DECIMAL")), decimal.Decimal(text))


@SETTINGS
@hypothesis.given(st.sampled_from(TEMPLATES), strategies.date_values())
def test_dates_render_as_iso_strings(query: str, day: str) -> None:
    sql, nodes = render_one(query, "date", day)
    for node in nodes:
        assert string_of(cast_to(node, "DATE")) == day


@SETTINGS
@hypothesis.given(st.sampled_from(TEMPLATES), strategies.timestamptz_values())
def test_timestamps_render_as_the_same_instant_in_utc(query: str, moment: str) -> None:
    sql, nodes = render_one(query, "timestamptz", moment)
    expected = datetime.datetime.fromisoformat(moment.replace("Z", "+00:00"))
    for node in nodes:
        text = string_of(cast_to(node, "TIMESTAMPTZ"))
        assert text.endswith("+00:00")
        assert datetime.datetime.fromisoformat(text) == expected


@SETTINGS
@hypothesis.given(st.sampled_from(TEMPLATES), strategies.uuid_values())
def test_uuids_render_in_lower_case(query: str, value: str) -> None:
    sql, nodes = render_one(query, "uuid", value)
    for node in nodes:
        assert string_of(cast_to(node, "UUID")) == str(uuid.UUID(value))


@SETTINGS
@hypothesis.given(st.sampled_from(TEMPLATES), strategies.typed_values("jsonb"))
def test_jsonb_renders_as_the_same_json(query: str, value: object) -> None:
    sql, nodes = render_one(query, "jsonb", value)
    for node in nodes:
        text = string_of(cast_to(node, "JSONB"))
        assert params.loads_json(text) == value


@SETTINGS
@hypothesis.given(
    st.sampled_from(ARRAY_TEMPLATES),
    st.sampled_from(["text[]", "bigint[]", "numeric[]", "date[]", "boolean[]"]).flatmap(
        lambda name: st.tuples(st.just(name), strategies.typed_values(name))
    ),
)
def test_arrays_render_as_one_array_of_those_elements(
    query: str, typed: tuple[str, list[object]]
) -> None:
    type_name, elements = typed
    sql, nodes = render_one(query, type_name, elements)
    for node in nodes:
        array = cast_to(node, type_name.upper().replace("NUMERIC", "DECIMAL"))
        assert isinstance(array, exp.Array)
        assert len(array.expressions) == len(elements)
        for rendered, submitted in zip(array.expressions, elements):
            if type_name in ("text[]", "date[]"):
                assert string_of(rendered) == submitted
            elif type_name == "boolean[]":
                assert isinstance(rendered, exp.Boolean) and rendered.this is submitted
            else:
                assert same_number(number_of(rendered), submitted)


@SETTINGS
@hypothesis.given(strategies.text_values(max_pieces=6))
def test_braces_inside_a_string_constant_are_never_placeholders(text: str) -> None:
    quoted = "'" + text.replace("'", "''") + "'"
    parsed = template.parse_template(f"SELECT {quoted} AS s, {{real}}")
    assert parsed.placeholders == frozenset({"real"})
    literal = parsed.expression.expressions[0].this
    assert literal.this == text


@pytest.mark.parametrize("value", ["x" * 200_000, "\\'" * 50_000])
def test_very_long_strings_render_as_one_constant(value: str) -> None:
    sql, nodes = render_one("SELECT a FROM t WHERE b = {v}", "text", value)
    assert string_of(cast_to(nodes[0], "TEXT")) == value
