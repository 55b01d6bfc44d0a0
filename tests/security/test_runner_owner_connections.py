"""``jobledger runner --connect-as-owner``: each run executes on a connection
authenticated as its job's owner, through a real pg_hba.conf/pg_ident.conf
peer map in the private cluster (the runner's OS user may log in as members
of jobledger_owners).  A job that undoes SET ROLE reaches nothing beyond its
owner there, while it does in the --set-role mode; every mode of write runs
exactly once; a runner killed mid-run still leads to exactly one write."""

from __future__ import annotations

import os
import pathlib
import pwd
import signal
from typing import Iterator

import psycopg
import pytest
from psycopg import sql

import dbtools
import runnertools

GROUP = "jobledger_owners"
MAP_LINE = f"local all +{GROUP} peer map=jobledger\n"
GRANT = (f"GRANT EXECUTE ON FUNCTION jobledger_internal.attach_run(uuid, integer, text),"
         " jobledger_internal.complete_attached_run(uuid, integer, text, bigint, text, jsonb),"
         " jobledger_internal.emit_attached_output(uuid, integer, text, text, text, bytea, uuid[]),"
         f" jobledger_internal.lock_attached_run(uuid, integer, text) TO {GROUP}")


def _login_fails(db: psycopg.Connection, role: str) -> bool:
    try:
        psycopg.connect(**{**dbtools.conninfo(db), "user": role}).close()
    except psycopg.OperationalError:
        return True
    return False


@pytest.fixture
def owners(db: psycopg.Connection, make_role) -> Iterator[tuple[str, str]]:
    """owner_a and owner_b, members of jobledger_owners, which the runner's OS
    user may log in as by peer authentication (and only them: a member
    without a pg_ident.conf line is refused).  pg_hba.conf and pg_ident.conf
    are restored afterwards."""
    if db.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (GROUP,)).fetchone() is None:
        db.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(GROUP)))
    db.execute(GRANT)
    owner_a, owner_b, unmapped = make_role("owner_a"), make_role("owner_b"), make_role("unmapped")
    for role in (owner_a, owner_b, unmapped):
        db.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(GROUP), sql.Identifier(role)))
    hba = pathlib.Path(db.execute("SHOW hba_file").fetchone()["hba_file"])
    ident = pathlib.Path(db.execute("SHOW ident_file").fetchone()["ident_file"])
    saved = hba.read_text(), ident.read_text()
    os_user = pwd.getpwuid(os.getuid()).pw_name
    try:
        hba.write_text(MAP_LINE + saved[0])
        # PostgreSQL 15 maps to one database user per line (16 would take "all").
        ident.write_text(saved[1] + "".join(f"jobledger {os_user} {role}\n" for role in (owner_a, owner_b)))
        db.execute("SELECT pg_reload_conf()")
        runnertools.wait_until(lambda: _login_fails(db, unmapped), timeout=10, what="the peer map in force")
        yield owner_a, owner_b
    finally:
        hba.write_text(saved[0])
        ident.write_text(saved[1])
        db.execute("SELECT pg_reload_conf()")
        runnertools.wait_until(lambda: not _login_fails(db, unmapped), timeout=10, what="pg_hba.conf restored")


# owner_a's own function: back to the session's role, then owner_b's, and read owner_b's table.
PEEK = """CREATE FUNCTION public.peek(target text) RETURNS text LANGUAGE plpgsql SECURITY INVOKER AS $$
DECLARE
    found text;
BEGIN
    PERFORM set_config('role', 'none', true);    -- RESET ROLE
    PERFORM set_config('role', target, true);    -- SET LOCAL ROLE owner_b
    EXECUTE 'SELECT string_agg(secret, '','') FROM public.b_secret' INTO found;
    RETURN found;
END $$"""


