"""``jobledger runner --connect-as-owner``: each run executes on a connection
authenticated as the job's owner.

Why.  In the SET ROLE mode a run executes on the runner's own connection
after ``SET LOCAL ROLE <owner>``.  A job can undo that: a function in
owner_a's template ran ``RESET ROLE; SET LOCAL ROLE owner_b`` and read
owner_b's table, because after ``RESET ROLE`` the session is the runner's
role again, a member of every owner.  PostgreSQL's own boundary is the
session's authenticated user: ``session_user`` can only be changed by a
superuser session.  So here, as pg_cron does, the run's statements go to a
connection that logged in AS the owner; whatever role the job sets, it can
only reach what the owner can.

How the runner logs in as owners.  Without any password: a pg_hba.conf
line that accepts the members of a group role ``jobledger_owners`` through
``peer`` (or ``cert``) with a user name map, and a pg_ident.conf map that
lets the runner's OS user (or certificate) log in as them (README "The
runner").  Connections are the runner's conninfo with ``user=<owner>`` (and
no password), pinned like every runner connection (runner.session), and are
kept in a small pool per owner (``Pools``), reset after every run
(``session.RESET``) like the executor's own.  Before the first connection of
an owner, ``Pools`` probes that owner's connections for transaction pooling
(runner.pooling: pgbouncer may set pool_mode per user); if found, the run is
released and the runner stops (exit 1) with the advice.

What stays on the runner's connection (``runner_conn``): claiming, heartbeats,
``fail_run``, ``release_run``, presence and the lake settings.  Those need
the runner's rights, which the owner's session never gets.

Exactly once.  In the SET ROLE mode the destination write and the fenced
``complete_run`` commit in one transaction on one connection.  That is kept
as it is, on the owner's connection: the runner completes the run there, in
the write's transaction, through ``complete_attached_run`` (and, for
``result`` and ``parquet:``, ``emit_attached_output`` and
``lock_attached_run``), SECURITY DEFINER functions granted to
``jobledger_owners`` (sql/objects/63_owner_connections.sql).  A two-phase
alternative (write on the owner's connection, PREPARE TRANSACTION, complete
on the runner's, COMMIT PREPARED) would need max_prepared_transactions on
every server and would leave prepared transactions holding locks after a
crash, to be resolved by someone: one transaction is simpler and has no
window at all.  The functions are narrow, so granting them to every owner
gives no owner anything beyond its own run: each applies only to a run that
is running with the given attempt on the given worker, whose job belongs to
``session_user``, and that is attached to the calling backend.  A job could
call them for its own run; the runner's own ``complete_attached_run`` then
finds the run no longer running and the whole transaction, the job's call
included, rolls back (the job only spoils its own run).

Orphans.  ``claim_runs`` records the backend of the runner's connection.
Before the run's transaction, ``attach_run``, on the owner's connection and
in a transaction of its own, records that connection's ``pg_backend_pid()``
and ``backend_start`` instead (only for a run of its session_user's job,
running with this attempt on this worker).  From then on reconcile_orphaned
watches the backend that executes the run, cancel_run signals it, and only
it may complete the run.  If the runner dies between the claim and the
attach, its own backend goes and reconcile_orphaned finds that.  (Attaching
inside the run's transaction would not do: the update would not be visible
until the commit, and would hold the run's row locked for the whole run,
which blocks cancel_run and skips heartbeats.)
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Callable

import psycopg

from jobledger.runner import claim, execute, ledger, outcome, pooling, session

log = logging.getLogger("jobledger.runner")

# Idle connections kept per owner, and in all (the least recently used go first).
IDLE_PER_OWNER = 2
IDLE_TOTAL = 32
# An idle connection older than this is checked (one empty query) before use:
# its backend may have gone meanwhile (a server restart, a termination), and
# a run should not spend an attempt finding that out.
CHECK_AFTER = 1.0


class Pools:
    """A small pool of idle connections per owner.

    ``connect(owner)`` opens a new one.  A connection is taken by one executor
    for one run and given back after its session was reset; a closed or
    broken one is dropped; one idle for more than CHECK_AFTER seconds is
    checked before it is handed out."""

    def __init__(self, connect: Callable[[str], psycopg.Connection],
                 probe: Callable[[str], None] | None = None, idle_per_owner: int = IDLE_PER_OWNER,
                 idle_total: int = IDLE_TOTAL) -> None:
        self._connect = connect
        # Checks an owner's connections before the first is used (runner.pooling:
        # a pooler may put one user in transaction mode); raises to refuse.
        self._probe = probe
        self._probed: set[str] = set()
        # owner -> [(connection, when it was given back)], the most recent last.
        self._idle: collections.OrderedDict[str, list[tuple[psycopg.Connection, float]]] = \
            collections.OrderedDict()
        self._lock = threading.Lock()
        self.idle_per_owner = idle_per_owner
        self.idle_total = idle_total

    def acquire(self, owner: str) -> psycopg.Connection:
        while True:
            with self._lock:
                idle = self._idle.get(owner)
                if not idle:
                    break
                conn, since = idle.pop()
            if conn.closed or conn.broken:
                continue
            if time.monotonic() - since < CHECK_AFTER or _alive(conn):
                return conn
        if self._probe is not None and owner not in self._probed:
            self._probe(owner)
            with self._lock:
                self._probed.add(owner)
        return self._connect(owner)

    def release(self, owner: str, conn: psycopg.Connection) -> None:
        if conn.closed or conn.broken:
            conn.close()
            return
        evicted: list[psycopg.Connection] = []
        with self._lock:
            idle = self._idle.setdefault(owner, [])
            self._idle.move_to_end(owner)
            if len(idle) >= self.idle_per_owner:
                evicted.append(conn)
            else:
                idle.append((conn, time.monotonic()))
            while sum(len(c) for c in self._idle.values()) > self.idle_total:
                oldest, conns = next(iter(self._idle.items()))
                evicted.append(conns.pop(0)[0])
                if not conns:
                    del self._idle[oldest]
        for extra in evicted:
            extra.close()

    def close(self) -> None:
        with self._lock:
            idle = [conn for conns in self._idle.values() for conn, _ in conns]
            self._idle.clear()
        for conn in idle:
            conn.close()


def execute_run(runner_conn: psycopg.Connection, pools: Pools, run: claim.ClaimedRun, worker: str, *,
                columns: execute.OutputColumns, backoff: float, releasing: Callable[[], bool],
                using: Callable[[psycopg.Connection | None], None]) -> outcome.Result:
    """Execute ``run``, claimed on ``runner_conn``, on a connection of its owner.

    ``using`` is told the connection the run executes on (then None), so
    that a shutdown can cancel its query.  Never claims the next run.
    Raises pooling.TransactionPooling, the run released, if the owner's
    connections go through a pooler in transaction mode."""
    try:
        conn = pools.acquire(run.owner)
    except pooling.TransactionPooling:
        outcome.release(runner_conn, run, worker)
        raise
    except psycopg.OperationalError as exc:
        # No such login (not in jobledger_owners, no pg_ident.conf line yet),
        # or the server is going away: another attempt may well succeed.
        message = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        failure = outcome.Failure(f'the runner cannot log in as the job\'s owner "{run.owner}": {message}',
                                  exc.sqlstate or "28000", "owner_login_failed", retry=True)
        if releasing():
            return outcome.Result(outcome.release(runner_conn, run, worker))
        return outcome.Result(outcome.record(runner_conn, run, worker, failure, backoff))
    using(conn)
    try:
        try:
            ledger.attach(conn, ledger.Attempt.of(run, worker))
        except psycopg.Error as exc:
            session.reset(conn)
            return outcome.database_error(conn, run, worker, exc, 0.0, backoff, releasing, runner_conn=runner_conn)
        return execute.execute(conn, run, worker, columns=columns, backoff=backoff, releasing=releasing,
                               runner_conn=runner_conn)
    finally:
        using(None)
        pools.release(run.owner, conn)


def _alive(conn: psycopg.Connection) -> bool:
    """Whether a pooled connection still has its backend (one cheap round trip).
    A dead one is closed, so the pool drops it."""
    try:
        conn.execute(b"")
        return True
    except psycopg.Error:
        conn.close()
        return False
