"""Hostile templates and values: each is text that one SQL reader
may take for a single harmless SELECT (or one literal) while PostgreSQL reads
more.  Markers filled in per test (``sectools.Canary.fill``): ``@HARM@`` (the
statements that leave traces), ``@ROLE@``, ``@CANARY@``, ``@FILE@``, ``@LOCK@``.
"""

from __future__ import annotations

import dataclasses

import pytest

REFUSED = "refused"    # one of the two template refusals
ACCEPTED = "accepted"  # PostgreSQL reads one plain SELECT: stored verbatim, nothing runs
EITHER = "either"


@dataclasses.dataclass(frozen=True)
class Template:
    text: str
    outcome: str = REFUSED
    params: str | None = None  # the declarations, for templates with placeholders


X_TEXT = '{"x": {"type": "text"}}'

TEMPLATES = {
    # The exploit of issue 10, as reported, and with other operators before "--".
    "op_hash": Template("SELECT 1 OPERATOR(#--) 'x\n) 2 AS i; @HARM@; SELECT 1 --' AS i"),
    "op_at": Template("SELECT 1 OPERATOR(@--) 'x\n) 2 AS i; @HARM@; SELECT 1 --' AS i"),
    "op_qualified": Template("SELECT 1 OPERATOR(pg_catalog.#--) 'x\n) 2 AS i; @HARM@; SELECT 1 --' AS i"),
    "op_plus_minus": Template("SELECT 1 OPERATOR(pg_catalog.+--) 'x\n) 2 AS i; @HARM@; SELECT 1 --' AS i"),
    "bare_hash": Template("SELECT 1 #-- 'x\n 2 AS i; @HARM@; SELECT 1 --' AS i"),
    "bare_lt": Template("SELECT 1 <-- 'x\n 2 AS i; @HARM@; SELECT 1 --' AS i"),
    "bare_tilde": Template("SELECT 1 ~-- 'x\n 2 AS i; @HARM@; SELECT 1 --' AS i"),
    "op_cr": Template("SELECT 1 OPERATOR(#--) 'x\r) 2 AS i; @HARM@; SELECT 1 --' AS i"),
    # "/*" inside OPERATOR(): PostgreSQL ends the operator where a comment starts.
    "op_block_comment": Template("SELECT 1 OPERATOR(#/*) 'x */) 2 AS i; @HARM@; SELECT 1 /*' AS i */"),
    "bare_block_comment": Template("SELECT 1 #/* 'x */ 2 AS i; @HARM@; SELECT 1 /*' AS i */"),
    # PostgreSQL nests block comments; a reader that does not ends them early.
    "nested_comment": Template("SELECT 1 AS i, /* /* */ '*/ 2 AS j; @HARM@; SELECT 1 AS k --' AS j"),
    "nested_comment_hides_all": Template("SELECT 1 AS i /* /* */ ; @HARM@; SELECT 1 AS j --*/", ACCEPTED),
    # Escape strings and backslashes (standard_conforming_strings is on).
    "estring_quote": Template("SELECT E'\\'' AS i, 1 AS j; @HARM@; SELECT 1 AS k --' AS l"),
    "estring_backslash": Template("SELECT E'\\\\' AS i, 1 AS j; @HARM@; SELECT 1 AS k --' AS l"),
    "estring_hides": Template("SELECT E'\\' AS i, 1 AS j; @HARM@; SELECT 1 AS k --' AS i", ACCEPTED),
    "plain_backslash": Template("SELECT '\\' AS i, 1 AS j; @HARM@; SELECT 1 AS k --' AS l"),
    # One SELECT with standard_conforming_strings on, three with it off.
    "plain_backslash_quote": Template("SELECT 'a\\' AS i, '; @HARM@; SELECT 1 AS k --' AS l", EITHER),
    "estring_octal_quote": Template("SELECT E'\\047' AS i, 1 AS j; @HARM@; SELECT 1 AS k --' AS l"),
    # Dollar quotes.
    "dollar_empty_tag": Template("SELECT $$x$$ AS i, 1 AS j; @HARM@; SELECT 1 AS k --$$ AS l"),
    "dollar_tag": Template("SELECT $a$x$a$ AS i, 1 AS j; @HARM@; SELECT 1 AS k --$a$ AS l"),
    "dollar_inner_dollars": Template("SELECT $a$ $$ $a$ AS i, 1 AS j; @HARM@; SELECT $$ $$ AS k"),
    "dollar_partial_tag": Template("SELECT $a$ $a $a$ AS i, 1 AS j; @HARM@; SELECT $a$ $a$ AS k"),
    "dollar_in_identifier": Template("SELECT 1 AS i, 2 AS a$$, 3 AS j; @HARM@; SELECT 1 AS k --$$ AS l"),
    "dollar_hides": Template("SELECT $a$ '; @HARM@; SELECT ' $a$ AS i", ACCEPTED),
    # Unicode escapes.
    "uescape": Template("SELECT U&'!0027' UESCAPE '!' AS i, 1 AS j; @HARM@; SELECT 1 AS k --' AS l"),
    "unicode_quote": Template("SELECT U&'\\0027' AS i, 1 AS j; @HARM@; SELECT 1 AS k --' AS l"),
    "uescape_quote_char": Template("SELECT U&'x' UESCAPE '''' AS i; @HARM@; SELECT 1 AS k --' AS l"),
    "unicode_identifier": Template("SELECT 1 AS U&\"a\"; @HARM@; SELECT 1 AS k --\" AS l"),
    # Placeholders the two readers see in different places (each also has one
    # both see, so that x is used either way).
    "placeholder_in_comment_for_pg": Template(
        "SELECT {x} AS a, 1 OPERATOR(#--) '{x}\n) {x} AS i --' AS b", REFUSED, X_TEXT),
    "placeholder_in_comment_for_sqlglot_not_pg": Template(
        "SELECT {x} AS a, 1 OPERATOR(#--) {x} AS b, '\n) 2 AS i --' AS c", REFUSED, X_TEXT),
    "placeholder_in_string_for_sqlglot": Template(
        "SELECT {x} AS a, 1 OPERATOR(#--) '{x}\n) {x} AS i; @HARM@; SELECT 1 --' AS i", REFUSED, X_TEXT),
    # ... and where they agree: accepted, and the text that only looks like one stays.
    "placeholder_in_nested_comment": Template(
        "SELECT {x} AS a, 1 AS i, /* /* */ {x} AS j, '*/ 2 AS j --' AS k", ACCEPTED, X_TEXT),
    "placeholder_in_estring": Template("SELECT {x} AS a, E'\\', {x} AS j, ' AS i", ACCEPTED, X_TEXT),
    "placeholder_in_dollar_tag": Template("SELECT $a${x}$a$ AS i, {x} AS j", ACCEPTED, X_TEXT),
    "placeholder_in_line_comment": Template("SELECT {x} AS i -- and {x}", ACCEPTED, X_TEXT),
    # Trailing comments.
    "trailing_comment": Template("SELECT 1 AS i --", ACCEPTED),
    "trailing_comment_then_more": Template("SELECT 1 AS i --\n; @HARM@"),
    "trailing_open_comment": Template("SELECT 1 AS i /*"),
    # Plainly more, or other, than one SELECT.
    "copy_to_program": Template("SELECT 1 AS i; COPY (SELECT 1) TO PROGRAM 'touch @FILE@'"),
    "semicolon_then_harm": Template("SELECT 1 AS i; @HARM@"),
    "harm_first": Template("@HARM@; SELECT 1 AS i"),
    "select_into": Template("SELECT 1 AS i INTO public.@CANARY@"),
    "select_into_temp": Template("SELECT 1 AS i INTO TEMPORARY @CANARY@"),
    "create_table_as": Template("CREATE TABLE public.@CANARY@ AS SELECT 1 AS i"),
    "cte_update": Template(
        "WITH c AS (UPDATE pg_catalog.pg_authid SET rolsuper = true WHERE rolname = '@ROLE@' RETURNING 1)"
        " SELECT 1 AS i FROM c"),
    "cte_insert": Template("WITH c AS (INSERT INTO jobledger.job (name, owner) VALUES ('x', '@ROLE@')"
                           " RETURNING 1) SELECT 1 AS i"),
    "cte_delete_nested": Template(
        "SELECT (WITH c AS (DELETE FROM jobledger.run RETURNING 1) SELECT count(*) FROM c) AS i"),
    "cte_merge": Template("WITH c AS (MERGE INTO jobledger.job j USING (SELECT 1) s ON true"
                          " WHEN MATCHED THEN DELETE) SELECT 1 AS i"),
    "for_update": Template("SELECT 1 AS i FROM pg_catalog.pg_class FOR UPDATE"),
    "for_share_skip": Template("SELECT 1 AS i FROM pg_catalog.pg_class FOR KEY SHARE SKIP LOCKED"),
    "subquery_for_update": Template("SELECT i FROM (SELECT 1 AS i FROM pg_catalog.pg_class FOR UPDATE) s"),
    "alter_role": Template("ALTER ROLE @ROLE@ SUPERUSER"),
    "do_block": Template("DO $d$BEGIN EXECUTE $x$ALTER ROLE @ROLE@ SUPERUSER$x$; END$d$"),
    "explain_analyze": Template("EXPLAIN ANALYZE SELECT pg_catalog.pg_advisory_lock(@LOCK@) AS i"),
    # One plain SELECT that would leave a trace if anything ran it while defining.
    "select_takes_lock": Template("SELECT pg_catalog.pg_try_advisory_lock(@LOCK@) AS i", ACCEPTED),
}


def template_params() -> list:
    return [pytest.param(key, template, id=key) for key, template in TEMPLATES.items()]


# Values a LOGIN-only submitter sends for a text placeholder: each must arrive
# as one literal holding exactly these characters.
VALUES = {
    "quote": "x'; @HARM@; --",
    "backslash_quote": "x\\'; @HARM@; --",
    "backslash_end": "x\\",
    "double_backslash_quote": "\\\\'; @HARM@; --",
    "doubled_quotes": "'''' ; @HARM@; --",
    "dollar": "$$; @HARM@; --$$",
    "dollar_tag": "$jl$; @HARM@; --",
    "comment_close": "*/; @HARM@; /*",
    "comment_open": "/* ; @HARM@",
    "newline": "x\n; @HARM@;\n-- ",
    "carriage_return": "x\r'; @HARM@; --",
    "placeholder": "{x} {y}",
    "estring": "E'\\''; @HARM@; --",
    "uescape": "U&'\\0027' UESCAPE '!'; @HARM@; --",
    "unicode_quotes": "\u02bc\uff07\u2019; @HARM@; --",
    "line_separator": "\u2028'; @HARM@; --",
}


def value_params() -> list:
    return [pytest.param(value, id=key) for key, value in VALUES.items()]
