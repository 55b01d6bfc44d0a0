"""Unit tests for jobledger.render: the SQL written for bound values."""

from __future__ import annotations

import json

import pytest
import sqlglot
import sqlglot.expressions as exp

import jobledger.template
from jobledger import params, render, template


def rendered(query: str, declared: dict[str, object] | None, values: dict[str, object]) -> str:
    parsed = template.parse_template(query)
    decls = params.parse_declarations(declared, parsed.placeholders)
    return render.render(parsed, params.bind(decls, json.dumps(values)))


def value_sql(type_name: str | None, raw: str, **extra: object) -> str:
    """The SQL written for one value in ``SELECT {v}``, without the SELECT."""
    parsed = template.parse_template("SELECT {v}")
    declared = None if type_name is None else {"v": {"type": type_name, **extra}}
    decls = params.parse_declarations(declared, parsed.placeholders)
    sql = render.render(parsed, params.bind(decls, '{"v": ' + raw + "}"))
    assert sql.startswith("SELECT ")
    return sql[len("SELECT ") :]


@pytest.mark.parametrize(
    ("type_name", "raw", "sql"),
    [
        ("text", '"abc"', "CAST('abc' AS TEXT)"),
        ("text", '"it\'s"', "CAST('it''s' AS TEXT)"),
        ("text", '""', "CAST('' AS TEXT)"),
        ("integer", "42", "CAST(42 AS INT)"),
        ("integer", "-2147483648", "CAST(-2147483648 AS INT)"),
        ("bigint", "42", "CAST(42 AS BIGINT)"),
        ("bigint", "-9223372036854775808", "CAST(-9223372036854775808 AS BIGINT)"),
        ("numeric", "123456789012345678901234567890.123456789",
         "CAST(123456789012345678901234567890.123456789 AS DECIMAL)"),
        ("numeric", "-0.50", "CAST(-0.50 AS DECIMAL)"),
        ("numeric", "-0", "CAST(0 AS DECIMAL)"),
        ("numeric", "1E+400", "CAST(1" + "0" * 400 + " AS DECIMAL)"),
        ("numeric", "-1.5e-3", "CAST(-0.0015 AS DECIMAL)"),
        ("boolean", "true", "CAST(TRUE AS BOOLEAN)"),
        ("date", '"2026-11-01"', "CAST('2026-11-01' AS DATE)"),
        ("timestamptz", '"2026-11-01T10:00:00+02:00"',
         "CAST('2026-11-01 08:00:00+00:00' AS TIMESTAMPTZ)"),
        ("uuid", '"0B5D7E4C-1111-2222-3333-444455556666"',
         "CAST('0b5d7e4c-1111-2222-3333-444455556666' AS UUID)"),
        ("jsonb", '{"a": 1}', "CAST('{\"a\": 1}' AS JSONB)"),
        ("jsonb", '{"a": "x\\ny"}', "CAST(e'{\"a\": \"x\\\\ny\"}' AS JSONB)"),
        ("bigint[]", "[1, -2, 3]", "CAST(ARRAY[1, -2, 3] AS BIGINT[])"),
        ("text[]", '["a", "b\\\\c"]', "CAST(ARRAY['a', e'b\\\\c'] AS TEXT[])"),
        ("date[]", "[]", "CAST(ARRAY[] AS DATE[])"),
        ("boolean[]", "[true, false]", "CAST(ARRAY[TRUE, FALSE] AS BOOLEAN[])"),
        ("jsonb[]", '[{"a": [1]}, 2]', "CAST(ARRAY['{\"a\": [1]}', '2'] AS JSONB[])"),
        ("uuid[]", '["0b5d7e4c-1111-2222-3333-444455556666"]',
         "CAST(ARRAY['0b5d7e4c-1111-2222-3333-444455556666'] AS UUID[])"),
    ],
)
def test_typed_values_are_one_cast_constant(type_name: str, raw: str, sql: str) -> None:
    assert value_sql(type_name, raw) == sql