def test_a_job_that_resets_its_role_reaches_nothing_of_another_owner(db, owners, connect, start_runner) -> None:
    owner_a, owner_b = owners
    db.execute("CREATE TABLE public.b_secret (secret text)")
    db.execute("INSERT INTO public.b_secret VALUES ('owner_b only')")
    db.execute(sql.SQL("ALTER TABLE public.b_secret OWNER TO {}").format(sql.Identifier(owner_b)))
    db.execute("CREATE TABLE public.a_out (v text)")
    db.execute(sql.SQL("GRANT INSERT ON public.a_out TO {}").format(sql.Identifier(owner_a)))
    db.execute(PEEK)
    db.execute(sql.SQL("ALTER FUNCTION public.peek(text) OWNER TO {}").format(sql.Identifier(owner_a)))
    as_a = connect(user=owner_a)
    runnertools.define(as_a, "peek", "SELECT public.peek(CAST({target} AS text)) AS v", "a_out",
                       params={"target": {"type": "text"}})
    assert _login_fails(db, owner_b) is False  # the map lets the runner's OS user in as owner_b too

    run = runnertools.submit(as_a, "peek", {"target": owner_b})
    runner = start_runner("--connect-as-owner", "--concurrency", "1", "--drain", worker="own")
    assert runner.wait() == 0, runner.log()
    row = dbtools.run_row(db, run)
    assert (row["status"], row["error_sqlstate"]) == ("failed", "42501"), row  # permission denied to set role
    assert db.execute("SELECT * FROM public.a_out").fetchall() == []

    # The SET ROLE mode, chosen explicitly: the same job reads owner_b's table.
    # (This is why --connect-as-owner is the recommended mode.)
    run = runnertools.submit(as_a, "peek", {"target": owner_b})
    runner = start_runner("--set-role", "--concurrency", "1", "--drain", worker="setrole")
    assert runner.wait() == 0, runner.log()
    assert dbtools.run_row(db, run)["status"] == "succeeded"
    assert db.execute("SELECT v FROM public.a_out").fetchall() == [{"v": "owner_b only"}]


def test_every_mode_runs_exactly_once_as_its_owner(db, owners, connect, start_runner) -> None:
    owner_a, owner_b = owners
    db.execute("CREATE TABLE public.appended (n integer, who text, runner_role text DEFAULT current_user)")
    db.execute("CREATE TABLE public.overwritten (n integer, who text)")
    db.execute("CREATE TABLE public.merged (n integer PRIMARY KEY, who text)")
    db.execute("INSERT INTO public.overwritten VALUES (-1, 'old')")
    for table, privileges in (("appended", "INSERT"), ("overwritten", "INSERT, DELETE, SELECT"),
                              ("merged", "INSERT, UPDATE, SELECT")):
        for owner in owners:
            db.execute(sql.SQL("GRANT {} ON {} TO {}").format(
                sql.SQL(privileges), sql.Identifier("public", table), sql.Identifier(owner)))
    query = "SELECT CAST({n} AS integer) AS n, CAST(session_user AS text) AS who"
    params = {"n": {"type": "integer"}}
    as_a, as_b = connect(user=owner_a), connect(user=owner_b)
    runnertools.define(as_a, "app", query, "appended", params=params)
    runnertools.define(as_b, "over", query, "overwritten", "overwrite", params=params)
    runnertools.define(as_a, "merge", query, "merged", "merge", params=params)
    runnertools.define(as_b, "res", query, "result", params=params)
    runs = {name: [runnertools.submit(conn, name, {"n": n}) for n in (1, 2)]
            for name, conn in (("app", as_a), ("over", as_b), ("merge", as_a), ("res", as_b))}
    runner = start_runner("--connect-as-owner", "--concurrency", "2", "--drain", worker="own")
    assert runner.wait() == 0, runner.log()

    for name, ids in runs.items():
        for run in ids:
            row = dbtools.run_row(db, run)
            assert row["status"] == "succeeded", (name, row)
            assert [a[2] for a in runnertools.attempts(db, run)] == ["succeeded"], name
            # complete_attached_run recorded the metrics (docs/runner.md, "Run metrics").
            assert row["metrics"]["rows"] == row["rows_written"] == 1, (name, row)
            assert ("bytes" in row["metrics"]) == (name == "res"), (name, row)
    assert db.execute("SELECT n, who, runner_role FROM public.appended ORDER BY n").fetchall() == [
        {"n": 1, "who": owner_a, "runner_role": owner_a}, {"n": 2, "who": owner_a, "runner_role": owner_a}]
    over_rows = db.execute("SELECT n, who FROM public.overwritten").fetchall()
    assert len(over_rows) == 1 and over_rows[0]["who"] == owner_b and over_rows[0]["n"] in (1, 2)
    assert db.execute("SELECT n, who FROM public.merged ORDER BY n").fetchall() == [
        {"n": 1, "who": owner_a}, {"n": 2, "who": owner_a}]
    for run in runs["res"]:
        names = [o["name"] for o in db.execute("SELECT name FROM jobledger.outputs(%s) ORDER BY seq",
                                               (run,)).fetchall()]
        assert names == ["result", "result.json"]
        (rendered,) = db.execute("SELECT convert_from(data, 'UTF8') AS j FROM jobledger.outputs(%s)"
                                 " WHERE name = 'result.json'", (run,)).fetchone().values()
        assert owner_b in rendered


