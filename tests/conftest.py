"""Database fixtures: one template database with the extension, cloned per test.

The server is the one the standard libpq variables name (``make test`` points
them at the private cluster from tests/devenv.sh).  The extension must be
installed into that server (``make install``) before the tests run.
"""

from __future__ import annotations

import os
import uuid
from typing import Any, Iterator

import psycopg
import pytest
from psycopg import rows, sql
from pytest_postgresql import factories

import dbtools


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
