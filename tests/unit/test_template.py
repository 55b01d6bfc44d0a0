"""Unit tests for jobledger.server.template: what a job template may be, and where placeholders go.

PostgreSQL's own grammar (pglast / libpg_query) decides; sqlglot only finds
the placeholders, and the two must agree.  Accepted templates are kept
verbatim with their placeholders' spans in characters; refusals carry a
category and, where there is a place to point at, ``line L, column C``.
"""

from __future__ import annotations

import dataclasses
import re

import hypothesis
import hypothesis.strategies as st
import pytest

from jobledger.core import errors
from jobledger.server import params, pgparse, render, template
from tests import strategies


def refused(query: str) -> errors.JobledgerError:
    with pytest.raises(errors.JobledgerError) as caught:
        template.parse_template(query)
    return caught.value


def refused_rendering(query: str, declared: dict[str, object] | None = None) -> errors.JobledgerError:
    parsed = template.parse_template(query)
    decls = params.parse_declarations(declared, parsed.placeholders)
    with pytest.raises(errors.JobledgerError) as caught:
        template.check_rendering(parsed, decls)
    return caught.value


def accepted(query: str, declared: dict[str, object] | None = None) -> template.Template:
    """Parse and prove rendering, as define_job does."""
    parsed = template.parse_template(query)
    template.check_rendering(parsed, params.parse_declarations(declared, parsed.placeholders))
    return parsed


def assert_spans_exact(parsed: template.Template) -> None:
    """Each span covers exactly ``{name}`` of the verbatim text, in order, without overlap."""
    end = 0
    for span in parsed.spans:
        assert span.start >= end
        assert parsed.query[span.start : span.end] == "{" + span.name + "}"
        end = span.end


def position(error: errors.JobledgerError) -> tuple[int, int]:
    found = re.search(r"at line ([0-9]+), column ([0-9]+)", error.message)
    assert found, error.message
    return int(found.group(1)), int(found.group(2))


# --- accepted templates -----------------------------------------------------

ACCEPTED = [
    ("SELECT 1", []),
    ("SELECT a FROM t WHERE d = {day}", ["day"]),
    ("SELECT a FROM t WHERE a > {x} AND b < {x} + 1", ["x", "x"]),
    ("SELECT a FROM t INTERSECT SELECT a FROM u", []),
    ("(SELECT a FROM t WHERE a = {a})", ["a"]),
    ("SELECT a FROM t;", []),
    ("select A from T where B = {b} -- note\n", ["b"]),
    ("SELECT a FROM t WHERE b = {limit} AND c = {select} AND d = {from}", ["limit", "select", "from"]),
    ("SELECT a FROM t WHERE a = ANY({ids}) LIMIT {n} OFFSET {m}", ["ids", "n", "m"]),
    ("SELECT a FROM t WHERE a IN ({x}, {y}) AND b BETWEEN {lo} AND {hi}", ["x", "y", "lo", "hi"]),
    ("SELECT CASE WHEN a > {t} THEN {yes} ELSE {no} END FROM t", ["t", "yes", "no"]),
    ("SELECT coalesce(a, {fallback}), {x}::text, NOT {z} FROM t", ["fallback", "x", "z"]),
    ("SELECT a FROM t ORDER BY a + {x} DESC", ["x"]),
    ("SELECT a FROM t GROUP BY a HAVING count(*) > {n}", ["n"]),
    ("SELECT doc ->> ({key}) FROM t", ["key"]),
    ("SELECT doc ->> {key} FROM t", ["key"]),
    ("SELECT date_trunc({unit}, ts) FROM t", ["unit"]),
    ("SELECT * FROM generate_series(1, {n})", ["n"]),
    ("SELECT a FROM t WHERE doc ? {k}", ["k"]),
    ("SELECT to_char(d, {fmt}) FROM t", ["fmt"]),
    ("SELECT ({x}).a", ["x"]),
    ("SELECT ({arr})[1]", ["arr"]),
    ("SELECT 10 - {n}, {n} ^ 2, {n}::text, +{n}", ["n", "n", "n", "n"]),
    ("SELECT 1 OPERATOR(pg_catalog.+) {x}", ["x"]),
    ("TABLE t", []),
    # Braces inside strings, dollar quotes, quoted identifiers and comments are text.
    (
        "SELECT '{a}', $$ {b} $$, $q${c}$q$, E'{d}', \"{e}\", U&'{f}' FROM t -- {g}\n"
        "WHERE x = {real} /* {h} /* nested {i} */ {j} */",
        ["real"],
    ),
    ("SELECT $a$ {x} $b$ {y} $b$ $a$", []),
    # Non-ASCII text before placeholders: spans count characters, not bytes.
    ("SELECT 'é😀€', {x}, 'ü' AS \"ß\", {y}", ["x", "y"]),
    # Queries sqlglot cannot parse, which PostgreSQL's grammar reads.
    ("SELECT x FROM t ORDER BY x USING >", []),
    ("SELECT x FROM t WHERE b = {b} ORDER BY x USING >", ["b"]),
    ("SELECT SUBSTRING(x SIMILAR 'a' ESCAPE '#') FROM t WHERE b = {b}", ["b"]),
    ("SELECT * FROM t JOIN u USING (i) AS x WHERE b = {b}", ["b"]),
    ("SELECT interval '1 day 12:00', interval '-1 days +02:03', to_char(now(), 'y,yyy')", []),
    ("SELECT 'a\\b', E'\\'', {x}", ["x"]),
]

