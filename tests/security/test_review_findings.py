"""Attacks on the privilege boundaries that 0.4.0 left open, each tried
through SQL with real roles, asserting its effect: no right gained, nothing
changed, the error's category, nothing revealed."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import psycopg
import pytest
from psycopg import sql

import dbtools


def _as(connect: Any, role: str) -> psycopg.Connection:
    conn = connect()
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
    return conn


def _refused(conn: psycopg.Connection, query: str, params: Any = None) -> psycopg.Error:
    with pytest.raises(psycopg.Error) as caught:
        conn.execute(query, params)
    error = caught.value
    text = " ".join(filter(None, [str(error), error.diag.context or ""]))
    assert "Traceback" not in text and "spiexceptions" not in text and "None" not in str(error), text
    return error


@pytest.fixture
def roles(db: psycopg.Connection, make_role: Any) -> dict[str, str]:
    """Two owners and an outsider; a table each owner may write."""
    found = {name: make_role(name) for name in ("owner_a", "owner_b", "outsider")}
    db.execute("CREATE TABLE public.echo (v text)")
    for name in found.values():
        db.execute(sql.SQL("GRANT INSERT, SELECT ON public.echo TO {}").format(sql.Identifier(name)))
    return found


def test_a_waiting_definition_cannot_become_a_version_of_someone_elses_job(
        db: psycopg.Connection, connect: Any, roles: dict[str, str]) -> None:
    a, m = _as(connect, roles["owner_a"]), _as(connect, roles["owner_b"])
    a.execute("BEGIN")
    a.execute("SELECT jobledger.define_job('nightly_report', 'SELECT ''a''::text AS v', 'public.echo')")
    outcome: dict[str, Any] = {}

    def define_as_m() -> None:
        try:
            m.execute("SELECT jobledger.define_job('nightly_report', 'SELECT ''m''::text AS v', 'public.echo')")
            outcome["ok"] = True
        except psycopg.Error as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=define_as_m)
    thread.start()
    thread.join(timeout=1.5)
    assert thread.is_alive(), outcome  # M waits on the name's lock
    a.execute("COMMIT")
    thread.join(timeout=30)
    assert dbtools.category(outcome["error"]) == "permission_denied"
    assert roles["owner_a"] not in str(outcome["error"])  # the owner is not named
    versions = db.execute("SELECT version, created_by, query FROM jobledger.job_version"
                          " WHERE job = 'nightly_report'").fetchall()
    assert versions == [{"version": 1, "created_by": roles["owner_a"], "query": "SELECT 'a'::text AS v"}]


def test_idempotency_keys_belong_to_their_submitter(db: psycopg.Connection, connect: Any,
                                                    roles: dict[str, str]) -> None:
    a = _as(connect, roles["owner_a"])
    a.execute("SELECT jobledger.define_job('echo', 'SELECT {v}::text AS v', 'public.echo')")
    a.execute(sql.SQL("SELECT jobledger.grant_job('echo', {})").format(sql.Literal(roles["outsider"])))
    b = _as(connect, roles["outsider"])
    first = a.execute("SELECT jobledger.submit_job('echo', '{\"v\": \"from a\"}', 'k1') AS id").fetchone()["id"]
    again = a.execute("SELECT jobledger.submit_job('echo', '{\"v\": \"from a\"}', 'k1') AS id").fetchone()["id"]
    assert again == first
    other = b.execute("SELECT jobledger.submit_job('echo', '{\"v\": \"from b\"}', 'k1') AS id").fetchone()["id"]
    assert other != first
    rows = {r["id"]: r for r in db.execute("SELECT id, submitted_by, parameters FROM jobledger.run")}
    assert rows[other]["submitted_by"] == roles["outsider"] and rows[other]["parameters"] == {"v": "from b"}
    error = _refused(a, "SELECT jobledger.submit_job('echo', '{\"v\": \"changed\"}', 'k1')")
    assert dbtools.category(error) == "idempotency_conflict"
    assert db.execute("SELECT count(*) AS n FROM jobledger.run").fetchone()["n"] == 2


def test_retry_keys_cannot_be_squatted(db: psycopg.Connection, connect: Any, roles: dict[str, str]) -> None:
    a = _as(connect, roles["owner_a"])
    a.execute("SELECT jobledger.define_job('echo', 'SELECT {v}::text AS v', 'public.echo')")
    a.execute(sql.SQL("SELECT jobledger.grant_job('echo', {})").format(sql.Literal(roles["outsider"])))
    run = a.execute("SELECT jobledger.submit_job('echo', '{\"v\": \"x\"}') AS id").fetchone()["id"]
    a.execute("SELECT jobledger.cancel_run(%s)", (run,))
    b = _as(connect, roles["outsider"])
    squat = b.execute("SELECT jobledger.submit_job('echo', '{\"v\": \"evil\"}', %s) AS id",
                      (f"retry of {run}",)).fetchone()["id"]
    retried = a.execute("SELECT jobledger.retry_run(%s) AS id", (run,)).fetchone()["id"]
    assert retried != squat
    row = db.execute("SELECT submitted_by, parameters FROM jobledger.run WHERE id = %s", (retried,)).fetchone()
    assert row == {"submitted_by": roles["owner_a"], "parameters": {"v": "x"}}


def test_grant_job_takes_a_role_that_needs_quotes(db: psycopg.Connection, connect: Any,
                                                  roles: dict[str, str]) -> None:
    team = f"Team {uuid.uuid4().hex[:6]}"
    other = f"Team {uuid.uuid4().hex[:6]}"
    for name in (team, other):
        db.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
    try:
        a = _as(connect, roles["owner_a"])
        a.execute("SELECT jobledger.define_job('echo2', 'SELECT {v}::text AS v', 'public.echo')")
        a.execute("SELECT jobledger.grant_job('echo2', %s)", (f'"{team}"',))
        assert db.execute("SELECT grantee FROM jobledger.job_grant WHERE job = 'echo2'").fetchall() == [
            {"grantee": team}]
        _as(connect, team).execute("SELECT jobledger.submit_job('echo2', '{\"v\": \"t\"}')")
        error = _refused(_as(connect, other), "SELECT jobledger.submit_job('echo2', '{\"v\": \"t\"}')")
        assert dbtools.category(error) == "permission_denied"
        hint = error.diag.message_hint or ""
        call = hint[hint.index("jobledger.grant_job("):].rstrip(".")
        a.execute("SELECT " + call)  # the hint's call works as written
        _as(connect, other).execute("SELECT jobledger.submit_job('echo2', '{\"v\": \"u\"}')")
        assert a.execute("SELECT jobledger.revoke_job('echo2', %s) AS gone", (f'"{team}"',)).fetchone()["gone"]
    finally:
        db.execute("DELETE FROM jobledger.job_grant WHERE grantee IN (%s, %s)", (team, other))
        db.execute("DELETE FROM jobledger.run WHERE submitted_by IN (%s, %s)", (team, other))
        for name in (team, other):
            db.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def test_invisible_jobs_and_runs_look_absent(db: psycopg.Connection, connect: Any, roles: dict[str, str]) -> None:
    a = _as(connect, roles["owner_a"])
    a.execute("SELECT jobledger.define_job('slow', 'SELECT {v}::text AS v', 'public.echo')")
    run = a.execute("SELECT jobledger.submit_job('slow', '{\"v\": \"x\"}') AS id").fetchone()["id"]
    outsider = _as(connect, roles["outsider"])
    for query, params, category in [
        ("SELECT jobledger.cancel_run(%s)", (run,), "unknown_run"),
        ("SELECT jobledger.grant_job('slow', %s)", (roles["outsider"],), "unknown_job"),
        ("SELECT jobledger.drop_job('slow')", None, "unknown_job"),
        ("SELECT jobledger.define_job('slow', 'SELECT ''o''::text AS v', 'public.echo')", None, "permission_denied"),
    ]:
        error = _refused(outsider, query, params)
        assert dbtools.category(error) == category, (query, error)
        assert roles["owner_a"] not in str(error), (query, error)
    assert dbtools.run_row(db, run)["status"] == "pending"


@pytest.mark.parametrize("timeout", ["1 month", "0.4 ms", "0 s", "-5 s"])
def test_timeouts_out_of_statement_timeouts_range_are_refused(db: psycopg.Connection, timeout: str) -> None:
    db.execute("CREATE TABLE public.t_echo (v text)")
    error = _refused(db, "SELECT jobledger.define_job('t', 'SELECT ''x''::text AS v', 'public.t_echo',"
                         " timeout => %s::interval)", (timeout,))
    assert dbtools.category(error) == "invalid_argument"
    assert db.execute("SELECT count(*) AS n FROM jobledger.job").fetchone()["n"] == 0


@pytest.mark.parametrize("call, params", [
    ("SELECT jobledger.submit_job('e', '{}', run_after => 'infinity')", None),
    ("SELECT jobledger.submit_job('e', '{}', run_after => '-infinity')", None),
    ("SELECT jobledger.submit_job('e', '{}', priority => NULL)", None),
    ("SELECT jobledger.submit_job(NULL)", None),
    ("SELECT jobledger.submit_job('e', '{}', %s)", ("k" * 3_000_000,)),
    ("SELECT jobledger.grant_job('e', NULL)", None),
    ("SELECT jobledger.define_job('e2', 'SELECT 1 AS v', 'result', mode => NULL)", None),
    ("SELECT jobledger.define_job(NULL, 'SELECT 1 AS v', 'result')", None),
    ("SELECT jobledger.submit_job('e', %s::jsonb)", ('{"v": ' + "[" * 995 + "]" * 995 + "}",)),
])
def test_bad_arguments_get_one_clear_error(db: psycopg.Connection, call: str, params: Any) -> None:
    db.execute("SELECT jobledger.define_job('e', 'SELECT 1 AS v', 'result')")
    error = _refused(db, call, params)
    assert dbtools.category(error) == "invalid_argument", error
    assert db.execute("SELECT count(*) AS n FROM jobledger.run").fetchone()["n"] == 0


def test_a_job_reading_a_catalog_its_owner_may_not_read_is_refused(db: psycopg.Connection, connect: Any,
                                                                    roles: dict[str, str]) -> None:
    a = _as(connect, roles["owner_a"])
    error = _refused(a, "SELECT jobledger.define_job('secrets', 'SELECT rolname::text AS v FROM pg_authid',"
                        " 'public.echo')")
    assert dbtools.category(error) == "permission_denied"
    assert "pg_authid" in str(error)
    assert db.execute("SELECT count(*) AS n FROM jobledger.job").fetchone()["n"] == 0


def test_a_revoke_is_seen_by_the_next_submit_in_every_session(db: psycopg.Connection, connect: Any,
                                                              roles: dict[str, str]) -> None:
    db.execute("CREATE TABLE public.src (v text)")
    db.execute(sql.SQL("GRANT SELECT ON public.src TO {}").format(sql.Identifier(roles["owner_a"])))
    a = _as(connect, roles["owner_a"])
    a.execute("SELECT jobledger.define_job('copy', 'SELECT v FROM public.src WHERE v <> {skip}::text', 'public.echo')")
    a.execute("SELECT jobledger.submit_job('copy', '{\"skip\": \"x\"}')")  # this session now knows the job
    db.execute(sql.SQL("REVOKE SELECT ON public.src FROM {}").format(sql.Identifier(roles["owner_a"])))
    error = _refused(a, "SELECT jobledger.submit_job('copy', '{\"skip\": \"y\"}')")
    assert dbtools.category(error) == "permission_denied"
    assert "public.src" in str(error)
    db.execute(sql.SQL("GRANT SELECT (v) ON public.src TO {}").format(sql.Identifier(roles["owner_a"])))
    a.execute("SELECT jobledger.submit_job('copy', '{\"skip\": \"z\"}')")  # a column grant is enough again
    db.execute("DROP TABLE public.src")
    error = _refused(a, "SELECT jobledger.submit_job('copy', '{\"skip\": \"w\"}')")
    assert dbtools.category(error) == "permission_denied" and "no longer exists" in str(error)
    assert db.execute("SELECT count(*) AS n FROM jobledger.run WHERE job = 'copy'").fetchone()["n"] == 2
