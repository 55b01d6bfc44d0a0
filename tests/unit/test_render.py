"""Unit tests for jobledger.server.render and jobledger.server.shapes: splicing checked
literals into the verbatim template, the PostgreSQL-grammar check of every
rendered query, and the shapes of values that decide output types."""

from __future__ import annotations

import decimal
import functools
import json

import hypothesis
import hypothesis.strategies as st
import pytest

from jobledger.core import errors
from jobledger.server import literals, params, render, shapes, template
from tests import strategies
from tests.unit import test_literals as lits

SETTINGS = lits.SETTINGS

TEMPLATES = (
    "SELECT {v}",
    "SELECT a FROM t WHERE b = {v} AND c = 'x'",
    "SELECT a FROM t WHERE b IN (1, {v}) OR b = {v}",
    "SELECT coalesce({v}, a), CASE WHEN a THEN {v} END FROM t",
    "SELECT x FROM (SELECT {v} AS x) AS w -- {v} is not here\n",
    "select F(a, {v}) from T order by a + {v} /* é😀 {v} */",
    "SELECT 'é😀', {v}::text, 10 - {v}, {v} ^ 2",
)
ARRAY_TEMPLATES = ("SELECT a FROM t WHERE b = ANY({v})", "SELECT {v}, cardinality({v})")


@functools.lru_cache(maxsize=None)
def parsed(query: str) -> template.Template:
    return template.parse_template(query)


@functools.lru_cache(maxsize=None)
def renderer(query: str) -> render.Renderer:
    checked = parsed(query)
    return render.Renderer(checked.query, checked.spans)


def rendered(query: str, declared: dict[str, object] | None, values: dict[str, object]) -> str:
    checked = parsed(query)
    decls = params.parse_declarations(declared, checked.placeholders)
    bound = params.bind(decls, json.dumps(values))
    return renderer(query).render({name: literals.literal(b) for name, b in bound.items()})


def nodes_at_placeholders(query: str, sql: str) -> list[object]:
    """pglast's reading of ``sql`` must be the template's (``$n`` text) with
    something at each ``$n``; those things, in order.  Compared with pglast's
    AST objects, independently of jobledger's JSON walk."""
    parser = lits.pgparse.pglast_parser()
    checked = parsed(query)
    pattern = parser.parse_sql(render.parameter_text(query, checked.spans))
    tree = parser.parse_sql(sql)
    assert len(pattern) == len(tree) == 1
    found: dict[int, object] = {}
    pending = [(pattern[0].stmt, tree[0].stmt)]
    while pending:
        a, b = pending.pop()
        if type(a).__name__ == "ParamRef":
            assert a.number not in found
            found[a.number] = b
            continue
        if isinstance(a, tuple):
            assert isinstance(b, tuple) and len(a) == len(b), (a, b)
            pending.extend(zip(a, b))
            continue
        if hasattr(a, "__slots__") and not isinstance(a, (str, int, float, bool)):
            assert type(a) is type(b), (a, b)
            for slot in a:
                if slot == "location":
                    continue
                pending.append((getattr(a, slot), getattr(b, slot)))
            continue
        assert a == b, (a, b)
    assert sorted(found) == list(range(1, len(checked.spans) + 1))
    return [found[n] for n in sorted(found)]


def assert_renders_exactly(query: str, type_name: str | None, value: object) -> str:
    """Render ``value`` for every ``{v}`` of ``query``: it is the splice of the
    checked literal, passes Renderer.check, is byte-identical to the template
    outside the placeholders, and pglast reads the template's tree with the
    literal's tree (exactly the value) at each placeholder."""
    checked = parsed(query)
    b = lits.bound(type_name, value)
    text = literals.literal(b)
    sql = renderer(query).render({"v": text})
    assert sql == render.splice(query, checked.spans, {"v": text})
    assert renderer(query).check(sql, {"v": text}) is None
    # Outside the placeholders, the text is the template's.
    position, shift = 0, 0
    for span in checked.spans:
        assert sql[position + shift : span.start + shift] == query[position : span.start]
        assert sql[span.start + shift : span.start + shift + len(text)] == text
        shift += len(text) - (span.end - span.start)
        position = span.end
    assert sql[position + shift :] == query[position:]
    lits.assert_same_under_both_settings(sql)
    alone = lits.read_back(text)
    for node in nodes_at_placeholders(query, sql):
        assert _same_ast(node, alone)
    return sql


