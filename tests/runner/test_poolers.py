"""The runner, the client and the CLI behind a real pgbouncer (README
"Connection poolers").

In transaction mode the runner refuses to start (exit 1, a message naming
pool_mode = session) before it claims anything, also when pgbouncer rotates
its servers (server_round_robin), and a --connect-as-owner runner refuses
an owner whose own pool is in transaction mode, giving the run back.  In
session mode it works end to end: every mode of write, a result
destination, its pinned settings (which pgbouncer drops from the startup
packet) on every run, and a run of a runner killed with -9 is recovered by
the backend-gone check, long before the lease.  submit_job, the client
library and the CLI work through transaction pooling."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Callable, Iterator

import psycopg
import pytest
from psycopg import sql

import dbtools
import pgbouncer
import runnertools
from jobledger import client

GROUP = "jobledger_owners"
OWNER_GRANT = (f"GRANT EXECUTE ON FUNCTION jobledger_internal.attach_run(uuid, integer, text),"
               " jobledger_internal.complete_attached_run(uuid, integer, text, bigint, text, jsonb),"
               " jobledger_internal.emit_attached_output(uuid, integer, text, text, text, bytea, uuid[]),"
               f" jobledger_internal.lock_attached_run(uuid, integer, text) TO {GROUP}")


@pytest.fixture
def bouncer(db: psycopg.Connection) -> Iterator[Callable[..., pgbouncer.PgBouncer]]:
    started: list[pgbouncer.PgBouncer] = []

    def start(pool_mode: str, **options) -> pgbouncer.PgBouncer:
        started.append(pgbouncer.PgBouncer(db, pool_mode, **options))
        return started[-1]

    yield start
    for each in started:
        each.close()


def _through(db: psycopg.Connection, pool: pgbouncer.PgBouncer, **overrides) -> str:
    return runnertools.dsn(db, **pool.overrides(), **overrides)


@pytest.mark.parametrize("round_robin", [False, True], ids=["lifo", "round_robin"])
def test_the_runner_refuses_transaction_pooling(db, bouncer, start_runner, round_robin) -> None:
    pool = bouncer("transaction", round_robin=round_robin)
    db.execute("CREATE TABLE public.landed (n integer)")
    runnertools.define(db, "one", "SELECT 1 AS n", "landed")
    run = runnertools.submit(db, "one")
    runner = start_runner("--set-role", dsn=_through(db, pool))
    assert runner.wait(30) == 1, runner.log()
    log = runner.log()
    assert "transaction or statement mode" in log and "pool_mode = session" in log, log
    assert "(transaction_pooling)" in log, log
    assert runnertools.status(db, run) == "pending" and runnertools.attempts(db, run) == []
    # The probe left nothing behind: no session setting on the pool's servers.
    with psycopg.connect(_through(db, pool), autocommit=True) as conn:
        assert conn.execute("SELECT current_setting('extra_float_digits')").fetchone()[0] == "1"


def _owner(db: psycopg.Connection, make_role) -> str:
    if db.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (GROUP,)).fetchone() is None:
        db.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(GROUP)))
    db.execute(OWNER_GRANT)
    owner = make_role("pooled")
    db.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(GROUP), sql.Identifier(owner)))
    return owner


def test_an_owner_in_transaction_pooling_is_refused(db, bouncer, make_role, connect, start_runner) -> None:
    """pgbouncer may set pool_mode per user: --connect-as-owner probes each
    owner's connections before the first run of that owner."""
    owner = _owner(db, make_role)
    pool = bouncer("session", users={owner: "transaction"})
    db.execute("CREATE TABLE public.landed (n integer)")
    db.execute(sql.SQL("GRANT INSERT ON public.landed TO {}").format(sql.Identifier(owner)))
    runnertools.define(connect(user=owner), "one", "SELECT 1 AS n", "landed")
    run = runnertools.submit(db, "one")
    runner = start_runner("--connect-as-owner", dsn=_through(db, pool))
    assert runner.wait(30) == 1, runner.log()
    log = runner.log()
    assert f'job owner "{owner}"' in log and "pool_mode = session" in log, log
    row = dbtools.run_row(db, run)
    assert row["status"] == "pending" and row["worker"] is None
    assert db.execute("SELECT count(*) AS n FROM public.landed").fetchone()["n"] == 0


