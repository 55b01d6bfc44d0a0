"""Connection poolers: the runner needs a server session per connection.

The runner relies on each of its connections keeping one backend for its
whole life: ``claim_runs`` records the claiming backend (``pg_backend_pid()``
and ``backend_start``), the fenced transitions accept only that backend,
``reconcile_orphaned`` frees a run whose backend is gone, the control
connection LISTENs, and a run's session is reset by the runner itself.  A
pooler in session mode (pgbouncer ``pool_mode = session``) keeps that: one
client connection, one server connection until it closes.  In transaction or
statement mode, every transaction may run on another backend: the claims are
fenced to a backend the next transaction no longer has, LISTEN is lost, and
psycopg's prepared statements collide (``prepared statement "_pg3_0"
already exists``).  So the runner refuses to start there (``probe``), with a
message saying how to configure a session-mode pool; ``submit_job`` and the
CLI need nothing of the kind and work through transaction pooling.

The probe.  A pooler cannot be asked (``SHOW pool_mode`` is pgbouncer's
admin console, not SQL), and two consecutive transactions of one idle
connection usually land on the same backend anyway (pgbouncer hands out the
server used last), so comparing those alone proves nothing.  The probe uses
two client connections, A and B, and interleaves single-statement
transactions A, B, A, B, A, each reading its backend's (pid, backend_start).
Without transaction pooling every connection sees one backend, and A's is
never B's: both sessions exist side by side.  With it, B's first statement
takes the server A just gave back (last-used-first, pgbouncer's default), or,
with ``server_round_robin``, A moves on to another server: either way a
connection sees two backends, or the two see a common one.  There is no
false alarm: a shared or moving backend is proof.  (A pool busy with other
clients can hide it in theory; that needs every one of the five statements
to miss.)
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Callable

import psycopg
from psycopg import rows

from jobledger.runner import queries

# The probe's statements, alternating between the two connections.
SEQUENCE = "ABABA"


@dataclasses.dataclass(frozen=True)
class Backend:
    pid: int
    backend_start: datetime.datetime | None


class TransactionPooling(Exception):
    """The runner's connections go through a pooler in transaction (or
    statement) mode; the message says how to configure it instead."""


def advice(user: str | None, dbname: str | None) -> str:
    who = f'user "{user}"' if user else "the runner's user"
    where = f'database "{dbname}"' if dbname else "its database"
    return (
        "the runner needs a server session per connection (its runs are fenced to the backend that executes "
        "them, and it LISTENs): give it a session-mode pool, in pgbouncer pool_mode = session for "
        f"{where} or {who} (e.g. a [databases] entry with pool_mode=session that only the runner uses, "
        f"or a [users] line: {user or 'runner_role'} = pool_mode=session), or connect the runner to "
        "PostgreSQL directly; submit_job and the jobledger CLI work through transaction pooling "
        "(README \"Connection poolers\")")


def backend(conn: psycopg.Connection) -> Backend:
    with conn.cursor(row_factory=rows.dict_row) as cur:
        found = cur.execute(queries.get("backend_identity")).fetchone()
    assert found is not None
    return Backend(found["pid"], found["backend_start"])


def probe(connect: Callable[[], psycopg.Connection]) -> str | None:
    """None if connections made by ``connect`` keep their own backend; else
    what the probe saw (see the module's notes).  ``connect`` must return
    an autocommit connection that has run nothing that changes its session."""
    first = connect()
    try:
        second = connect()
        try:
            conns = {"A": first, "B": second}
            seen: dict[str, list[Backend]] = {"A": [], "B": []}
            for name in SEQUENCE:
                seen[name].append(backend(conns[name]))
        finally:
            second.close()
    finally:
        first.close()
    for name, backends in seen.items():
        if len(set(backends)) > 1:
            pids = ", then ".join(str(b.pid) for b in backends)
            return (f"consecutive transactions of one connection ran on different server backends "
                    f"(pid {pids})")
    shared = set(seen["A"]) & set(seen["B"])
    if shared:
        return (f"two connections open side by side ran on the same server backend "
                f"(pid {next(iter(shared)).pid})")
    return None


def refuse(connect: Callable[[], psycopg.Connection], user: str | None, dbname: str | None,
           whose: str = "the runner's connections") -> None:
    """Raise TransactionPooling if ``probe`` finds a transaction-mode pooler."""
    found = probe(connect)
    if found is not None:
        raise TransactionPooling(
            f"{whose} go through a connection pooler in transaction or statement mode: {found}; "
            + advice(user, dbname))
