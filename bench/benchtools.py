"""What the benchmarks share: a fresh database with the extension, machine facts."""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import subprocess
from typing import Iterator

import psycopg
from psycopg import rows, sql


@contextlib.contextmanager
def fresh_database(name: str, version: str | None = None) -> Iterator[psycopg.Connection]:
    """``name`` dropped and created again with jobledger installed (its default
    version, or ``version`` if that one's script and package are installed too);
    autocommit, dict rows.  Left in place afterwards, to look at."""
    with psycopg.connect(dbname="postgres", autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with psycopg.connect(dbname=name, autocommit=True, row_factory=rows.dict_row) as conn:
        if version is None:
            conn.execute("CREATE EXTENSION jobledger CASCADE")
        else:
            conn.execute(sql.SQL("CREATE EXTENSION jobledger VERSION {} CASCADE").format(sql.Literal(version)))
        yield conn


def pg_bindir() -> str:
    """The server's bin directory (for pgbench), from PG_CONFIG or pg_config."""
    pg_config = os.environ.get("PG_CONFIG") or shutil.which("pg_config") or "pg_config"
    return subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True).stdout.strip()


def machine() -> dict:
    """What the figures were measured on."""
    with psycopg.connect(dbname="postgres", row_factory=rows.dict_row) as conn:
        server = conn.execute("SELECT version() AS v").fetchone()["v"]
        settings = {r["name"]: r["setting"] for r in conn.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit',"
            " 'shared_buffers', 'max_connections')")}
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "server": server,
        "server_settings": settings,
    }
