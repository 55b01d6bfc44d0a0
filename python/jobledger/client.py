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
    """Poll until the run is succeeded, failed or cancelled; its ``status`` row.

    Polling rather than LISTEN: the ledger sends no notification when a run
    ends.  The first polls come quickly (10 ms, doubling up to
    ``poll_interval``) so short runs return fast.  ``on_poll`` sees the row
    of every poll that found the run still pending or running (the CLI's
    live status line).  ``TimeoutError`` after ``timeout`` seconds (None: wait
    for ever); ``LookupError`` if the run is not there (or not visible).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.01
    with _connection(conn_or_dsn) as conn:
        while True:
            row = status(conn, run)
            if row["status"] in FINAL_STATUSES:
                return row
            if on_poll is not None:
                on_poll(row)
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"run {run} is still {row['status']} after {timeout} s")
            pause = delay if deadline is None else min(delay, max(0.0, deadline - time.monotonic()))
            time.sleep(pause)
            delay = min(delay * 2, poll_interval)


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