@pytest.mark.parametrize("mode", ["--set-role", "--connect-as-owner"])
def test_session_pooling_works_end_to_end(db, bouncer, make_role, connect, start_runner, mode) -> None:
    owner = _owner(db, make_role)
    pool = bouncer("session", logins=(owner,))
    db.execute("CREATE TABLE public.appended (n integer, efd text, style text)")
    db.execute("CREATE TABLE public.overwritten (n integer)")
    db.execute("CREATE TABLE public.merged (k integer PRIMARY KEY, v text)")
    db.execute(sql.SQL("GRANT INSERT, SELECT, DELETE, UPDATE ON public.appended, public.overwritten, public.merged"
                       " TO {}").format(sql.Identifier(owner)))
    as_owner = connect(user=owner)
    params = {"n": {"type": "integer"}}
    # The pinned settings, which pgbouncer dropped from the startup packet, are in force on every run.
    runnertools.define(as_owner, "append", "SELECT CAST({n} AS integer) AS n,"
                       " current_setting('extra_float_digits') AS efd, current_setting('IntervalStyle') AS style",
                       "appended", params=params)
    runnertools.define(as_owner, "overwrite", "SELECT CAST({n} AS integer) AS n", "overwritten", "overwrite",
                       params=params)
    runnertools.define(as_owner, "merge", "SELECT 1 AS k, 'v' || CAST({n} AS integer) AS v", "merged", "merge",
                       params=params)
    runnertools.define(as_owner, "res", "SELECT g AS n FROM generate_series(1, {n}) AS g", "result", params=params)
    db.execute(f"ALTER DATABASE {db.info.dbname} SET IntervalStyle = 'iso_8601'")
    db.execute(f"ALTER DATABASE {db.info.dbname} SET extra_float_digits = 0")
    submitted = psycopg.connect(_through(db, pool), autocommit=True, row_factory=psycopg.rows.dict_row)
    with submitted:
        runs = [runnertools.submit(submitted, job, {"n": n}) for n in (1, 2) for job in
                ("append", "overwrite", "merge", "res")]
    runner = start_runner(mode, "--concurrency", "1", "--drain", dsn=_through(db, pool))
    assert runner.wait() == 0, runner.log() + pool.log()
    assert [runnertools.status(db, run) for run in runs] == ["succeeded"] * len(runs), runner.log()
    assert db.execute("SELECT n, efd, style FROM public.appended ORDER BY n").fetchall() == [
        {"n": 1, "efd": "3", "style": "postgres"}, {"n": 2, "efd": "3", "style": "postgres"}]
    assert db.execute("SELECT n FROM public.overwritten").fetchall() == [{"n": 2}]
    assert db.execute("SELECT k, v FROM public.merged").fetchall() == [{"k": 1, "v": "v2"}]
    assert client.result(db, runs[3]).to_pydict() == {"n": [1]}
    assert client.result(db, runs[7]).to_pydict() == {"n": [1, 2]}


def test_a_killed_runners_run_is_recovered_behind_session_pooling(db, bouncer, start_runner) -> None:
    """pgbouncer closes the server connection of a client that died in a
    transaction; the backend notices (client_connection_check_interval,
    pinned with SET) and goes, and the next runner retries the run at once:
    the lease (10 min here) plays no part."""
    pool = bouncer("session")
    db.execute("CREATE TABLE public.landed (n integer)")
    db.execute("CREATE SEQUENCE public.naps")
    db.execute("""CREATE FUNCTION public.nap_first() RETURNS integer LANGUAGE plpgsql AS $$
                  BEGIN
                      IF nextval('public.naps') = 1 THEN PERFORM pg_sleep(120); END IF;
                      RETURN 0;
                  END $$""")
    runnertools.define(db, "nap_once", "SELECT CAST({n} AS integer) + public.nap_first() AS n", "landed",
                       params={"n": {"type": "integer"}})
    first = start_runner("--set-role", "--lease", "600", worker="A", dsn=_through(db, pool))
    run = runnertools.submit(db, "nap_once", {"n": 1})
    runnertools.wait_until(lambda: runnertools.executing(db, run), what="A to execute the run")
    first.send(signal.SIGKILL)
    first.wait()
    second = start_runner("--set-role", "--lease", "600", worker="B", dsn=_through(db, pool))
    row = runnertools.wait_status(db, run, "succeeded", timeout=45)
    assert (row["worker"], row["attempt"]) == ("B", 2)
    assert runnertools.attempts(db, run)[0][:4] == (1, "A", "failed", "runner lost")
    assert runnertools.out_rows(db) == [1]
    assert second.stop() == 0, second.log()


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DATABASE_URL"}
    return subprocess.run([sys.executable, "-m", "jobledger", *args], capture_output=True, text=True,
                          env=env, timeout=60)


def test_submit_the_client_and_the_cli_work_through_transaction_pooling(db, bouncer, start_runner) -> None:
    pool = bouncer("transaction")
    dsn = _through(db, pool)
    runnertools.define(db, "squares", "SELECT g AS n, CAST(g * g AS bigint) AS sq FROM generate_series(1, {n}) AS g",
                       "result", params={"n": {"type": "integer"}})
    run = client.submit(dsn, "squares", {"n": 3})
    # Each wait polls well over 5 times on one connection (psycopg's prepare
    # threshold), and the second lands on the server the first used.
    for _ in range(2):
        with pytest.raises(TimeoutError):
            client.wait(dsn, run, timeout=1.5, poll_interval=0.05)
    cli_submitted = _cli("submit", "squares", "-p", "n=2", "--dsn", dsn)
    assert cli_submitted.returncode == 0, cli_submitted
    second = cli_submitted.stdout.strip().split()[-1]
    runner = start_runner("--set-role")  # directly to the server
    assert client.wait(dsn, run, timeout=60, poll_interval=0.05)["status"] == "succeeded"
    assert client.result(dsn, run).to_pydict() == {"n": [1, 2, 3], "sq": [1, 4, 9]}
    waited = _cli("submit", "squares", "-p", "n=4", "--wait", "-q", "--dsn", dsn)
    assert waited.returncode == 0, waited
    listed = _cli("runs", "--json", "--dsn", dsn)
    assert listed.returncode == 0, listed
    assert {r["status"] for r in json.loads(listed.stdout)} == {"succeeded"} or second in listed.stdout
    shown = _cli("show", str(run), "--json", "--dsn", dsn)
    assert shown.returncode == 0 and json.loads(shown.stdout)["status"] == "succeeded", shown
    assert runner.stop() == 0
