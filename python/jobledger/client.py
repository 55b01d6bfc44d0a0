"""A small Python client: submit a run, wait for it, read its result as a ``pyarrow.Table``.

Client side (the ``client`` extra: psycopg and pyarrow)::

    import jobledger.client as jl

    run = jl.submit("dbname=app", "daily_rollup", {"day": "2026-11-01"})
    row = jl.wait("dbname=app", run, timeout=60)      # the run's ledger row, once it is final
    table = jl.result("dbname=app", run)              # pyarrow.Table (destination result)

Each function takes a psycopg connection or a connection string (then opens
and closes a connection of its own, which never prepares statements, so it
works through a pooler in transaction mode; a connection you pass in for
that needs ``prepare_threshold=None``).  Errors are the database's
(``psycopg.Error``, with the jobledger category in its DETAIL; see
``jobledger.core.errors.category_of_detail``) or ``TimeoutError`` from ``wait``.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from typing import TYPE_CHECKING, Any, Callable, Iterator, Union

import psycopg
from psycopg import rows, sql

from jobledger import exact_json
from jobledger.core import named_sql

if TYPE_CHECKING:
    import pyarrow

Connectable = Union[psycopg.Connection, str]
FINAL_STATUSES = ("succeeded", "failed", "cancelled")
_SUBMIT_OPTIONS = ("idempotency_key", "priority", "run_after", "max_attempts")
_SQL = named_sql.beside(__file__, "client.sql")
# How often wait reads a run it LISTENs for, whatever it hears.
LISTENING_POLL = 10.0


@contextlib.contextmanager
def _connection(conn_or_dsn: Connectable) -> Iterator[psycopg.Connection]:
    if isinstance(conn_or_dsn, psycopg.Connection):
        yield conn_or_dsn
        return
    # No server-side prepared statements: behind a pooler in transaction mode
    # (pgbouncer pool_mode = transaction) the next transaction may run on
    # another backend, where a statement psycopg prepared (after 5 executions,
    # e.g. wait's polls) does not exist, or one of that name already does.
    with psycopg.connect(conn_or_dsn, autocommit=True, prepare_threshold=None) as conn:
        yield conn


def submit(conn_or_dsn: Connectable, job: str, params: dict[str, Any] | None = None, **options: Any) -> uuid.UUID:
    """``jobledger.submit_job``: the new (or, with the same ``idempotency_key``, the existing) run's id.

    ``options``: ``idempotency_key``, ``priority``, ``run_after``, ``max_attempts``.
    """
    unknown = set(options) - set(_SUBMIT_OPTIONS)
    if unknown:
        raise TypeError(f"unknown submit option(s): {', '.join(sorted(unknown))}")
    query = sql.SQL(_SQL.get("submit")).format(options=sql.Composed([
        sql.SQL(_SQL.get("submit_option")).format(name=sql.Identifier(name), value=sql.Placeholder(name))
        for name in _SUBMIT_OPTIONS if name in options]))
    with _connection(conn_or_dsn) as conn, conn.cursor(row_factory=rows.tuple_row) as cur:
        found = cur.execute(query, {"job": job, "params": json.dumps(params or {}), **options}).fetchone()
        if not conn.autocommit:
            conn.commit()
    assert found is not None
    return found[0]


def status(conn_or_dsn: Connectable, run: uuid.UUID | str) -> dict[str, Any]:
    """The run's row in ``jobledger.runs`` (plus ``snapshot_id`` and ``error_sqlstate``).

    Its ``parameters`` are loaded by ``jobledger.exact_json``: an integer too
    long for Python's ``int`` is an ``exact_json.Number``, not an error."""
    with _connection(conn_or_dsn) as conn, conn.cursor(row_factory=rows.dict_row) as cur:
        exact_json.register(cur)
        found = cur.execute(_SQL.get("status"), (run,)).fetchone()
        if not conn.autocommit:
            conn.rollback()
    if found is None:
        raise LookupError(f"there is no run {run} (or it is not visible to this role)")
    return found