@pytest.mark.parametrize("type_name", ["text", "integer", "date", "jsonb", "bigint[]"])
def test_typed_null_is_a_cast_null(type_name: str) -> None:
    sql_type = {"integer": "INT", "bigint[]": "BIGINT[]"}.get(type_name, type_name.upper())
    assert value_sql(type_name, "null", nullable=True) == f"CAST(NULL AS {sql_type})"


@pytest.mark.parametrize(
    ("raw", "sql"),
    [
        ('"abc"', "'abc'"),
        ('"a\\\\b"', "e'a\\\\b'"),
        ("42", "42"),
        ("-42", "(-42)"),
        ("1.50", "1.50"),
        ("1e3", "1000"),
        ("true", "TRUE"),
        ("null", "NULL"),
    ],
)
def test_untyped_values_are_plain_constants(raw: str, sql: str) -> None:
    assert value_sql(None, raw) == sql


def test_defaults_are_rendered() -> None:
    sql = rendered(
        "SELECT a FROM t WHERE d = {day} LIMIT {limit}",
        {"day": {"type": "date"}, "limit": {"type": "integer", "default": 100}},
        {"day": "2026-11-01"},
    )
    assert sql == "SELECT a FROM t WHERE d = CAST('2026-11-01' AS DATE) LIMIT CAST(100 AS INT)"


def test_every_occurrence_of_a_name_gets_the_value() -> None:
    sql = rendered("SELECT {x} AS a, {x} + 1 AS b", None, {"x": 7})
    assert sql == "SELECT 7 AS a, 7 + 1 AS b"


def test_negative_untyped_numbers_keep_their_sign_with_the_number() -> None:
    assert rendered("SELECT {n} ^ 2, 10 - {n}, {n}::text", None, {"n": -3}) == (
        "SELECT POWER((-3), 2), 10 - (-3), CAST((-3) AS TEXT)"
    )


@pytest.mark.parametrize(
    "attack",
    [
        "'; DROP TABLE t; --",
        "\\'; DROP TABLE t; --",
        "$$; DROP TABLE t; $$",
        "*/ DROP TABLE t; /*",
        "{x}",
        "' || (SELECT secret FROM s) || '",
        "\\",
        "''",
        "\n--\n",
        "é€😀\u2028\ufeff",
        "\x01\x0b\x1b\x7f",
        "x" * 100_000,
        "\\'" * 10_000,
    ],
)
@pytest.mark.parametrize("type_name", [None, "text", "jsonb", "text[]"])
def test_injection_attempts_land_as_one_constant(attack: str, type_name: str | None) -> None:
    parsed = template.parse_template("SELECT a FROM t WHERE b = {x} AND c = 1")
    value: object = [attack] if type_name == "text[]" else attack
    declared = None if type_name is None else {"x": {"type": type_name}}
    decls = params.parse_declarations(declared, parsed.placeholders)
    bound = params.bind(decls, json.dumps({"x": value}))
    sql = render.render(parsed, bound)
    back = sqlglot.parse_one(sql, read="postgres")
    assert isinstance(back, exp.Select)
    where = back.args["where"].this
    assert isinstance(where, exp.And)
    assert template.same_tree(where.args["expression"], sqlglot.parse_one("c = 1"))
    constant = where.this.expression
    assert template.same_tree(constant, render.literal_node(bound["x"]))
    assert not list(back.find_all(exp.Drop, exp.Subquery))


def test_strings_with_backslashes_are_escape_strings() -> None:
    assert value_sql("text", json.dumps("C:\\dir\\'x'")) == "CAST(e'C:\\\\dir\\\\''x''' AS TEXT)"


def test_vertical_tab_is_written_as_a_hex_escape_postgresql_reads() -> None:
    # PostgreSQL reads E'\v' as "v"; sqlglot 30.30.0 would write U+000B that way.
    assert value_sql("text", json.dumps("\\\x0b")) == "CAST(e'\\\\\\x0b' AS TEXT)"


