"""Unit tests for jobledger.template: what a job template may be, and where placeholders go."""

from __future__ import annotations

import dataclasses

import pytest
import sqlglot.expressions as exp

from jobledger import errors, template


def refused(query: str) -> errors.JobledgerError:
    with pytest.raises(errors.JobledgerError) as caught:
        template.parse_template(query)
    return caught.value


# --- accepted templates -----------------------------------------------------


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("SELECT 1", set()),
        ("SELECT a FROM t WHERE d = {day}", {"day"}),
        ("SELECT a FROM t WHERE a > {x} AND b < {x} + 1", {"x"}),
        ("WITH w AS (SELECT * FROM t WHERE a = {a}) SELECT * FROM w", {"a"}),
        ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < {n}) "
         "SELECT n FROM r", {"n"}),
        ("SELECT a FROM t WHERE a = {a} UNION ALL SELECT a FROM u WHERE a = {b}", {"a", "b"}),
        ("SELECT a FROM t INTERSECT SELECT a FROM u", set()),
        ("SELECT a FROM t EXCEPT SELECT a FROM u WHERE b = {b}", {"b"}),
        ("(SELECT a FROM t WHERE a = {a})", {"a"}),
        ("SELECT a FROM t;", set()),
        ("SELECT a FROM t WHERE b = {limit} AND c = {select} AND d = {from}",
         {"limit", "select", "from"}),
        ("SELECT a FROM t WHERE a = ANY({ids}) LIMIT {n} OFFSET {m}", {"ids", "n", "m"}),
        ("SELECT a FROM t WHERE a IN ({x}, {y}) AND b BETWEEN {lo} AND {hi}",
         {"x", "y", "lo", "hi"}),
        ("SELECT CASE WHEN a > {t} THEN {yes} ELSE {no} END FROM t", {"t", "yes", "no"}),
        ("SELECT coalesce(a, {fallback}), {x}::text, -{y}, NOT {z} FROM t",
         {"fallback", "x", "y", "z"}),
        ("SELECT a FROM t ORDER BY a + {x} DESC", {"x"}),
        ("SELECT a FROM t GROUP BY a HAVING count(*) > {n}", {"n"}),
        ("SELECT sum(a) OVER (PARTITION BY {p}) FROM t", {"p"}),
        ("SELECT doc ->> ({key}) FROM t", {"key"}),
        ("SELECT * FROM generate_series(1, {n})", {"n"}),
        ("SELECT a FROM t WHERE doc ? {k}", {"k"}),
        ("SELECT to_char(d, {fmt}) FROM t", {"fmt"}),
        ("TABLE t", set()),
    ],
)
def test_accepts_selects_and_finds_placeholders(query: str, names: set[str]) -> None:
    parsed = template.parse_template(query)
    assert parsed.placeholders == frozenset(names)
    assert parsed.query == query
    found = {node.this for node in parsed.expression.find_all(exp.Placeholder)}
    assert found == names


def test_a_name_used_twice_is_one_placeholder_in_two_places() -> None:
    parsed = template.parse_template("SELECT {x} AS a, {x} + 1 AS b")
    assert parsed.placeholders == frozenset({"x"})
    assert len(list(parsed.expression.find_all(exp.Placeholder))) == 2


def test_braces_inside_literals_comments_and_identifiers_are_text() -> None:
    query = (
        "SELECT '{a}', $$ {b} $$, $q${c}$q$, E'{d}', \"{e}\" FROM t -- {f}\n"
        "WHERE x = {real} /* {g} */"
    )
    parsed = template.parse_template(query)
    assert parsed.placeholders == frozenset({"real"})
    assert "'{a}'" in parsed.canonical_sql
    assert "\"{e}\"" in parsed.canonical_sql


def test_canonical_sql_is_the_template_written_back() -> None:
    parsed = template.parse_template("select a from t where b = {b} -- note\n")
    assert parsed.canonical_sql == "SELECT a FROM t WHERE b = {b}"
    again = template.parse_template(parsed.canonical_sql)
    assert again.canonical_sql == parsed.canonical_sql
    assert template.same_tree(again.expression, parsed.expression)


def test_strings_with_backslashes_become_escape_strings() -> None:
    parsed = template.parse_template(r"SELECT 'a\b', $$c\d$$, $$plain$$, E'e\\f'")
    assert parsed.canonical_sql == r"SELECT e'a\\b', e'c\\d', 'plain', e'e\\f'"


def test_escape_string_backslash_v_means_v_as_in_postgresql() -> None:
    parsed = template.parse_template(r"SELECT E'\v'")
    assert parsed.canonical_sql == "SELECT e'v'"


def test_quoted_function_names_keep_their_case() -> None:
    parsed = template.parse_template('SELECT "myFunc"(1), myFunc(2)')
    assert parsed.canonical_sql == 'SELECT "myFunc"(1), myFunc(2)'


def test_template_is_frozen() -> None:
    parsed = template.parse_template("SELECT {x}")
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.query = "SELECT 2"  # type: ignore[misc]