def wait(conn_or_dsn: Connectable, run: uuid.UUID | str, timeout: float | None = None,
         poll_interval: float = 0.5, on_poll: Callable[[dict[str, Any]], None] | None = None
         ) -> dict[str, Any]:
    """Wait until the run is succeeded, failed or cancelled; its ``status`` row.

    The ledger announces every change of a run's status on the channel
    ``jobledger_run_state`` when it commits: on a connection in autocommit
    mode (one ``wait`` opens itself, or yours) ``wait`` LISTENs and reads the
    run again as soon as a change of this run is announced, and otherwise
    only every ``LISTENING_POLL`` seconds (a notification lost, a pooler in
    transaction mode that moved the session).  Without notifications (a
    connection in a transaction) it polls every ``poll_interval`` seconds;
    either way the first reads come quickly (10 ms, doubling).  A connection
    it opened that is lost is opened again, and it polls from then on.
    ``on_poll`` sees every row that found the run still pending or running
    (the CLI's live status line).  ``TimeoutError`` after ``timeout`` seconds
    (None: wait for ever); ``LookupError`` if the run is not there (or not
    visible).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    wanted = str(run)
    delay = 0.01
    with contextlib.ExitStack() as stack:
        conn = stack.enter_context(_connection(conn_or_dsn))
        listening = _listen(conn)
        try:
            while True:
                try:
                    row = status(conn, run)
                except psycopg.OperationalError:
                    if isinstance(conn_or_dsn, psycopg.Connection):
                        raise
                    listening = False  # lost: poll on a new connection
                    conn = stack.enter_context(_connection(conn_or_dsn))
                    continue
                if row["status"] in FINAL_STATUSES:
                    return row
                if on_poll is not None:
                    on_poll(row)
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError(f"run {run} is still {row['status']} after {timeout} s")
                pause = delay if deadline is None else min(delay, max(0.0, deadline - time.monotonic()))
                delay = min(delay * 2, max(poll_interval, LISTENING_POLL) if listening else poll_interval)
                if not listening:
                    time.sleep(pause)
                    continue
                try:
                    _announced(conn, wanted, pause)
                except psycopg.OperationalError:
                    if isinstance(conn_or_dsn, psycopg.Connection):
                        raise
                    listening = False  # the next read opens a new connection
        finally:
            if listening and not conn.closed:
                with contextlib.suppress(psycopg.Error):
                    conn.execute(_SQL.get("unlisten"))


def _listen(conn: psycopg.Connection) -> bool:
    """LISTEN for run state changes, where notifications can arrive between
    wait's reads (autocommit); False where they cannot."""
    if not conn.autocommit:
        return False
    conn.execute(_SQL.get("listen"))
    return True


def _announced(conn: psycopg.Connection, run: str, pause: float) -> None:
    """Return once ``run``'s status change is announced, or after ``pause`` seconds."""
    end = time.monotonic() + pause
    while (left := end - time.monotonic()) > 0:
        for note in conn.notifies(timeout=left):
            with contextlib.suppress(ValueError, TypeError):
                if json.loads(note.payload).get("run") == run:
                    return
            break  # another run's: read on until the pause is over


def result(conn_or_dsn: Connectable, run: uuid.UUID | str) -> pyarrow.Table:
    """The stored result of a succeeded run of a job whose destination is ``result``.

    Read with ``jobledger.result_arrow`` (so the caller sees what row-level
    security lets it see) and decoded from the Arrow IPC stream: the exact
    types of the PostgreSQL → Arrow mapping (docs/destinations.md).
    """
    with _connection(conn_or_dsn) as conn, conn.cursor(row_factory=rows.tuple_row) as cur:
        found = cur.execute(_SQL.get("result_arrow"), (run,)).fetchone()
        if not conn.autocommit:
            conn.rollback()
    assert found is not None
    # Imported here: pyarrow takes a while to import, and submit/wait do not need it.
    from jobledger.lake import ipc_result

    return ipc_result.decode(bytes(found[0]))
