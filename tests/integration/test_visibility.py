"""Row-level security on the ledger: who sees which jobs, runs and attempts, through SQL."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

QUERY = "SELECT CAST({day} AS date) AS day, 1::bigint AS n"
PARAMS = '{"day": {"type": "date"}}'


@pytest.fixture
def world(db: psycopg.Connection, connect, make_role) -> dict:
    """owner defines a job and grants it to alice and bob, who each submit a run;
    eve has no part in it, reader is a member of pg_read_all_data, and
    alice_team is a member of alice."""
    roles = {name: make_role(name) for name in ("owner", "alice", "bob", "eve", "reader", "alice_team")}
    db.execute("CREATE TABLE public.daily (day date, n bigint)")
    db.execute(sql.SQL("GRANT INSERT ON public.daily TO {}").format(sql.Identifier(roles["owner"])))
    db.execute(sql.SQL("GRANT pg_read_all_data TO {}").format(sql.Identifier(roles["reader"])))
    db.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(roles["alice"]), sql.Identifier(roles["alice_team"])))
    conns = {name: connect(user=role) for name, role in roles.items()}
    conns["owner"].execute("SELECT jobledger.define_job('daily', %s, 'daily', params => %s)", (QUERY, PARAMS))
    for name in ("alice", "bob"):
        conns["owner"].execute("SELECT jobledger.grant_job('daily', %s)", (roles[name],))
    runs = {}
    for name, day in (("alice", "2026-11-01"), ("bob", "2026-11-02")):
        runs[name] = conns[name].execute(
            "SELECT jobledger.submit_job('daily', %s) AS id", ('{"day": "%s"}' % day,)
        ).fetchone()["id"]
    # An attempt for each run, as a runner would record it.
    db.execute("INSERT INTO jobledger.run_attempt (run, attempt, status, finished_at)"
               " SELECT id, 1, 'failed', now() FROM jobledger.run")
    return {"roles": roles, "conns": conns, "runs": runs, "admin": db}


def visible(conn: psycopg.Connection, relation: str, column: str = "id") -> set:
    return {r["v"] for r in conn.execute(f"SELECT {column} AS v FROM jobledger.{relation}").fetchall()}


def test_submitters_see_only_their_own_runs(world) -> None:
    conns, runs = world["conns"], world["runs"]
    for who in ("alice", "bob"):
        assert visible(conns[who], "run") == {runs[who]}
        assert visible(conns[who], "runs") == {runs[who]}
        assert visible(conns[who], "run_attempt", "run") == {runs[who]}
    # A member of the submitting role sees what the role sees.
    assert visible(conns["alice_team"], "runs") == {runs["alice"]}


def test_job_owner_readers_and_superusers_see_every_run(world) -> None:
    conns, runs = world["conns"], world["runs"]
    everything = set(runs.values())
    for conn in (conns["owner"], conns["reader"], world["admin"]):
        assert visible(conn, "run") == everything
        assert visible(conn, "runs") == everything
        assert visible(conn, "run_attempt", "run") == everything
        assert conn.execute("SELECT runs, pending FROM jobledger.job_stats").fetchone() == {"runs": 2, "pending": 2}


def test_outsiders_see_nothing(world) -> None:
    eve = world["conns"]["eve"]
    for relation in ("job", "job_version", "job_grant", "run", "run_attempt", "runs", "job_stats"):
        assert eve.execute(f"SELECT count(*) AS n FROM jobledger.{relation}").fetchone() == {"n": 0}, relation


def test_grantees_see_the_job_and_their_own_grant(world) -> None:
    conns, roles = world["conns"], world["roles"]
    alice = conns["alice"]
    assert visible(alice, "job", "name") == {"daily"}
    assert visible(alice, "job_version", "version") == {1}
    assert visible(alice, "job_grant", "grantee") == {roles["alice"]}
    assert alice.execute("SELECT runs FROM jobledger.job_stats").fetchone() == {"runs": 1}
    assert visible(conns["owner"], "job_grant", "grantee") == {roles["alice"], roles["bob"]}


def test_nobody_writes_the_ledger_directly(world) -> None:
    for who in ("alice", "owner", "reader"):
        conn = world["conns"][who]
        for statement in (
            "UPDATE jobledger.run SET status = 'cancelled', finished_at = now()",
            "DELETE FROM jobledger.run_attempt",
            "INSERT INTO jobledger.job_grant (job, grantee) VALUES ('daily', 'x')",
            "UPDATE jobledger.job SET owner = current_user",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    assert world["admin"].execute(
        "SELECT count(*) FILTER (WHERE status = 'pending') AS pending, count(*) AS n FROM jobledger.run"
    ).fetchone() == {"pending": 2, "n": 2}


def test_a_dropped_submitter_matches_no_one(world) -> None:
    """Runs outlive roles: a run whose submitter is gone stays visible to the
    job's owner and hides from everyone else instead of raising."""
    admin, runs = world["admin"], world["runs"]
    admin.execute("UPDATE jobledger.run SET submitted_by = 'jl_no_such_role' WHERE id = %s", (runs["bob"],))
    assert visible(world["conns"]["bob"], "runs") == set()
    assert visible(world["conns"]["owner"], "runs") == set(runs.values())