def _same_ast(a: object, b: object) -> bool:
    if isinstance(a, tuple):
        return isinstance(b, tuple) and len(a) == len(b) and all(map(_same_ast, a, b))
    if hasattr(a, "__slots__") and not isinstance(a, (str, int, float, bool)):
        return type(a) is type(b) and all(
            slot == "location" or _same_ast(getattr(a, slot), getattr(b, slot)) for slot in a
        )
    return a == b


# --- rendering ---------------------------------------------------------------


def test_defaults_are_rendered_into_the_verbatim_text() -> None:
    sql = rendered(
        "select a from t  where d = {day}\n  limit {limit} -- {day}",
        {"day": {"type": "date"}, "limit": {"type": "integer", "default": 100}},
        {"day": "2026-11-01"},
    )
    assert sql == "select a from t  where d = CAST('2026-11-01' AS DATE)\n  limit CAST(100 AS INT) -- {day}"


def test_every_occurrence_of_a_name_gets_the_value() -> None:
    assert rendered("SELECT {x} AS a, {x} + 1 AS b", None, {"x": 7}) == "SELECT 7 AS a, 7 + 1 AS b"


def test_negative_untyped_numbers_keep_their_sign_with_the_number() -> None:
    assert rendered("SELECT {n} ^ 2, 10 - {n}, {n}::text", None, {"n": -3}) == (
        "SELECT (-3) ^ 2, 10 - (-3), (-3)::text"
    )


def test_text_postgresql_reads_but_sqlglot_would_rewrite_is_kept() -> None:
    query = ("SELECT interval '1 day 12:00' + {d}, to_char(now(), 'y,yyy'), "
             "regexp_like('a', 'A', 'i'), 2 ^ 3 AS p, substr('abc', 2) ORDER BY 1 USING >")
    sql = rendered(query, {"d": {"type": "date"}}, {"d": "2026-01-01"})
    assert sql == query.replace("{d}", "CAST('2026-01-01' AS DATE)")


def test_rendering_never_changes_the_renderer() -> None:
    query = "SELECT a FROM t WHERE b = {b} AND c IN ({c}, {c})"
    first = rendered(query, None, {"b": 1, "c": "x"})
    second = rendered(query, None, {"b": 2, "c": "y"})
    assert first == "SELECT a FROM t WHERE b = 1 AND c IN ('x', 'x')"
    assert second == "SELECT a FROM t WHERE b = 2 AND c IN ('y', 'y')"
    assert renderer(query).query == query


def test_a_missing_value_is_a_bug() -> None:
    checked = parsed("SELECT {a}, {b}")
    with pytest.raises(RuntimeError, match="no value for placeholders: b"):
        render.Renderer(checked.query, checked.spans).render({"a": "1"})


@pytest.mark.parametrize(
    ("query", "texts"),
    [
        # A literal with an unescaped quote.
        ("SELECT a FROM t WHERE b = {v} AND c = 'x'", {"v": "'it's'"}),
        ("SELECT a FROM t WHERE b = {v} AND c = 'x'", {"v": "'x' OR TRUE --"}),
        # A "literal" that is an expression: its tree alone differs from its
        # tree in the template (precedence).
        ("SELECT a FROM t WHERE b = {v} AND c = 'x'", {"v": "1 OR TRUE"}),
        ("SELECT {v} * 2", {"v": "1 + 1"}),
        ("SELECT {v}", {"v": "1; DROP TABLE t"}),
        ("SELECT {v}", {"v": "1 AS x, 2"}),
        ("SELECT {v}, 2 AS n", {"v": "1 --"}),
        ("SELECT {v}::text", {"v": "-3"}),
        ("SELECT {v}", {"v": "'a' 'b'"}),
        ("SELECT {v}[1]", {"v": "CAST(ARRAY[1] AS INT[])"}),
    ],
)
def test_a_tampered_rendering_fails_the_check(query: str, texts: dict[str, str]) -> None:
    checked = parsed(query)
    fast = render.Renderer(checked.query, checked.spans)
    sql = render.splice(query, checked.spans, texts)
    assert fast.check(sql, texts) is not None
    with pytest.raises(RuntimeError, match="failed its check"):
        fast.render(texts)


