"""Helpers shared by the database tests: connections, errors, catalog snapshots."""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import uuid
from typing import Any, Iterator

import psycopg
from psycopg import rows, sql

from jobledger.core import errors


def conninfo(conn: psycopg.Connection) -> dict[str, Any]:
    """Connection parameters of ``conn``, to open another to the same database."""
    info = conn.info
    return {
        "host": info.host,
        "port": info.port,
        "user": info.user,
        "dbname": info.dbname,
        "password": info.password or None,
    }


@contextlib.contextmanager
def scratch_database(server: Any) -> Iterator[psycopg.Connection]:
    """A new empty database on the test server, dropped afterwards."""
    name = f"jl_scratch_{uuid.uuid4().hex[:12]}"
    params = {"host": server.host, "port": server.port, "user": server.user, "password": server.password}
    with psycopg.connect(**params, dbname="postgres", autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        with psycopg.connect(**params, dbname=name, autocommit=True, row_factory=rows.dict_row) as conn:
            yield conn
    finally:
        with psycopg.connect(**params, dbname="postgres", autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def category(exc: psycopg.Error) -> str | None:
    """The jobledger error category of a database error (from its DETAIL)."""
    return errors.category_of_detail(exc.diag.message_detail)


# ---- the ledger -----------------------------------------------------------


def make_job(conn: psycopg.Connection, name: str = "job1", max_attempts: int = 3) -> str:
    """A job with one version, inserted into the tables directly, without define_job's checks."""
    with conn.transaction():
        conn.execute("INSERT INTO jobledger.job (name, current_version) VALUES (%s, 1)", (name,))
        conn.execute(
            "INSERT INTO jobledger.job_version (job, version, query, destination, max_attempts)"
            " VALUES (%s, 1, 'SELECT 1 AS x', 'public.dest', %s)",
            (name, max_attempts),
        )
    return name


def make_run(conn: psycopg.Connection, job: str = "job1", **columns: Any) -> uuid.UUID:
    """A run of ``job`` (version 1) with the given columns; returns its id."""
    values = {"job": job, "job_version": 1, "rendered_sql": "SELECT 1 AS x", **columns}
    query = sql.SQL("INSERT INTO jobledger.run ({}) VALUES ({}) RETURNING id").format(
        sql.SQL(", ").join(map(sql.Identifier, values)),
        sql.SQL(", ").join(sql.Placeholder() * len(values)),
    )
    row = conn.execute(query, list(values.values())).fetchone()
    return row["id"] if isinstance(row, dict) else row[0]


def mark_running(
    conn: psycopg.Connection,
    run: uuid.UUID,
    *,
    backend: psycopg.Connection | None = None,
    attempt: int = 1,
    heartbeat_age: str = "0 seconds",
) -> None:
    """Mark ``run`` running on ``backend`` (its pid and backend_start), as a claim does."""
    pid = start = None
    if backend is not None:
        found = backend.execute(
            "SELECT pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()"
        ).fetchone()
        pid, start = (found["pid"], found["backend_start"]) if isinstance(found, dict) else found
    with conn.transaction():
        conn.execute(
            """UPDATE jobledger.run
                  SET status = 'running', attempt = %(attempt)s, worker = 'test-worker',
                      started_at = now() - %(age)s::interval, heartbeat_at = now() - %(age)s::interval,
                      backend_pid = %(pid)s, backend_start = %(start)s
                WHERE id = %(run)s""",
            {"attempt": attempt, "age": heartbeat_age, "pid": pid, "start": start, "run": run},
        )
        conn.execute(
            """INSERT INTO jobledger.run_attempt (run, attempt, worker, backend_pid, started_at)
               VALUES (%s, %s, 'test-worker', %s, now() - %s::interval)""",
            (run, attempt, pid, heartbeat_age),
        )


def run_row(conn: psycopg.Connection, run: uuid.UUID) -> dict[str, Any]:
    with conn.cursor(row_factory=rows.dict_row) as cur:
        found = cur.execute("SELECT * FROM jobledger.run WHERE id = %s", (run,)).fetchone()
    assert found is not None, f"run {run} is gone"
    return found


def attempts(conn: psycopg.Connection, run: uuid.UUID) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=rows.dict_row) as cur:
        return cur.execute(
            "SELECT * FROM jobledger.run_attempt WHERE run = %s ORDER BY attempt", (run,)
        ).fetchall()


# ---- catalog snapshots ----------------------------------------------------

# Each query yields (key, value) rows describing one aspect of what the
# extension put into the database.  Keys are stable names, so a fresh install
# and an upgraded database compare equal exactly when they define the same
# things, whatever the OIDs or the order objects were created in.  Both of
# its schemas count: jobledger (the API and the ledger) and jobledger_internal.
_SNAPSHOT_QUERIES: dict[str, str] = {
    "members": """
        SELECT pg_describe_object(d.classid, d.objid, d.objsubid) AS key, '' AS value
          FROM pg_depend d JOIN pg_extension e ON d.refobjid = e.oid
         WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e' AND e.extname = 'jobledger'""",
    "comments": """
        SELECT pg_describe_object(d.classid, d.objid, d.objsubid) AS key,
               coalesce(obj_description(d.objid, c.relname), '') AS value
          FROM pg_depend d JOIN pg_extension e ON d.refobjid = e.oid
          JOIN pg_class c ON c.oid = d.classid
         WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e' AND e.extname = 'jobledger'""",
    "columns": """
        SELECT c.relname || '.' || a.attname AS key,
               concat_ws(' | ', format_type(a.atttypid, a.atttypmod), a.attnotnull,
                         pg_get_expr(ad.adbin, ad.adrelid), a.attidentity, a.attgenerated,
                         col_description(c.oid, a.attnum)) AS value
          FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
          LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
         WHERE c.relnamespace IN (SELECT oid FROM pg_namespace WHERE nspname IN ('jobledger', 'jobledger_internal')) AND a.attnum > 0 AND NOT a.attisdropped""",
    "constraints": """
        SELECT conrelid::regclass::text || '.' || conname AS key, pg_get_constraintdef(oid) AS value
          FROM pg_constraint WHERE connamespace IN (SELECT oid FROM pg_namespace WHERE nspname IN ('jobledger', 'jobledger_internal'))""",
    "indexes": """
        SELECT indexrelid::regclass::text AS key,
               pg_get_indexdef(indexrelid) || ' ' || coalesce(obj_description(indexrelid, 'pg_class'), '') AS value
          FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
         WHERE c.relnamespace IN (SELECT oid FROM pg_namespace WHERE nspname IN ('jobledger', 'jobledger_internal'))""",
    "functions": """
        SELECT p.oid::regprocedure::text AS key,
               concat_ws(' | ', pg_get_functiondef(p.oid), p.proacl::text) AS value
          FROM pg_proc p WHERE p.pronamespace IN (SELECT oid FROM pg_namespace WHERE nspname IN ('jobledger', 'jobledger_internal'))""",
    "views": """
        SELECT c.oid::regclass::text AS key, pg_get_viewdef(c.oid) AS value
          FROM pg_class c WHERE c.relnamespace IN (SELECT oid FROM pg_namespace WHERE nspname IN ('jobledger', 'jobledger_internal')) AND c.relkind = 'v'""",
    "relations": """
        SELECT c.oid::regclass::text AS key,
               concat_ws(' | ', c.relkind, c.relacl::text, c.relrowsecurity, c.relforcerowsecurity,
                         c.reloptions::text) AS value
          FROM pg_class c WHERE c.relnamespace IN (SELECT oid FROM pg_namespace WHERE nspname IN ('jobledger', 'jobledger_internal'))""",
    "policies": """
        SELECT polrelid::regclass::text || '.' || polname AS key,
               concat_ws(' | ', polcmd, polpermissive, polroles::regrole[]::text,
                         pg_get_expr(polqual, polrelid), pg_get_expr(polwithcheck, polrelid)) AS value
          FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
         WHERE c.relnamespace IN (SELECT oid FROM pg_namespace WHERE nspname IN ('jobledger', 'jobledger_internal'))""",
    "triggers": """
        SELECT tgrelid::regclass::text || '.' || tgname AS key, pg_get_triggerdef(t.oid) AS value
          FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
         WHERE c.relnamespace IN (SELECT oid FROM pg_namespace WHERE nspname IN ('jobledger', 'jobledger_internal')) AND NOT t.tgisinternal""",
    "enums": """
        SELECT t.typname AS key, string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) AS value
          FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid
         WHERE t.typnamespace IN (SELECT oid FROM pg_namespace WHERE nspname IN ('jobledger', 'jobledger_internal')) GROUP BY t.typname""",
    "extension": """
        SELECT 'jobledger' AS key,
               concat_ws(' | ', e.extversion, e.extrelocatable,
                         (SELECT string_agg(c::regclass::text, ',' ORDER BY c::regclass::text)
                            FROM unnest(e.extconfig) AS c),
                         e.extcondition::text) AS value
          FROM pg_extension e WHERE e.extname = 'jobledger'""",
    "migrations": """
        SELECT name AS key, sha256 AS value FROM jobledger.migration""",
}


def catalog_snapshot(conn: psycopg.Connection) -> dict[str, dict[str, str]]:
    """Everything the extension defines, as {aspect: {key: description}}."""
    snapshot: dict[str, dict[str, str]] = {}
    with conn.cursor(row_factory=rows.tuple_row) as cur:
        for aspect, query in _SNAPSHOT_QUERIES.items():
            snapshot[aspect] = {key: value for key, value in cur.execute(query)}
    return snapshot


def snapshot_differences(a: dict[str, dict[str, str]], b: dict[str, dict[str, str]]) -> list[str]:
    """Readable differences between two catalog snapshots (empty when equal)."""
    found = []
    for aspect in sorted(set(a) | set(b)):
        left, right = a.get(aspect, {}), b.get(aspect, {})
        for key in sorted(set(left) | set(right)):
            if left.get(key) != right.get(key):
                found.append(f"{aspect}: {key}: {left.get(key)!r} != {right.get(key)!r}")
    return found


@functools.lru_cache(maxsize=None)
def pg_config_command() -> str:
    """The pg_config of the server under test: PG_CONFIG (as ``make test``
    sets it), else the one beside the binaries of the server PG* names (not
    whatever ``pg_config`` is on PATH: a test that runs ``make install``
    must install into the server it tests, not another one)."""
    if os.environ.get("PG_CONFIG"):
        return os.environ["PG_CONFIG"]
    with psycopg.connect(dbname="postgres") as conn:
        bindir = conn.execute("SELECT setting FROM pg_catalog.pg_config WHERE name = 'BINDIR'").fetchone()[0]
    return os.path.join(bindir, "pg_config")


def pg_config(option: str) -> str:
    """``pg_config option`` of the server under test (pg_config_command)."""
    return subprocess.run([pg_config_command(), option], check=True,
                          capture_output=True, text=True).stdout.strip()