# --- not a SELECT -----------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("SELECT 1; SELECT 2", "2 statements"),
        ("SELECT 1; DELETE FROM t", "2 statements"),
        ("INSERT INTO t VALUES (1)", "INSERT"),
        ("UPDATE t SET a = 1", "UPDATE"),
        ("DELETE FROM t", "DELETE"),
        ("MERGE INTO t USING s ON t.a = s.a WHEN MATCHED THEN DELETE", "MERGE"),
        ("WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", "DELETE"),
        ("WITH x AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM x", "INSERT"),
        ("WITH x AS (UPDATE t SET a = {a} RETURNING *) SELECT * FROM x", "UPDATE"),
        ("SELECT * FROM t WHERE a IN (WITH d AS (DELETE FROM u RETURNING a) SELECT a FROM d)",
         "DELETE"),
        ("CREATE TABLE t AS SELECT 1", "CREATE"),
        ("CREATE TABLE t (a int)", "CREATE"),
        ("DROP TABLE t", "DROP"),
        ("ALTER TABLE t ADD COLUMN a int", "ALTER"),
        ("TRUNCATE t", "TRUNCATE"),
        ("DO $$ BEGIN END $$", "DO"),
        ("CALL p()", "CALL"),
        ("COPY t TO STDOUT", "COPY"),
        ("COPY (SELECT 1) TO STDOUT", "COPY"),
        ("SET search_path = x", "SET"),
        ("SET ROLE admin", "SET"),
        ("SET LOCAL statement_timeout = 0", "SET"),
        ("RESET ALL", "RESET"),
        ("RESET ROLE", "RESET"),
        ("SELECT 1 INTO t", "INTO"),
        ("SELECT * FROM t FOR UPDATE", "FOR UPDATE/SHARE"),
        ("SELECT * FROM t FOR SHARE", "FOR UPDATE/SHARE"),
        ("SELECT * FROM t FOR NO KEY UPDATE SKIP LOCKED", "FOR UPDATE/SHARE"),
        ("SELECT * FROM (SELECT * FROM t WHERE a = {a} FOR UPDATE) s", "FOR UPDATE/SHARE"),
        ("SELECT set_config('role', 'admin', false)", "set_config"),
        ("SELECT SET_CONFIG('search_path', {p}, true)", "SET_CONFIG"),
        ("SELECT pg_catalog.set_config('a', 'b', true)", "set_config"),
        ('SELECT "set_config"(\'a\', \'b\', true)', "set_config"),
        ("SELECT * FROM t WHERE a = (SELECT set_config('a', 'b', true))", "set_config"),
        ("SELECT * FROM set_config('a', 'b', true)", "set_config"),
        ("EXPLAIN SELECT 1", "EXPLAIN"),
        ("VALUES (1)", "VALUES"),
        ("LISTEN channel", "LISTEN"),
        ("NOTIFY channel", "NOTIFY"),
        ("GRANT SELECT ON t TO someone", "GRANT"),
        ("BEGIN", "BEGIN"),
        ("VACUUM", "VACUUM"),
        ("LOCK t", "LOCK"),
        ("PREPARE p AS SELECT 1", "PREPARE"),
        ("CHECKPOINT", "CHECKPOINT"),
    ],
)
def test_refuses_anything_but_a_read_only_select(query: str, says: str) -> None:
    error = refused(query)
    assert error.category == "template_not_select"
    assert says in error.message


# --- unreadable templates ---------------------------------------------------


@pytest.mark.parametrize("query", ["", "   \n\t", "-- just a comment", ";", "/* */ ;", "-- a\n;"])
def test_refuses_empty_queries(query: str) -> None:
    error = refused(query)
    assert error.category == "template_parse_error"
    assert "empty" in error.message


def test_parse_errors_carry_sqlglot_message_with_line_and_column() -> None:
    error = refused("SELECT a,\n  ) FROM t")
    assert error.category == "template_parse_error"
    assert "line 2, column 3" in error.message
    assert "\x1b" not in error.message


def test_unterminated_string_is_a_parse_error() -> None:
    error = refused("SELECT 'abc")
    assert error.category == "template_parse_error"


@pytest.mark.parametrize(
    "query",
    ["SELECT { x }", "SELECT {x", "SELECT x}", "SELECT {1x}", "SELECT {x.y}", "SELECT {}",
     "SELECT {{x}}", "SELECT {x-y}"],
)
def test_refuses_braces_that_are_not_placeholders(query: str) -> None:
    error = refused(query)
    assert error.category == "template_parse_error"
    assert "{name}" in error.message or "cannot stand there" in error.message


@pytest.mark.parametrize(
    "query",
    ["SELECT $1", "SELECT :name", "SELECT %(name)s", "SELECT * FROM t WHERE a = ?",
     "SELECT a[:hi] FROM t"],
)
def test_refuses_other_bind_parameters(query: str) -> None:
    error = refused(query)
    assert error.category == "template_parse_error"
    assert error.hint == "write a placeholder as {name}"