def test_rendered_sql_reads_back_as_the_rendered_tree() -> None:
    parsed = template.parse_template(
        "WITH w AS (SELECT * FROM t WHERE d >= {since}) "
        "SELECT id, doc ->> ({key}) FROM w WHERE id = ANY({ids}) AND note LIKE {pattern} "
        "ORDER BY id + {shift} LIMIT {n}"
    )
    declared = {
        "since": {"type": "timestamptz"},
        "key": {"type": "text"},
        "ids": {"type": "bigint[]"},
        "pattern": {"type": "text"},
        "shift": {"type": "integer"},
        "n": {"type": "integer", "default": 10},
    }
    decls = params.parse_declarations(declared, parsed.placeholders)
    bound = params.bind(
        decls,
        json.dumps({"since": "2026-01-01T00:00:00Z", "key": "a\\b", "ids": [1, 2],
                    "pattern": "%'x'%", "shift": -1}),
    )
    sql = render.render(parsed, bound)
    expected_tree = template.substitute(
        parsed.expression, {name: render.literal_node(value) for name, value in bound.items()}
    )
    assert template.same_tree(sqlglot.parse_one(sql, read="postgres"), expected_tree)
    assert sql == (
        "WITH w AS (SELECT * FROM t WHERE d >= CAST('2026-01-01 00:00:00+00:00' AS TIMESTAMPTZ)) "
        "SELECT id, doc ->> (CAST(e'a\\\\b' AS TEXT)) FROM w "
        "WHERE id = ANY(CAST(ARRAY[1, 2] AS BIGINT[])) AND note LIKE CAST('%''x''%' AS TEXT) "
        "ORDER BY id + CAST(-1 AS INT) LIMIT CAST(10 AS INT)"
    )


def test_rendering_never_changes_the_cached_template() -> None:
    query = "SELECT a FROM t WHERE b = {b} AND c IN ({c}, {c})"
    parsed = template.parse_template(query)
    before = parsed.expression.copy()
    decls = params.parse_declarations(None, parsed.placeholders)
    first = render.render(parsed, params.bind(decls, '{"b": 1, "c": "x"}'))
    second = render.render(parsed, params.bind(decls, '{"b": 2, "c": "y"}'))
    assert first == "SELECT a FROM t WHERE b = 1 AND c IN ('x', 'x')"
    assert second == "SELECT a FROM t WHERE b = 2 AND c IN ('y', 'y')"
    assert template.same_tree(parsed.expression, before)
    assert template.same_tree(parsed.expression, template.parse_template(query).expression)
    assert len(list(parsed.expression.find_all(exp.Placeholder))) == 3
    assert template.to_sql(parsed.expression) == parsed.canonical_sql


def test_a_missing_bound_value_is_a_bug() -> None:
    parsed = template.parse_template("SELECT {a}, {b}")
    decls = params.parse_declarations(None, frozenset({"a"}))
    with pytest.raises(RuntimeError, match="no bound value for placeholders: b"):
        render.render(parsed, params.bind(decls, '{"a": 1}'))


def test_sql_that_does_not_read_back_is_a_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed = template.parse_template("SELECT {a}")
    bound = params.bind(params.parse_declarations(None, parsed.placeholders), '{"a": "x"}')
    monkeypatch.setattr(jobledger.template, "to_sql", lambda tree: "SELECT 'y'")
    with pytest.raises(RuntimeError, match="different tree"):
        render.render(parsed, bound)


def test_sql_with_plain_backslash_strings_is_a_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed = template.parse_template("SELECT {a}")
    bound = params.bind(params.parse_declarations(None, parsed.placeholders), '{"a": "x\\\\y"}')
    monkeypatch.setattr(jobledger.template, "string_node", exp.Literal.string)
    with pytest.raises(RuntimeError, match="backslash"):
        render.render(parsed, bound)


def _shapes(node: exp.Expr) -> set[str]:
    """The kinds of constant a node is made of, ignoring text and cast target types.

    An array contributes its own shape and one "element:" shape per element kind.
    """
    if isinstance(node, exp.Literal):
        return {f"Literal:{'string' if node.is_string else 'number'}"}
    if isinstance(node, exp.Array):
        elements = {f"element:{s}" for e in node.expressions for s in _shapes(e)}
        return {"Array", *elements}
    if isinstance(node, (exp.Cast, exp.Paren, exp.Neg)):
        return {f"{type(node).__name__}({s})" if not s.startswith("element:") else s
                for s in _shapes(node.this)}
    return {type(node).__name__}