# Accepted by PostgreSQL and by 0.4.0's rules: placeholders in CTEs, in
# every branch of a set operation, and inside window definitions are values.
ACCEPTED_NESTED = [
    ("WITH w AS (SELECT * FROM t WHERE a = {a}) SELECT * FROM w", ["a"]),
    ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < {n}) SELECT n FROM r", ["n"]),
    ("SELECT a FROM t WHERE a = {a} UNION ALL SELECT a FROM u WHERE a = {b}", ["a", "b"]),
    ("SELECT a FROM t EXCEPT SELECT a FROM u WHERE b = {b}", ["b"]),
    ("SELECT sum(a) OVER (PARTITION BY {p}) FROM t", ["p"]),
    ("SELECT sum(a) OVER (ORDER BY a + {x}) FROM t", ["x"]),
]


@pytest.mark.parametrize(("query", "names"), ACCEPTED + ACCEPTED_NESTED)
def test_accepts_selects_verbatim_with_exact_spans(query: str, names: list[str]) -> None:
    parsed = accepted(query)
    assert parsed.query == query
    assert [span.name for span in parsed.spans] == names
    assert parsed.placeholders == frozenset(names)
    assert_spans_exact(parsed)


def test_spans_are_character_offsets() -> None:
    query = "SELECT '😀é', {x}"
    parsed = template.parse_template(query)
    assert parsed.spans == (render.Span(13, 16, "x"),)
    assert len(query[:13].encode("utf-8")) != 13


def test_template_is_frozen() -> None:
    parsed = template.parse_template("SELECT {x}")
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.query = "SELECT 2"  # type: ignore[misc]


@hypothesis.settings(max_examples=150, deadline=None, database=None)
@hypothesis.given(strategies.text_values(max_pieces=6, long_runs=False))
def test_braces_inside_a_string_constant_are_never_placeholders(text: str) -> None:
    quoted = "'" + text.replace("'", "''") + "'"
    query = f"SELECT {quoted} AS s, {{real}}"
    parsed = template.parse_template(query)
    assert parsed.query == query
    assert [s.name for s in parsed.spans] == ["real"]
    assert_spans_exact(parsed)
    # PostgreSQL reads the constant as exactly the text.
    tree = render.statement_tree(render.parameter_text(query, parsed.spans))
    constant = tree["SelectStmt"]["targetList"][0]["ResTarget"]["val"]["A_Const"]
    assert constant.get("sval", {}).get("sval", "") == text


