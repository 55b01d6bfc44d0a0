"""Helpers for the template exploit tests: PostgreSQL's own reading of a text
(pglast, libpg_query: the server's grammar) and the effects a hostile
template or value would leave behind if any of it had run.

The effects are chosen so that each survives the rollback of the refused call
that carried it, or is checked while it would still be visible:

* ``pg_advisory_lock(key)``: a session-level advisory lock is kept even when
  the transaction that took it rolls back, and any role may take one, so it
  shows that *any* statement of the payload ran, with whatever rights;
* ``ALTER ROLE <attacker> SUPERUSER``, ``CREATE TABLE public.<canary>``: what
  a run with the extension owner's rights would do (the attacker may not
  create in schema public);
* ``COPY (SELECT 1) TO PROGRAM 'touch <file>'``: a file written by the
  server's OS user, which no rollback takes back.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import random
import re
import uuid
from typing import Any

import psycopg

import dbtools

PARSE_ERROR = "template_parse_error"
NOT_SELECT = "template_not_select"
# The two categories a hostile template may get, with their SQLSTATEs.
TEMPLATE_REFUSALS = {PARSE_ERROR: "42601", NOT_SELECT: "0A000"}

PLACEHOLDER = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")
_MODIFYING = frozenset({"InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"})


# ---- PostgreSQL's grammar ---------------------------------------------------


def pglast_module() -> Any:
    """pglast, whose 5.x releases are PostgreSQL 15's parser (the server's)."""
    import pglast
    import pglast.parser

    return pglast


def pg_tree(text: str) -> list[dict[str, Any]]:
    """The raw statements PostgreSQL's grammar reads in ``text`` (JSON form:
    the same keys in every pglast release).  Raises pglast's ParseError."""
    return json.loads(pglast_module().parser.parse_sql_json(text))["stmts"]


def plain_select_problems(text: str) -> list[str]:
    """Why PostgreSQL would not read ``text`` as exactly one plain SELECT
    (empty when it does): statement count and kind, INTO, locking, any
    INSERT/UPDATE/DELETE/MERGE anywhere in the tree (WITH included)."""
    stmts = pg_tree(text)
    problems = []
    if len(stmts) != 1:
        problems.append(f"{len(stmts)} statements")
    for raw in stmts:
        kinds = list(raw["stmt"])
        if kinds != ["SelectStmt"]:
            problems.append(f"a {kinds[0]}")
    for key, node in _walk(stmts):
        if key in _MODIFYING:
            problems.append(f"a {key} inside")
        if key == "SelectStmt" and node.get("intoClause"):
            problems.append("SELECT INTO")
        if key == "SelectStmt" and node.get("lockingClause"):
            problems.append("a locking clause")
    return problems


def with_nulls(text: str) -> str:
    """``text`` with every ``{name}`` replaced by NULL, as the fuzz oracle reads it."""
    return PLACEHOLDER.sub("NULL", text)


def _walk(node: Any) -> Any:
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, dict):
                yield key, value
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def single_literal(text: str) -> bool:
    """Whether PostgreSQL reads ``SELECT <text>`` as one SELECT of one constant
    (a string, number, NULL, or a cast of one: what a rendered value may be)."""
    try:
        stmts = pg_tree(f"SELECT {text}")
    except Exception:  # pglast's ParseError: not even an expression
        return False
    if len(stmts) != 1 or list(stmts[0]["stmt"]) != ["SelectStmt"]:
        return False
    select = stmts[0]["stmt"]["SelectStmt"]
    if set(select) - {"targetList", "limitOption", "op"} or len(select["targetList"]) != 1:
        return False
    value = select["targetList"][0]["ResTarget"]["val"]
    while "TypeCast" in value:
        value = value["TypeCast"]["arg"]
    return list(value) == ["A_Const"]


# ---- the payload's effects ----------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Canary:
    """What one test's payloads try to leave behind; ``assert_untouched`` checks none of it happened."""

    role: str
    table: str
    file: pathlib.Path
    lock: int

    def harm(self) -> str:
        """Statements that each leave a trace (no single quotes: they must fit inside a string)."""
        return (f"SELECT pg_catalog.pg_advisory_lock({self.lock}); ALTER ROLE {self.role} SUPERUSER; "
                f"CREATE TABLE public.{self.table} (); "
                f"COPY (SELECT 1) TO PROGRAM $jl$touch {self.file}$jl$")

    def fill(self, text: str) -> str:
        return (text.replace("@HARM@", self.harm()).replace("@ROLE@", self.role)
                .replace("@CANARY@", self.table).replace("@FILE@", str(self.file))
                .replace("@LOCK@", str(self.lock)))

    def assert_untouched(self, db: psycopg.Connection, *roles: str) -> None:
        for role in (self.role, *roles):
            row = db.execute("SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolreplication"
                             " FROM pg_catalog.pg_roles WHERE rolname = %s", (role,)).fetchone()
            assert row == {"rolsuper": False, "rolcreaterole": False, "rolcreatedb": False,
                           "rolbypassrls": False, "rolreplication": False}, f"{role} gained rights: {row}"
            members = db.execute("SELECT count(*) AS n FROM pg_catalog.pg_auth_members m"
                                 " JOIN pg_catalog.pg_roles r ON r.oid = m.member WHERE r.rolname = %s",
                                 (role,)).fetchone()
            assert members == {"n": 0}, f"{role} was granted a role"
        assert db.execute("SELECT to_regclass(%s) AS c", (f"public.{self.table}",)).fetchone() == {"c": None}
        assert not self.file.exists(), f"the server wrote {self.file}"
        held = db.execute("SELECT count(*) AS n FROM pg_catalog.pg_locks"
                          " WHERE locktype = 'advisory' AND classid = 0 AND objid = %s", (self.lock,)).fetchone()
        assert held == {"n": 0}, "a statement of the payload ran (its advisory lock is held)"


def make_canary(db: psycopg.Connection, role: str, directory: pathlib.Path) -> Canary:
    return Canary(role=role, table=f"canary_{uuid.uuid4().hex[:10]}",
                  file=directory / f"pwned_{uuid.uuid4().hex[:10]}",
                  lock=random.SystemRandom().randrange(1_000_000, 2**31 - 1))


def writable_directory() -> pathlib.Path:
    """A directory under /tmp the server's OS user (postgres) may write in."""
    path = pathlib.Path("/tmp") / f"jl_sec_{uuid.uuid4().hex[:10]}"
    path.mkdir(mode=0o777)
    os.chmod(path, 0o1777)
    return path


def ledger_counts(db: psycopg.Connection) -> dict[str, int]:
    return db.execute("SELECT (SELECT count(*) FROM jobledger.job) AS jobs,"
                      " (SELECT count(*) FROM jobledger.job_version) AS versions,"
                      " (SELECT count(*) FROM jobledger.run) AS runs").fetchone()


def assert_template_refusal(error: psycopg.Error) -> str:
    """``error`` is one of the two template refusals, with its SQLSTATE; its category."""
    found = dbtools.category(error)
    assert found in TEMPLATE_REFUSALS, f"category {found!r} ({error.sqlstate}): {error}"
    assert error.sqlstate == TEMPLATE_REFUSALS[found], f"{found} with SQLSTATE {error.sqlstate}: {error}"
    return found