@pytest.mark.parametrize(
    ("type_name", "raw"),
    [
        (None, '"a"'), (None, '"a\\\\b"'), (None, "1"), (None, "-1"), (None, "true"),
        (None, "null"), ("text", '"a"'), ("text", '"\\\\"'), ("integer", "-1"),
        ("numeric", "1.5"), ("boolean", "false"), ("date", "null"), ("date", '"2026-01-01"'),
        ("jsonb", '{"a": "\\\\"}'), ("bigint[]", "[1, -1]"), ("text[]", '["a", "\\\\"]'),
        ("boolean[]", "[true]"), ("date[]", "[]"),
    ],
)
def test_every_rendered_shape_is_proved_at_parse_time(type_name: str | None, raw: str) -> None:
    declared = None if type_name is None else {"v": {"type": type_name, "nullable": True}}
    decls = params.parse_declarations(declared, frozenset({"v"}))
    node = render.literal_node(params.bind(decls, '{"v": ' + raw + "}")["v"])
    probes = set().union(*(_shapes(probe) for probe in template.probe_literals()))
    assert _shapes(node) <= probes, _shapes(node) - probes


# ---- Renderer: the per-submit path ------------------------------------------


@pytest.mark.parametrize(
    ("declared", "first", "second", "second_sql"),
    [
        # Equal as Python values, written differently: the kept literal of
        # the first must not stand for the second.
        ({"v": {"type": "numeric"}}, "1.0", "1.00", "CAST(1.00 AS DECIMAL)"),
        (None, "true", "1", "1"),
        (None, "1", "1.0", "1.0"),
        ({"v": {"type": "numeric[]"}}, "[1.0]", "[1.00]", "CAST(ARRAY[1.00] AS DECIMAL[])"),
    ],
)
def test_renderer_keeps_literals_apart_that_compare_equal(
    declared: dict[str, object] | None, first: str, second: str, second_sql: str
) -> None:
    parsed = template.parse_template("SELECT {v} AS v")
    decls = params.parse_declarations(declared, parsed.placeholders)
    fast = render.Renderer(parsed)
    fast.render(params.bind(decls, '{"v": ' + first + "}"))
    assert fast.render(params.bind(decls, '{"v": ' + second + "}")) == f"SELECT {second_sql} AS v"


def test_renderer_writes_what_render_writes_at_every_placeholder() -> None:
    query = (
        "WITH w AS (SELECT {a} AS a) SELECT a, {b} || 'x', -{n}, {n}::text, ARRAY[{a}] "
        "FROM w WHERE a = ANY({ids}) AND {flag} ORDER BY a LIMIT {n}"
    )
    parsed = template.parse_template(query)
    decls = params.parse_declarations(
        {"a": {"type": "text"}, "b": {"type": "date", "nullable": True}, "n": {"type": "numeric"},
         "ids": {"type": "bigint[]"}, "flag": {"type": "boolean", "nullable": True}},
        parsed.placeholders,
    )
    fast = render.Renderer(parsed)
    assert fast.fast
    for values in [
        '{"a": "it\'s", "b": "2026-11-01", "n": -5, "ids": [1, -2], "flag": true}',
        '{"a": "back\\\\slash", "b": null, "n": 1.5, "ids": [], "flag": null}',
        '{"a": "{b} -- /* $$", "b": "2026-01-31", "n": 7, "ids": [9223372036854775807], "flag": false}',
    ]:
        bound = params.bind(decls, values)
        assert fast.render(bound) == render.render(parsed, bound)


def test_renderer_refuses_a_value_whose_literal_does_not_read_back(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed = template.parse_template("SELECT {v} AS v")
    decls = params.parse_declarations({"v": {"type": "text"}}, parsed.placeholders)
    fast = render.Renderer(parsed)
    # A literal writer gone wrong: a backslash in a plain string.
    monkeypatch.setattr(render, "literal_node", lambda bound: exp.Literal.string(bound.value))
    with pytest.raises(RuntimeError, match="failed its check"):
        fast.render(params.bind(decls, '{"v": "a\\\\b"}'))