# --- not a read-only SELECT ---------------------------------------------------


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("SELECT 1; SELECT 2", "2 statements"),
        ("SELECT 1; DELETE FROM t", "2 statements"),
        ("SELECT {x}; SELECT {x}", "2 statements"),
        # The exploit of issue 10: sqlglot saw one SELECT, PostgreSQL three statements.
        ("SELECT 1 OPERATOR(#--) 'x\n) 2 AS i; ALTER ROLE nobody SUPERUSER; SELECT 1 --' AS i", "3 statements"),
        ("INSERT INTO t VALUES (1)", "INSERT"),
        ("UPDATE t SET a = 1", "UPDATE"),
        ("DELETE FROM t", "DELETE"),
        ("MERGE INTO t USING s ON t.a = s.a WHEN MATCHED THEN DELETE", "MERGE"),
        ("CREATE TABLE t AS SELECT 1", "CREATE"),
        ("CREATE TABLE t (a int)", "CREATE"),
        ("DROP TABLE t", "DROP"),
        ("TRUNCATE t", "TRUNCATE"),
        ("DO $$ BEGIN END $$", "DO"),
        ("CALL p()", "CALL"),
        ("COPY t TO STDOUT", "COPY"),
        ("COPY (SELECT 1) TO PROGRAM 'touch /tmp/x'", "COPY"),
        ("SET search_path = x", "SET"),
        ("SET ROLE admin", "SET"),
        ("EXPLAIN SELECT 1", "EXPLAIN"),
        ("BEGIN", "transaction"),
        ("SELECT 1 INTO t", "INTO"),
        ("SELECT * FROM t FOR UPDATE", "FOR UPDATE/SHARE"),
        ("SELECT * FROM t FOR SHARE", "FOR UPDATE/SHARE"),
        ("SELECT * FROM t FOR NO KEY UPDATE SKIP LOCKED", "FOR UPDATE/SHARE"),
        ("SELECT * FROM (SELECT * FROM t WHERE a = {a} FOR UPDATE) s", "FOR UPDATE/SHARE"),
        ("SELECT 1 INTERSECT SELECT 2 FROM t FOR UPDATE", "FOR UPDATE/SHARE"),
        ("SELECT set_config('role', 'admin', false)", "set_config"),
        ("SELECT SET_CONFIG('search_path', {p}, true)", "set_config"),
        ("SELECT pg_catalog.set_config('a', 'b', true)", "set_config"),
        ('SELECT "set_config"(\'a\', \'b\', true)', "set_config"),
        ("SELECT * FROM t WHERE a = (SELECT set_config('a', 'b', true))", "set_config"),
        ("SELECT * FROM set_config('a', 'b', true)", "set_config"),
    ],
)
def test_refuses_anything_but_a_read_only_select(query: str, says: str) -> None:
    error = refused(query)
    assert error.category == "template_not_select", error.message
    assert says.lower() in error.message.lower()


@pytest.mark.parametrize(
    ("query", "says"),
    [
        # Writes, locks and set_config nested in a WITH clause or a set operation's branch.
        ("WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", "DELETE"),
        ("WITH x AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM x", "INSERT"),
        ("WITH x AS (UPDATE t SET a = {a} RETURNING *) SELECT * FROM x", "UPDATE"),
        ("SELECT * FROM t WHERE a IN (WITH d AS (DELETE FROM u RETURNING a) SELECT a FROM d)", "DELETE"),
        ("WITH w AS (SELECT * FROM t FOR UPDATE) SELECT * FROM w", "FOR UPDATE/SHARE"),
        ("WITH w AS (SELECT set_config('a', 'b', false)) SELECT * FROM w", "set_config"),
        ("SELECT 1 UNION ALL SELECT set_config('a', 'b', false)", "set_config"),
    ],
)
def test_refuses_writes_locks_and_set_config_nested_anywhere(query: str, says: str) -> None:
    error = refused(query)
    assert error.category == "template_not_select", error.message
    assert says.lower() in error.message.lower()