def test_a_killed_runners_run_is_written_once(db, owners, connect, start_runner) -> None:
    owner_a, _ = owners
    db.execute("CREATE TABLE public.landed (n integer, who text DEFAULT current_user)")
    db.execute("CREATE SEQUENCE public.naps")
    db.execute("""CREATE FUNCTION public.nap_first(seconds numeric) RETURNS integer LANGUAGE plpgsql AS $$
                  BEGIN
                      IF nextval('public.naps') = 1 THEN PERFORM pg_sleep(seconds); END IF;
                      RETURN 0;
                  END $$""")
    db.execute(sql.SQL("GRANT INSERT ON public.landed TO {0}; GRANT USAGE ON SEQUENCE public.naps TO {0}").format(
        sql.Identifier(owner_a)))
    runnertools.define(connect(user=owner_a), "nap_once", runnertools.NAP_ONCE, "landed",
                       params=runnertools.SLEEPY_PARAMS)
    first = start_runner("--connect-as-owner", worker="A")
    run = runnertools.submit(db, "nap_once", {"n": 1, "sleep": 60})
    runnertools.wait_until(lambda: runnertools.executing(db, run), what="A to execute the run")
    # The ledger names the owner's backend, which executes the run.
    row = dbtools.run_row(db, run)
    executor = db.execute("SELECT usename FROM pg_stat_activity WHERE pid = %s AND backend_start = %s",
                          (row["backend_pid"], row["backend_start"])).fetchone()
    assert executor == {"usename": owner_a}

    first.send(signal.SIGKILL)
    first.wait()
    second = start_runner("--connect-as-owner", worker="B")
    row = runnertools.wait_status(db, run, "succeeded", timeout=30)
    assert (row["worker"], row["attempt"]) == ("B", 2)
    assert runnertools.attempts(db, run) == [
        (1, "A", "failed", "runner lost", None),
        (2, "B", "succeeded", None, None),
    ]
    assert db.execute("SELECT n, who FROM public.landed").fetchall() == [{"n": 1, "who": owner_a}]
    assert second.stop() == 0, second.log()


def test_an_owner_connection_cannot_complete_a_run_it_does_not_execute(db, owners, connect) -> None:
    """The functions granted to jobledger_owners apply only to the caller's
    own run, attached to its own backend."""
    owner_a, owner_b = owners
    db.execute("CREATE TABLE public.t (n integer)")
    db.execute(sql.SQL("GRANT INSERT ON public.t TO {}").format(sql.Identifier(owner_b)))
    runnertools.define(connect(user=owner_b), "b_job", "SELECT 1 AS n", "t")
    run = runnertools.submit(db, "b_job")
    claimed = db.execute("SELECT id, attempt FROM jobledger_internal.claim_runs('w')").fetchall()
    assert [c["id"] for c in claimed] == [run]
    as_a, as_b = connect(user=owner_a), connect(user=owner_b)
    for call in ("SELECT jobledger_internal.attach_run(%(run)s, 1, 'w')",
                 "SELECT jobledger_internal.complete_attached_run(%(run)s, 1, 'w', 5)"):
        with pytest.raises(psycopg.Error) as caught:
            as_a.execute(call, {"run": run})
        assert dbtools.category(caught.value) == "run_fenced"
    # owner_b, not attached yet, cannot complete it either; attached, it can.
    with pytest.raises(psycopg.Error) as caught:
        as_b.execute("SELECT jobledger_internal.complete_attached_run(%(run)s, 1, 'w', 5)", {"run": run})
    assert dbtools.category(caught.value) == "run_fenced"
    assert dbtools.run_row(db, run)["status"] == "running"
    as_b.execute("SELECT jobledger_internal.attach_run(%(run)s, 1, 'w')", {"run": run})
    assert dbtools.run_row(db, run)["backend_pid"] == as_b.info.backend_pid
    as_b.execute("SELECT jobledger_internal.complete_attached_run(%(run)s, 1, 'w', 5)", {"run": run})
    assert dbtools.run_row(db, run)["status"] == "succeeded"
