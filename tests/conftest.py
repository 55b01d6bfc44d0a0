"""Database fixtures: one template database with the extension, cloned per test.

The server is the one the standard libpq variables name (``make test`` points
them at the private cluster from tests/devenv.sh).  The extension must be
installed into that server (``make install``) before the tests run.
"""

from __future__ import annotations

import os
import pathlib
import uuid
from typing import Any, Callable, Iterator

import psycopg
import pytest
from psycopg import rows, sql
from pytest_postgresql import factories

import dbtools
import runnertools


def _install_extension(host: str, port: int, user: str, dbname: str, password: str | None, **_: object) -> None:
    with psycopg.connect(host=host, port=port, user=user, dbname=dbname, password=password) as conn:
        conn.execute("CREATE EXTENSION jobledger CASCADE")


jobledger_server = factories.postgresql_noproc(
    host=os.environ.get("PGHOST"),
    port=os.environ.get("PGPORT"),
    user=os.environ.get("PGUSER"),
    password=os.environ.get("PGPASSWORD"),
    dbname="jobledger_test",
    load=[_install_extension],
)
_jobledger_db = factories.postgresql("jobledger_server")


@pytest.fixture
def db(_jobledger_db: psycopg.Connection) -> psycopg.Connection:
    """A fresh database with jobledger installed; autocommit, dict rows."""
    _jobledger_db.autocommit = True
    _jobledger_db.row_factory = rows.dict_row
    return _jobledger_db


@pytest.fixture
def connect(db: psycopg.Connection) -> Iterator[Any]:
    """Opens more connections to the test database (closed at the end)."""
    opened: list[psycopg.Connection] = []

    def _connect(**kwargs: Any) -> psycopg.Connection:
        conn = psycopg.connect(**{**dbtools.conninfo(db), **kwargs}, autocommit=True, row_factory=rows.dict_row)
        opened.append(conn)
        return conn

    yield _connect
    for conn in opened:
        conn.close()


@pytest.fixture
def empty_db(jobledger_server: Any) -> Iterator[psycopg.Connection]:
    """A fresh database without the extension."""
    with dbtools.scratch_database(jobledger_server) as conn:
        yield conn


# pg_cron runs in the one database cron.database_name names, and its
# scheduler stops for good when that database is dropped: the schedule tests
# share this one (tests/devenv.sh preloads pg_cron for it) and start it over.
CRON_DATABASE = "jobledger_cron"


@pytest.fixture
def cron_db(jobledger_server: Any) -> Iterator[psycopg.Connection]:
    """Database jobledger_cron with pg_cron (no cron jobs) and a fresh jobledger;
    autocommit, dict rows.  Override ``db`` with it to run a module there."""
    params = {"host": jobledger_server.host, "port": jobledger_server.port, "user": jobledger_server.user,
              "password": jobledger_server.password}
    with psycopg.connect(**params, dbname="postgres", autocommit=True) as admin:
        here = admin.execute("SELECT current_setting('cron.database_name', true)").fetchone()
        if here is None or here[0] != CRON_DATABASE:
            pytest.skip(f"pg_cron is not preloaded with cron.database_name = '{CRON_DATABASE}' (tests/devenv.sh)")
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (CRON_DATABASE,)).fetchone() is None:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(CRON_DATABASE)))
    with psycopg.connect(**params, dbname=CRON_DATABASE, autocommit=True, row_factory=rows.dict_row) as conn:
        # In pg_catalog (its objects are in schema cron): not dropped with public below.
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_cron SCHEMA pg_catalog")
        conn.execute("DELETE FROM cron.job")
        conn.execute("DELETE FROM cron.job_run_details")
        conn.execute("DROP EXTENSION IF EXISTS jobledger CASCADE")
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public AUTHORIZATION pg_database_owner")
        conn.execute("GRANT USAGE ON SCHEMA public TO PUBLIC")
        conn.execute("CREATE EXTENSION jobledger CASCADE")
        yield conn


@pytest.fixture
def make_role(db: psycopg.Connection) -> Iterator[Any]:
    """Creates LOGIN roles with unique names (roles are cluster-wide); drops them afterwards."""
    made: list[str] = []

    def _make(prefix: str, *options: str) -> str:
        name = f"jl_{prefix}_{uuid.uuid4().hex[:8]}"
        db.execute(sql.SQL("CREATE ROLE {} LOGIN " + " ".join(options)).format(sql.Identifier(name)))
        made.append(name)
        return name

    yield _make
    for name in reversed(made):
        db.execute("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE usename = %s", (name,))
        db.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        db.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


# ---- real jobledger runner processes (helpers: runner/runnertools.py) ----


@pytest.fixture
def start_runner(db: psycopg.Connection, tmp_path: pathlib.Path) -> Iterator[Callable[..., runnertools.Runner]]:
    """Starts runner processes on the test database; all killed at the end."""
    started: list[runnertools.Runner] = []

    def start(*args: str, worker: str | None = None, user: str | None = None,
              dsn: str | None = None) -> runnertools.Runner:
        name = worker or f"runner-{len(started)}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DATABASE_URL"}
        runner = runnertools.Runner(["--dsn", dsn or runnertools.dsn(db, user=user), "--worker-id", name,
                         "--log-level", "debug", *args], tmp_path / f"{name}.log", env)
        started.append(runner)
        return runner

    yield start
    for runner in started:
        runner.close()


@pytest.fixture
def sleepy(db: psycopg.Connection) -> str:
    """Job ``sleepy`` appending one row n into public.landed (who: the writing
    role) after sleeping {sleep} seconds; and job ``nap_once``, the same but
    only the first execution in the database sleeps (a sequence counts them,
    and a rollback does not take a nextval back), so a retry is quick."""
    db.execute("CREATE TABLE public.landed (n integer, who text DEFAULT current_user)")
    db.execute("CREATE SEQUENCE public.naps")
    db.execute("""CREATE FUNCTION public.nap_first(seconds numeric) RETURNS integer LANGUAGE plpgsql AS $$
                  BEGIN
                      IF nextval('public.naps') = 1 THEN PERFORM pg_sleep(seconds); END IF;
                      RETURN 0;
                  END $$""")
    runnertools.define(db, "sleepy", runnertools.SLEEPY, "landed", params=runnertools.SLEEPY_PARAMS)
    runnertools.define(db, "nap_once", runnertools.NAP_ONCE, "landed", params=runnertools.SLEEPY_PARAMS)
    return "sleepy"