# --- unreadable templates ---------------------------------------------------


@pytest.mark.parametrize("query", ["", "   \n\t", "-- just a comment", ";", "/* */ ;", "-- a\n;"])
def test_refuses_empty_queries(query: str) -> None:
    error = refused(query)
    assert error.category == "template_parse_error"
    assert "empty" in error.message


def test_refuses_nul() -> None:
    assert refused("SELECT 1\x00").category == "template_parse_error"


def test_parse_errors_name_line_and_column() -> None:
    error = refused("SELECT a,\n  ) FROM t")
    assert error.category == "template_parse_error"
    assert position(error) == (2, 3)


def test_parse_error_positions_are_in_the_template_not_in_its_dollar_text() -> None:
    # {abcdef} is longer than $1: the column is the template's.
    assert position(refused("SELECT {abcdef} )")) == (1, 17)
    error = refused("SELECT 1 {abc}")
    assert "{abc}" in error.message and "$1" not in error.message
    assert position(error) == (1, 10)


def test_parse_error_columns_count_characters() -> None:
    # libpg_query's cursorpos is already a (1-based) character position.
    assert position(refused("SELECT 'é😀€', )")) == (1, 15)


@pytest.mark.parametrize("query", ["SELECT 'abc", "SELECT 'a\\', {x}, 'b", "SELECT $$abc", "SELECT \"abc"])
def test_unterminated_constants_are_parse_errors(query: str) -> None:
    error = refused(query)
    assert error.category == "template_parse_error"


@pytest.mark.parametrize("query", ["SELECT 'a' 'b'", "SELECT 'a'\t'b' FROM t"])
def test_adjacent_strings_on_one_line_are_refused_as_postgresql_does(query: str) -> None:
    error = refused(query)
    assert error.category == "template_parse_error"
    assert "syntax error" in error.message
    assert position(error)[0] == 1


def test_adjacent_strings_across_a_newline_are_one_constant_for_postgresql() -> None:
    parsed = accepted("SELECT 'a'\n'b'")
    tree = render.statement_tree(parsed.query)
    assert tree["SelectStmt"]["targetList"][0]["ResTarget"]["val"]["A_Const"]["sval"]["sval"] == "ab"


@pytest.mark.parametrize(
    "query",
    ["SELECT { x }", "SELECT {x", "SELECT x}", "SELECT {1x}", "SELECT {x.y}", "SELECT {}", "SELECT {{x}}",
     "SELECT {x-y}", "SELECT {x }", "SELECT '{x}', {y"],
)
def test_refuses_braces_that_are_not_placeholders(query: str) -> None:
    error = refused(query)
    assert error.category == "template_parse_error"
    assert "{name}" in error.message
    position(error)


@pytest.mark.parametrize(
    ("query", "column"),
    [("SELECT $1", 8), ("SELECT a FROM t WHERE a = $2 AND b = {b}", 27), ("SELECT 'é', $1", 13),
     ("SELECT {x}, $1", 13)],
)
def test_refuses_bind_parameters(query: str, column: int) -> None:
    error = refused(query)
    assert error.category == "template_parse_error"
    assert "bind parameters" in error.message
    assert error.hint == "write a placeholder as {name}"
    assert position(error) == (1, column)


@pytest.mark.parametrize(
    "query",
    ["SELECT 1 UNION ALL SELECT a FROM t WHERE b = $1", "WITH w AS (SELECT $1) SELECT * FROM w"],
)
def test_refuses_bind_parameters_nested_anywhere(query: str) -> None:
    error = refused(query)
    assert error.category == "template_parse_error"
    assert error.hint == "write a placeholder as {name}"