@pytest.mark.parametrize(
    ("query", "name", "says"),
    [
        ("SELECT * FROM {t}", "t", "name"),
        ("SELECT * FROM {s}.t", "s", "name"),
        ("SELECT {c}.x FROM t", "c", "name"),
        ("SELECT {c}.* FROM t", "c", "name"),
        ("SELECT x AS {a} FROM t", "a", "alias"),
        ("SELECT {x} {y}", "y", "alias"),
        ("SELECT * FROM t {a}", "a", "name"),
        ("SELECT * FROM t AS a({c})", "c", "name"),
        ("WITH {c} AS (SELECT 1) SELECT * FROM c", "c", "name"),
        ("SELECT * FROM t JOIN u USING ({c})", "c", "USING"),
        ("SELECT x COLLATE {c} FROM t", "c", "collation"),
        ("SELECT EXTRACT({f} FROM d) FROM t", "f", "EXTRACT"),
        ("SELECT INTERVAL {x}", "x", "INTERVAL"),
        ("SELECT {x}[1]", "x", "({x})[i]"),
        ("SELECT a FROM t ORDER BY {x}", "x", "ORDER BY"),
        ("SELECT a FROM t ORDER BY a, {x} DESC", "x", "ORDER BY"),
        ("SELECT a FROM t ORDER BY ({x})", "x", "ORDER BY"),
        ("SELECT sum(a) OVER (ORDER BY {x}) FROM t", "x", "ORDER BY"),
        ("SELECT string_agg(a, ',' ORDER BY {x}) FROM t", "x", "ORDER BY"),
        ("SELECT a FROM t GROUP BY {x}", "x", "GROUP BY"),
        ("SELECT a FROM t GROUP BY a, ({x})", "x", "GROUP BY"),
        ("SELECT a FROM t GROUP BY ROLLUP(a, {x})", "x", "GROUP BY"),
        ("SELECT a FROM t GROUP BY CUBE({x})", "x", "GROUP BY"),
        ("SELECT DISTINCT ON ({x}) a FROM t", "x", "DISTINCT ON"),
        ("SELECT doc ->> {key} FROM t", "key", "parentheses"),
        ("SELECT date_trunc({unit}, ts) FROM t", "unit", "parentheses"),
        ("SELECT ({arr})[1]", "arr", "rewrite the expression"),
    ],
)
def test_refuses_placeholders_where_no_value_can_stand(query: str, name: str, says: str) -> None:
    error = refused(query)
    assert error.category == "template_parse_error"
    assert f"{{{name}}}" in error.message
    assert says in f"{error.message} {error.hint}"


def test_placeholder_position_errors_point_at_the_placeholder() -> None:
    error = refused("SELECT a\nFROM t\nORDER BY {x}")
    assert "line 3, column 10" in error.message


@pytest.mark.parametrize(
    "query",
    ["SELECT CAST(a AS {t}) FROM t", "SELECT a::{t} FROM t", "SELECT * FROM t WHERE a {op} b",
     "SELECT {f}(1)", "SELECT f({n} => 1)"],
)
def test_placeholders_as_types_keywords_or_operators_do_not_parse(query: str) -> None:
    assert refused(query).category == "template_parse_error"


@pytest.mark.parametrize("query", ["SELECT U&'d\\0061t'", 'SELECT U&"d\\0061t" FROM t'])
def test_refuses_unicode_escapes(query: str) -> None:
    error = refused(query)
    assert error.category == "template_parse_error"
    assert "standard_conforming_strings" in error.message


def test_refuses_backslash_strings_sqlglot_can_only_write_plainly() -> None:
    error = refused(r"SELECT doc ->> 'a\b' FROM t")
    assert error.category == "template_parse_error"
    assert "standard_conforming_strings" in error.message


# --- the round-trip helpers ---------------------------------------------------


def test_same_tree_compares_literal_text_exactly() -> None:
    lower = exp.select(exp.Literal.string("a"))
    upper = exp.select(exp.Literal.string("A"))
    assert not template.same_tree(lower, upper)
    assert template.same_tree(lower, lower.copy())


def test_round_trip_problem_reports_mismatches() -> None:
    tree = exp.select(exp.Literal.string("a"))
    assert template.round_trip_problem(tree, "SELECT 'a'") is None
    assert template.round_trip_problem(tree, "SELECT 'b'") == "it parses to a different tree"
    assert template.round_trip_problem(tree, "SELECT 'a'; SELECT 'a'") is not None
    assert "does not parse" in (template.round_trip_problem(tree, "SELECT (") or "")


def test_round_trip_problem_refuses_plain_strings_with_backslashes() -> None:
    tree = exp.select(exp.Literal.string("a\\b"))
    assert "backslash" in (template.round_trip_problem(tree, "SELECT 'a\\b'") or "")


def test_string_node_uses_escape_strings_only_for_backslashes() -> None:
    assert template.to_sql(template.string_node("it's")) == "'it''s'"
    assert template.to_sql(template.string_node("a\\b")) == "e'a\\\\b'"