def test_check_refuses_sql_other_than_the_splice() -> None:
    checked = parsed("SELECT a FROM t WHERE b = {v}")
    fast = render.Renderer(checked.query, checked.spans)
    assert fast.check("SELECT a FROM t WHERE b = 1", {"v": "1"}) is None
    assert fast.check("SELECT a FROM t WHERE b = 2", {"v": "1"}) is not None
    assert fast.check("SELECT a FROM u WHERE b = 1", {"v": "1"}) is not None
    assert fast.check("SELECT a FROM t WHERE b = 1; SELECT 1", {"v": "1"}) is not None
    assert fast.check("SELECT a FROM t WHERE b = (", {"v": "1"}) is not None


@pytest.mark.parametrize(
    "attack",
    ["'; DROP TABLE t; --", "\\'; DROP TABLE t; --", "$$; DROP TABLE t; $$", "*/ DROP TABLE t; /*", "{v}",
     "' || (SELECT secret FROM s) || '", "\\", "''", "\n--\n", "é€😀\u2028\ufeff", "\x01\x0b\x1b\x7f",
     "x" * 100_000, "\\'" * 10_000],
)
@pytest.mark.parametrize("type_name", [None, "text", "jsonb", "text[]"])
def test_injection_attempts_land_as_one_constant(attack: str, type_name: str | None) -> None:
    value: object = [attack] if type_name == "text[]" else attack
    assert_renders_exactly("SELECT a FROM t WHERE b = {v} AND c = 'x'", type_name, value)


# --- same_with_values -----------------------------------------------------------


def test_same_with_values() -> None:
    tree = render.statement_tree("SELECT $1 + a, $2")
    one, two = render.literal_tree("1"), render.literal_tree("'x'")
    assert render.same_with_values(tree, render.statement_tree("SELECT 1 + a, 'x'"), [one, two])
    assert not render.same_with_values(tree, render.statement_tree("SELECT 1 + b, 'x'"), [one, two])
    assert not render.same_with_values(tree, render.statement_tree("SELECT 1 + a, 'y'"), [one, two])
    assert not render.same_with_values(tree, render.statement_tree("SELECT 1 + a, 'x', 3"), [one, two])
    assert not render.same_with_values(tree, render.statement_tree("SELECT 1 + a, 'x'"), [one])
    assert not render.same_with_values(tree, render.statement_tree("SELECT 1 - a, 'x'"), [one, two])


def test_trees_have_no_locations() -> None:
    assert render.statement_tree("SELECT  1") == render.statement_tree("SELECT 1")
    with pytest.raises(ValueError):
        render.statement_tree("SELECT 1; SELECT 2")


# --- properties ---------------------------------------------------------------


@SETTINGS
@hypothesis.given(st.sampled_from(TEMPLATES), st.sampled_from(params.SCALAR_TYPES).flatmap(
    lambda name: st.tuples(st.just(name), strategies.typed_values(name))))
def test_any_typed_value_renders_as_exactly_that_constant(query: str, typed: tuple[str, object]) -> None:
    assert_renders_exactly(query, *typed)


@SETTINGS
@hypothesis.given(st.sampled_from(TEMPLATES), strategies.untyped_values())
def test_any_untyped_value_renders_as_exactly_that_constant(query: str, value: object) -> None:
    assert_renders_exactly(query, None, value)


@SETTINGS
@hypothesis.given(st.sampled_from(ARRAY_TEMPLATES + TEMPLATES), st.sampled_from(params.SCALAR_TYPES).flatmap(
    lambda name: st.tuples(st.just(name + "[]"), strategies.typed_values(name + "[]"))))
def test_any_array_renders_as_exactly_that_array(query: str, typed: tuple[str, list[object]]) -> None:
    assert_renders_exactly(query, *typed)


@SETTINGS
@hypothesis.given(st.sampled_from([None, *lits.ALL_TYPES]), st.sampled_from(TEMPLATES))
def test_nulls_render_as_exactly_null(type_name: str | None, query: str) -> None:
    assert_renders_exactly(query, type_name, None)