@pytest.mark.parametrize(
    "query", ["SELECT :name", "SELECT %(name)s", "SELECT * FROM t WHERE a = ?", "SELECT a::{t} FROM t",
              "SELECT * FROM {t}", "SELECT x AS {a} FROM t", "SELECT {x} {y}", "SELECT {f}(1)",
              "SELECT x COLLATE {c} FROM t", "SELECT f({n} => 1)", "SELECT * FROM t WHERE a {op} b",
              "SELECT ARRAY[1]{x}"],
)
def test_placeholders_and_markers_where_no_value_can_stand_do_not_parse(query: str) -> None:
    error = refused(query)
    assert error.category == "template_parse_error"
    position(error)


@pytest.mark.parametrize(
    ("query", "name", "says", "column"),
    [
        ("SELECT a FROM t ORDER BY {x}", "x", "ORDER BY", 26),
        ("SELECT a FROM t ORDER BY a, {x} DESC", "x", "ORDER BY", 29),
        ("SELECT a FROM t ORDER BY ({x})", "x", "ORDER BY", 27),
        ("SELECT string_agg(a, ',' ORDER BY {x}) FROM t", "x", "ORDER BY", 35),
        ("SELECT a FROM t UNION SELECT b FROM u ORDER BY {x}", "x", "ORDER BY", 48),
        ("SELECT a FROM t GROUP BY {x}", "x", "GROUP BY", 26),
        ("SELECT a FROM t GROUP BY a, ({x})", "x", "GROUP BY", 30),
        ("SELECT a FROM t GROUP BY ROLLUP(a, {x})", "x", "GROUP BY", 36),
        ("SELECT a FROM t GROUP BY CUBE({x})", "x", "GROUP BY", 31),
        ("SELECT DISTINCT ON ({x}) a FROM t", "x", "DISTINCT ON", 21),
        ("SELECT DISTINCT ON (a, {x}) a FROM t", "x", "DISTINCT ON", 24),
    ],
)
def test_refuses_placeholders_that_are_whole_order_group_or_distinct_items(
    query: str, name: str, says: str, column: int
) -> None:
    error = refused(query)
    assert error.category == "template_parse_error"
    assert f"{{{name}}}" in error.message and says in error.message
    assert position(error) == (1, column)


@pytest.mark.parametrize(
    "query",
    ["SELECT sum(a) OVER (ORDER BY {x}) FROM t", "SELECT sum(a) OVER w FROM t WINDOW w AS (ORDER BY {x})",
     "WITH w AS (SELECT a FROM t ORDER BY {x}) SELECT * FROM w"],
)
def test_refuses_whole_order_by_placeholders_nested_anywhere(query: str) -> None:
    error = refused(query)
    assert error.category == "template_parse_error"
    assert "ORDER BY" in error.message, error.message


@pytest.mark.parametrize(
    ("query", "line", "column"),
    [("SELECT a{x}", 1, 9), ("SELECT 'é😀'\n, a{x}", 2, 4), ("SELECT a FROM t WHERE b = 'é' AND c = a{x}", 1, 40)],
)
def test_refuses_placeholders_postgresql_does_not_read_as_values(query: str, line: int, column: int) -> None:
    error = refused(query)
    assert error.category == "template_parse_error"
    assert "does not read placeholder {x} as a value" in error.message
    assert position(error) == (line, column)


@pytest.mark.parametrize(
    ("query", "column"),
    [
        # sqlglot reads {x} as a placeholder after an operator; PostgreSQL reads
        # the operator #, then a -- comment to the end of the line.
        ("SELECT 1 OPERATOR(#--) {x}\n, 2", 24),
        ("SELECT 1 #-- {x}\n, {y}", 14),
    ],
)
def test_refuses_placeholders_the_two_parsers_read_differently(query: str, column: int) -> None:
    error = refused(query)
    assert error.category == "template_parse_error"
    assert "read the job query differently" in error.message
    assert "{x}" in error.message
    assert position(error) == (1, column)


