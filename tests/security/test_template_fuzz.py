"""Differential fuzz of define_job against PostgreSQL's grammar (pglast).

Random SQL-like text is built from fragments that mean something to one SQL
reader or another (quotes of every kind, comment markers, dollar tags,
OPERATOR(, semicolons, placeholders, data-modifying keywords).  define_job
is called with it by a LOGIN-only role.  Whatever it refuses must be refused
with a category (no Python traceback); whatever it ACCEPTS must be, in PostgreSQL's own grammar, exactly one SELECT with no
INTO, no locking clause and no INSERT/UPDATE/DELETE/MERGE anywhere, and must
be stored exactly as written.  And nothing of any text may have run while
defining (sectools.Canary: rights, canary table, file, advisory lock).

Deterministic (``derandomize``): the same examples on every run, so CI sees
the same verdict; widen locally with ``--hypothesis-seed`` and a larger
``max_examples``.
"""

from __future__ import annotations

import itertools
import json

import hypothesis
import hypothesis.strategies as st
import psycopg

import dbtools
import sectools

SETTINGS = hypothesis.settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture, hypothesis.HealthCheck.too_slow],
)

FRAGMENTS = (
    "SELECT ", "1", "2", "x", "c", " AS c", " AS d", ", ", " ", "  ", "\n", "\r\n", "\t",
    "'", "''", "'a'", "E'", "e'", "\\", "\\'", "\\\\", "U&'", "U&\"", " UESCAPE '!'", "!0027", "\\0027",
    '"', '""', "--", "/*", "*/", "/* /* */", "$$", "$a$", "$a", "a$", "$1",
    ";", "OPERATOR(", "OPERATOR(pg_catalog.", ")", "(", "#", "@", "+", "-", "<", ">", "~", "!", "|", "^",
    "#--", "@--", "+/*", "{x}", "{y}", "{", "}", "{x", "::text", "::int",
    "INSERT", " INTO ", "INTO t", " INTO TEMP t", "DELETE FROM t", "UPDATE t SET c = 1", "MERGE",
    " FOR UPDATE", " FOR SHARE", " FOR NO KEY UPDATE", " SKIP LOCKED", "WITH ", "w AS (", "RETURNING 1",
    " FROM pg_catalog.pg_class", " FROM w", " WHERE ", " UNION SELECT 1", "VALUES (1)", "TABLE ",
    "ALTER ROLE @ROLE@ SUPERUSER", "pg_catalog.pg_try_advisory_lock(@LOCK@)",
    "SELECT pg_catalog.pg_advisory_lock(@LOCK@)", "COPY (SELECT 1) TO PROGRAM 'touch @FILE@'",
    "CREATE TABLE public.@CANARY@ ()", "DO $d$BEGIN END$d$",
)

HEADS = ("", "SELECT ", "SELECT 1 AS c, ", "SELECT {x} AS c, ", "WITH w AS (SELECT 1 AS c) SELECT ")
TAILS = ("", " AS z", " AS z -- tail", "\n", ";")


def texts() -> st.SearchStrategy[str]:
    body = st.lists(st.sampled_from(FRAGMENTS), min_size=0, max_size=10).map("".join)
    return st.builds(lambda head, middle, tail: head + middle + tail,
                     st.sampled_from(HEADS), body, st.sampled_from(TAILS))


_names = itertools.count()


def test_whatever_define_job_accepts_is_one_plain_select(db, connect, canary) -> None:
    attacker = connect(user=canary.role)
    attacker.execute("SET statement_timeout = '10s'")
    accepted: list[str] = []

    @SETTINGS
    @hypothesis.given(raw=texts(), scs=st.sampled_from(["on", "off"]))
    def check(raw: str, scs: str) -> None:
        text = canary.fill(raw)
        attacker.execute("SELECT pg_catalog.set_config('standard_conforming_strings', %s, false)", (scs,))
        name = f"fz_{next(_names)}"
        declared = json.dumps({n: {"type": "text"} for n in ("x", "y") if f"{{{n}}}" in text}) or None
        before = sectools.ledger_counts(db)
        try:
            attacker.execute("SELECT jobledger.define_job(%s, %s, 'result', params => %s::jsonb)",
                             (name, text, None if declared == "{}" else declared))
        except psycopg.Error as error:
            assert sectools.ledger_counts(db) == before, f"a refused define left rows: {text!r}"
            # Refused as the API refuses: a category, no Python in the message.
            assert dbtools.category(error) is not None, f"{text!r}: {error.sqlstate} {error}"
            assert "Traceback" not in (error.diag.context or ""), f"{text!r}: {error}"
            canary.assert_untouched(db)
            return
        canary.assert_untouched(db)
        accepted.append(text)
        stored = db.execute("SELECT query FROM jobledger.job_version WHERE job = %s", (name,)).fetchone()
        assert stored == {"query": text}, "stored other than written"
        try:
            problems = sectools.plain_select_problems(sectools.with_nulls(text))
        except Exception as error:  # pglast's ParseError
            problems = [f"PostgreSQL's grammar rejects it: {error}"]
        assert problems == [], f"define_job accepted {text!r} (standard_conforming_strings {scs})"

    check()
    # Not vacuous: the grammar of fragments does reach acceptance.
    assert len(accepted) >= 10, accepted
