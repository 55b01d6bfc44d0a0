"""The runner's sessions: the settings it pins, and a clean session for every run.

Pinned settings.  The runner reads what the server sends (timestamps,
intervals, floats, bytea) and quotes what it sends, so every connection it
opens fixes the settings that decide those formats, whatever the server,
database or role defaults are (``ALTER DATABASE ... SET DateStyle =
'Postgres, MDY'`` made the executors crash on every claim).  They go in the
connection's startup packet (libpq ``options``), after anything the user's
own ``options`` (or PGOPTIONS) say, so they win; and a startup setting is
what ``RESET ALL`` (and so ``DISCARD ALL``) goes back to.  Jobs run with them
too: their output no longer depends on which database default the runner's
session happened to get.  TimeZone is not pinned: the runner reads
timestamps with their offsets under any zone, and a job's ``now()::date``
or ``ts::date`` means what it means in psql on that database (its
``ALTER DATABASE/ROLE ... SET TimeZone``).

A clean session per run.  A job runs on the executor's connection as its
owner, and may leave things in the session: temporary tables (which a later
job of another owner would find first on its search_path), settings made
with ``set_config(..., false)`` (``default_transaction_read_only`` made the
next run, and then the ledger call recording its failure, fail), advisory
locks, prepared statements, open cursors, a role.  ``RESET`` runs after
each run's transaction, committed or rolled back, before the runner's next
statement on that connection: the next run, and the runner's own ledger
calls (claim, fail_run, release), start from the session as it was opened.
The pipelined write sends it in the same round trip as its COMMIT
(execute.write), so a run costs no extra round trip for it.

``RESET`` is ``DISCARD ALL`` without its ``DISCARD PLANS``: the statements
the documentation lists for it, less the one that throws away every cached
plan, which is no state a job can leave for another (plans are invalidated
by catalog changes and checked for privileges at each execution) but made
PostgreSQL plan the ledger functions' queries again for every run: a cycle
of claim_runs and a commit took 5 ms with DISCARD ALL, 1 ms with ``RESET``
or nothing (measured on a busy 2-core machine).

It also deallocates every prepared statement: executor connections
therefore never let psycopg prepare statements (``prepare_threshold =
None``), or psycopg would execute ones that are gone.  The LISTEN
connection (runner.listen) is another connection and is never reset.

Behind a pooler.  pgbouncer refuses a startup packet with ``options``
unless told ``ignore_startup_parameters = options``, and then drops them.
``pin`` notices that (extra_float_digits did not come from the client) and
pins the same settings with ``SET`` instead, and ``reset_statements`` sets
them again after every ``RESET`` (whose ``RESET ALL`` would undo them).
Only on a connection of its own (a session-mode pool, runner.pooling): in
transaction mode a SET would stay on a server backend other clients get.
"""

from __future__ import annotations

import logging
import os
import re
import weakref

import psycopg
from psycopg import conninfo as pg_conninfo
from psycopg import pq, sql

from jobledger.runner import queries

log = logging.getLogger("jobledger.runner")

# What the runner (psycopg's loaders and quoting) and the Arrow encoders rely on.
PINNED = (
    ("DateStyle", "ISO"),
    ("IntervalStyle", "postgres"),
    ("extra_float_digits", "3"),
    ("bytea_output", "hex"),
    ("standard_conforming_strings", "on"),
)
CLIENT_ENCODING = "UTF8"

# DISCARD ALL less DISCARD PLANS (see above), in its documented order: the
# statements of the block session_reset, each on its own (execute.py
# pipelines them one by one; reset sends them in one round trip).
RESET = tuple(statement.strip().encode() for statement in queries.get("session_reset").split(";")
              if statement.strip())

_NEEDS_ESCAPE = re.compile(r"([\\ ])")


def option(name: str, value: str) -> str:
    """``-c name=value`` as libpq's ``options`` wants it (spaces and backslashes escaped)."""
    return "-c " + _NEEDS_ESCAPE.sub(r"\\\1", f"{name}={value}")


def connect_kwargs(conninfo: str, extra: tuple[tuple[str, str], ...] = ()) -> dict[str, str]:
    """``psycopg.connect`` keyword arguments that pin PINNED (and ``extra``)
    on top of whatever options ``conninfo`` or PGOPTIONS already give."""
    given = pg_conninfo.conninfo_to_dict(conninfo).get("options")
    if given is None:
        given = os.environ.get("PGOPTIONS", "")  # libpq ignores it once options is given
    pinned = " ".join(option(name, value) for name, value in (*PINNED, *extra))
    return {"options": f"{given} {pinned}".strip(), "client_encoding": CLIENT_ENCODING}


# Connections whose pins did not come with the startup packet: the SETs that
# pin them, run again after each RESET.
_pinned_by_set: weakref.WeakKeyDictionary[psycopg.Connection, tuple[bytes, ...]] = weakref.WeakKeyDictionary()


def pin(conn: psycopg.Connection, extra: tuple[tuple[str, str], ...] = ()) -> None:
    """Make sure PINNED (and ``extra``) are in effect on ``conn``, which was
    opened with ``connect_kwargs``: if a pooler dropped the startup packet's
    options, SET them now and after every RESET (see the module's notes)."""
    with conn.cursor() as cur:
        found = cur.execute(queries.get("pinned_by_startup")).fetchone()
    if found is not None and found[0]:
        return
    template = sql.SQL(queries.get("pin_setting"))
    statements = tuple(template.format(name=sql.Identifier(name), value=sql.Literal(value)).as_bytes(conn)
                       for name, value in (*PINNED, *extra))
    log.debug("the server did not get the startup options (a pooler dropped them?): pinning with SET")
    conn.execute(b"; ".join(statements))
    _pinned_by_set[conn] = statements


def reset_statements(conn: psycopg.Connection) -> tuple[bytes, ...]:
    """RESET, then what pins ``conn``'s settings again if ``pin`` had to SET them."""
    return RESET + _pinned_by_set.get(conn, ())


def reset(conn: psycopg.Connection) -> None:
    """``RESET`` on ``conn``, between two runs (see the module's notes).

    Never raises: a connection it cannot reset is closed (a dirty session
    must not run anything else), and the caller sees it closed, as if the
    connection had been lost.  A connection already lost is left as it is."""
    if conn.closed or conn.broken or conn.pgconn.status != pq.ConnStatus.OK:
        return
    try:
        if conn.pgconn.transaction_status != pq.TransactionStatus.IDLE:
            conn.execute(b"ROLLBACK")
        conn.execute(b"; ".join(reset_statements(conn)))  # one round trip: no parameters, the simple protocol
    except psycopg.Error as exc:
        log.warning("cannot reset the session (%s); closing the connection", str(exc).strip())
        conn.close()
