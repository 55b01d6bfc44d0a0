"""Job versions an older jobledger recorded keep working after ALTER EXTENSION
jobledger UPDATE to 0.5.0, checked again under the new template rules with
their owners' rights; those the new rules refuse are reported, not lost."""

from __future__ import annotations

import json
import uuid
from typing import Any, Iterator

import psycopg
import pytest
from psycopg import sql

import dbtools


def _version(conn: psycopg.Connection, name: str, owner: str, query: str, destination: str,
             params: dict[str, Any] | None = None) -> None:
    """A job with one version, written as jobledger 0.4.0 would have stored it."""
    with conn.transaction():
        conn.execute("INSERT INTO jobledger.job (name, owner, current_version) VALUES (%s, %s, 1)", (name, owner))
        conn.execute(
            "INSERT INTO jobledger.job_version (job, version, query, params, destination, created_by)"
            " VALUES (%s, 1, %s, %s, %s, %s)",
            (name, query, None if params is None else json.dumps(params), destination, owner),
        )


@pytest.fixture
def old_db(empty_db: psycopg.Connection, make_role: Any) -> Iterator[tuple[psycopg.Connection, str, str]]:
    conn = empty_db
    conn.execute("CREATE EXTENSION jobledger VERSION '0.4.0' CASCADE")
    owner = make_role("owner")
    gone = f"jl_gone_{uuid.uuid4().hex[:8]}"  # dropped below, so not one of make_role's
    conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(gone)))
    conn.execute("CREATE TABLE public.daily (day date, n bigint)")
    conn.execute("CREATE TABLE public.secret (v int)")
    conn.execute(sql.SQL("GRANT INSERT, SELECT ON public.daily TO {}").format(sql.Identifier(owner)))
    conn.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(owner)))
    _version(conn, "typed", owner, "SELECT {day} AS day, count(*) AS n FROM pg_catalog.pg_class",
             "public.daily", {"day": {"type": "date"}})
    _version(conn, "untyped", owner, "SELECT CAST({day} AS date) AS day, {n}::bigint AS n", "public.daily")
    _version(conn, "two_statements", owner, "SELECT 1 AS day; SELECT 2", "public.daily")
    _version(conn, "not_allowed", owner, "SELECT NULL::date AS day, v::bigint AS n FROM public.secret",
             "public.daily")
    _version(conn, "orphaned", gone, "SELECT NULL::date AS day, 1::bigint AS n", "public.daily")
    conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(gone)))
    yield conn, owner, gone
    conn.execute("RESET ROLE")
    conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(owner)))  # before make_role drops it


def test_update_checks_every_current_version(old_db: tuple[psycopg.Connection, str, str]) -> None:
    conn, owner, gone = old_db
    notices: list[str] = []
    conn.add_notice_handler(lambda diag: notices.append(f"{diag.severity}: {diag.message_primary}"))
    conn.execute("ALTER EXTENSION jobledger UPDATE")
    checks = {r["job"]: r for r in conn.execute("SELECT * FROM jobledger.job_version_check")}
    assert set(checks) == {"typed", "untyped", "two_statements", "not_allowed", "orphaned"}
    assert checks["typed"]["problem"] is None
    assert checks["typed"]["placeholders"] == [[7, 12, "day"]]
    assert checks["typed"]["shapes"] == {"": [["day", "date"], ["n", "bigint"]]}
    assert checks["untyped"]["problem"] is None
    assert "unknown,integer" in checks["untyped"]["shapes"] or "integer,unknown" in checks["untyped"]["shapes"]
    assert "2 statements" in checks["two_statements"]["problem"]
    assert "may not use" in checks["not_allowed"]["problem"]  # analysed with the owner's rights
    assert "no longer exists" in checks["orphaned"]["problem"]
    refused = {r["job"] for r in conn.execute("SELECT job FROM jobledger.refused_versions")}
    assert refused == {"two_statements", "not_allowed", "orphaned"}
    assert any(n.startswith("WARNING") and "two_statements" in n and "not_allowed" in n and "orphaned" in n
               for n in notices), notices
    # The upgrade ran nothing as the owner beyond the analysis: the role is unchanged.
    assert conn.execute("SELECT current_user AS u").fetchone()["u"] != owner


def test_checked_versions_submit_and_refused_ones_say_why(old_db: tuple[psycopg.Connection, str, str]) -> None:
    conn, owner, _ = old_db
    conn.execute("ALTER EXTENSION jobledger UPDATE")
    run = conn.execute("SELECT jobledger.submit_job('typed', '{\"day\": \"2026-11-01\"}') AS id").fetchone()["id"]
    rendered = conn.execute("SELECT rendered_sql FROM jobledger.run WHERE id = %s", (run,)).fetchone()
    assert rendered["rendered_sql"] == ("SELECT CAST('2026-11-01' AS DATE) AS day, count(*) AS n"
                                        " FROM pg_catalog.pg_class")
    conn.execute("SELECT jobledger.submit_job('untyped', '{\"day\": \"2026-11-02\", \"n\": 7}')")
    with pytest.raises(psycopg.Error) as caught:
        conn.execute("SELECT jobledger.submit_job('two_statements')")
    assert dbtools.category(caught.value) == "template_parse_error"
    assert "defines the job again" in (caught.value.diag.message_hint or "")
    assert conn.execute("SELECT count(*) AS n FROM jobledger.run WHERE job = 'two_statements'").fetchone()["n"] == 0
    # Defining the job again makes a checked version that submits.
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(owner)))
    version = conn.execute("SELECT jobledger.define_job('two_statements', 'SELECT NULL::date AS day, 2::bigint AS n',"
                           " 'public.daily') AS v").fetchone()["v"]
    conn.execute("RESET ROLE")
    assert version == 2
    conn.execute("SELECT jobledger.submit_job('two_statements')")