# --- shapes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", "integer"), ("-2147483648", "integer"), ("2147483647", "integer"), ("2147483648", "bigint"),
        ("-2147483649", "bigint"), ("3000000000", "bigint"), ("-9223372036854775808", "bigint"),
        ("9223372036854775808", "numeric"), ("1.5", "numeric"), ("1.0", "numeric"), ("1e3", "integer"),
        ("-0", "integer"), ('"x"', "unknown"), ("true", "boolean"), ("false", "boolean"), ("null", "unknown"),
    ],
)
def test_kind_of_untyped_values_is_what_postgresql_infers(raw: str, expected: str) -> None:
    assert shapes.kind(lits.bound_raw(None, raw)) == expected


@pytest.mark.parametrize(("raw", "expected"), [("1", "integer"), ("3000000000", "bigint"), ("1.5", "numeric"),
                                                ("-2147483649", "bigint"), ("1.0", "numeric")])
def test_kind_is_the_type_postgresql_gives_the_literal(raw: str, expected: str) -> None:
    """PostgreSQL's grammar agrees: an integer constant that fits int4 is an
    Integer node, anything else a Float (numeric, or int8 when it fits)."""
    text = literals.literal(lits.bound_raw(None, raw))
    kind, _ = lits.constant(lits.read_back(text))
    assert (kind == "integer") == (expected == "integer")


def test_key_lists_the_kinds_of_untyped_values_by_name() -> None:
    decls = params.parse_declarations(
        {"b": {"type": "date"}, "a": {"type": "text"}}, frozenset({"a", "b"}))
    assert shapes.key(params.bind(decls, '{"a": "x", "b": "2026-01-01"}')) == ""
    decls = params.parse_declarations(None, frozenset({"z", "a", "m"}))
    bound = params.bind(decls, '{"z": 1.5, "a": "x", "m": true}')
    assert shapes.key(bound) == "unknown,boolean,numeric"


def test_all_shapes_covers_every_kind_combination() -> None:
    decls = params.parse_declarations(None, frozenset({"a", "b"}))
    found = shapes.all_shapes(decls, frozenset({"a", "b"}))
    assert len(found) == len(shapes.KINDS) ** 2
    assert len({k for k, _ in found}) == len(found)
    for key, values in found:
        assert shapes.key(values) == key
        assert set(values) == {"a", "b"}


def test_all_shapes_gives_typed_values_their_null() -> None:
    decls = params.parse_declarations({"d": {"type": "date"}, "n": {"type": "bigint[]"}}, frozenset({"d", "n"}))
    found = shapes.all_shapes(decls, frozenset({"d", "n"}))
    assert [k for k, _ in found] == [""]
    values = found[0][1]
    assert {n: (v.type.name, v.value) for n, v in values.items()} == {"d": ("date", None), "n": ("bigint[]", None)}
    assert literals.literal(values["d"]) == "CAST(NULL AS DATE)"


def test_all_shapes_refuses_too_many_untyped_parameters() -> None:
    names = frozenset(f"p{i}" for i in range(shapes.MAX_UNTYPED + 1))
    decls = params.parse_declarations(None, names)
    with pytest.raises(errors.JobledgerError) as caught:
        shapes.all_shapes(decls, names)
    assert caught.value.category == "invalid_parameter"
    assert str(shapes.MAX_UNTYPED) in caught.value.message
    fewer = frozenset(sorted(names)[: shapes.MAX_UNTYPED])
    assert len(shapes.all_shapes(params.parse_declarations(None, fewer), fewer)) == len(shapes.KINDS) ** len(fewer)


@SETTINGS
@hypothesis.given(strategies.untyped_values())
def test_every_untyped_value_has_a_shape_all_shapes_analyses(value: object) -> None:
    decls = params.parse_declarations(None, frozenset({"v"}))
    keys = {key for key, _ in shapes.all_shapes(decls, frozenset({"v"}))}
    b = lits.bound(None, value)
    assert shapes.key({"v": b}) in keys
    if isinstance(value, decimal.Decimal):
        kind, _ = lits.constant(lits.read_back(literals.literal(b)))
        assert (kind == "integer") == (shapes.kind(b) == "integer")