@pytest.mark.parametrize(
    "query",
    [
        "SELECT 1 OPERATOR(/*) {x} */ +) 2",  # a comment inside OPERATOR(): no placeholder for either
        "SELECT 1 @-- {x}\n+ 2",
        "SELECT 1 /* /* */ {x} */",
        "SELECT E'\\'{x}'",
        "SELECT U&'\\0041{x}'",
        "SELECT $t${x}$t$",
    ],
)
def test_comment_and_quote_tricks_hide_no_placeholder(query: str) -> None:
    parsed = template.parse_template(query)
    assert parsed.spans == ()
    assert parsed.query == query


@pytest.mark.parametrize(
    ("query", "hint"),
    [("SELECT -{x}", "0 - {x}"), ("SELECT - {x}", "0 - {x}"), ("SELECT -({x})", "0 - {x}"),
     ("SELECT 1, -\n{x}", "0 - {x}")],
)
def test_refuses_a_sign_before_an_untyped_placeholder(query: str, hint: str) -> None:
    error = refused_rendering(query)
    assert error.category == "template_parse_error"
    assert "{x}" in error.message
    assert hint in (error.hint or "")
    position(error)


def test_a_sign_before_a_typed_placeholder_is_fine() -> None:
    accepted("SELECT -{x}", {"x": {"type": "integer"}})
    accepted("SELECT -{x}", {"x": {"type": "numeric"}})


@pytest.mark.parametrize(
    ("query", "declared"),
    [("SELECT {x}[1]", None), ("SELECT {x}[1]", {"x": {"type": "text[]"}}), ("SELECT {n}.x", None),
     ("SELECT {n}.*", None), ("SELECT INTERVAL {x}", None), ("SELECT EXTRACT({f} FROM d) FROM t", None)],
)
def test_refuses_placeholders_whose_literals_would_read_as_something_else(
    query: str, declared: dict[str, object] | None
) -> None:
    error = refused_rendering(query, declared)
    assert error.category == "template_parse_error"
    assert "cannot stand there" in error.message
    position(error)


def test_check_rendering_of_a_template_without_placeholders_is_nothing() -> None:
    template.check_rendering(template.parse_template("SELECT 1"), params.parse_declarations(None, frozenset()))


# --- what the check itself proves -----------------------------------------------


@pytest.mark.parametrize("query", [q for q, _ in ACCEPTED if "{" in q and "'{a}'" not in q])
def test_parameter_text_is_the_template_with_dollar_markers(query: str) -> None:
    parsed = template.parse_template(query)
    text = render.parameter_text(query, parsed.spans)
    statements = pgparse.parse(text)
    assert len(statements) == 1 and "SelectStmt" in statements[0]["stmt"]
    numbers = sorted(_param_numbers(statements[0]))
    assert numbers == list(range(1, len(parsed.spans) + 1))


def _param_numbers(tree: object) -> list[int]:
    """The number of every ParamRef anywhere in a JSON parse tree."""
    if isinstance(tree, list):
        return [n for item in tree for n in _param_numbers(item)]
    if not isinstance(tree, dict):
        return []
    found = [tree["ParamRef"]["number"]] if isinstance(tree.get("ParamRef"), dict) else []
    return found + [n for key, value in tree.items() if key != "ParamRef" for n in _param_numbers(value)]


def test_probe_values_cover_every_literal_form() -> None:
    decls = params.parse_declarations(None, frozenset({"v"}))
    untyped = template.probe_values(decls.items[0])
    forms = {type(b.value).__name__ for b in untyped}
    assert {"str", "Decimal", "bool", "NoneType"} <= forms
    assert any(isinstance(b.value, str) and "\\" in b.value for b in untyped)
    assert any(b.value is not None and not isinstance(b.value, (str, bool)) and b.value < 0 for b in untyped)
