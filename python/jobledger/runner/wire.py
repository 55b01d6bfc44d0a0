"""libpq's pipeline mode, driven directly, for the executor's hot path.

Why not psycopg's ``Connection.pipeline()``: it costs about a millisecond of
Python per run (a generator step and a poll per statement), several times
the database's own work for a small run, and runs/s were bound by it.  Here a
run's transaction is a handful of ``PQsendQueryParams`` calls, one
``PQpipelineSync``, one wait for the socket, and C-speed result loading
(psycopg's Transformer, in claim.load): about 0.1 ms per run.  Values are
still sent as bound parameters, the statements are still the named blocks of
queries.sql.

Only between runs is the connection handed back to psycopg (pipeline mode
exited, transaction closed), so the rest of the runner uses it normally.
"""

from __future__ import annotations

import select
import uuid
from typing import Any

import psycopg
from psycopg import pq

from jobledger.runner import queries

_OK = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK)


def _param(value: Any) -> bytes | None:
    """A bound parameter in text format (the server infers its type)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return b"t" if value else b"f"
    if isinstance(value, (int, str, uuid.UUID)):
        return str(value).encode()
    raise TypeError(f"cannot send {type(value).__name__} in a pipeline")


class Pipeline:
    """``with Pipeline(conn) as p``: queue statements, ``p.sync()`` for results."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.pgconn = conn.pgconn
        self.encoding = conn.info.encoding

    def __enter__(self) -> Pipeline:
        self.pgconn.enter_pipeline_mode()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pgconn.status == pq.ConnStatus.OK and self.pgconn.pipeline_status != pq.PipelineStatus.OFF:
            try:
                self.pgconn.exit_pipeline_mode()
            except psycopg.OperationalError:
                pass  # results left unread after a failure: the caller closes the connection

    def send(self, query: queries.Pipelined | bytes, params: dict[str, Any] | None = None) -> None:
        if isinstance(query, bytes):
            self.pgconn.send_query_params(query, None)
        else:
            assert params is not None
            self.pgconn.send_query_params(query.text, [_param(params[name]) for name in query.names])

    def sync(self) -> list[pq.abc.PGresult]:
        """Send everything queued and wait for all its results, one per
        statement.  Raises the first statement's error (a psycopg.Error with
        its SQLSTATE and diagnostics) after reading up to the sync point."""
        pgconn = self.pgconn
        pgconn.pipeline_sync()
        while pgconn.flush() == 1:
            select.select([], [pgconn.socket], [])
        results: list[pq.abc.PGresult] = []
        error: psycopg.Error | None = None
        while True:
            while pgconn.is_busy():
                select.select([pgconn.socket], [], [])
                pgconn.consume_input()
            result = pgconn.get_result()
            if result is None:
                if pgconn.status == pq.ConnStatus.BAD:
                    raise error or psycopg.OperationalError("the connection to the server was lost")
                continue  # the end of one statement's results
            if result.status == pq.ExecStatus.PIPELINE_SYNC:
                break
            if result.status in _OK:
                results.append(result)
            elif result.status == pq.ExecStatus.FATAL_ERROR and error is None:
                error = psycopg.errors.error_from_result(result, encoding=self.encoding)
            elif result.status == pq.ExecStatus.PIPELINE_ABORTED:
                pass  # skipped after the error above
        if error is not None:
            raise error
        return results


def rows_affected(result: pq.abc.PGresult) -> int:
    """Rows an INSERT (UPDATE, DELETE) reported in its command tag."""
    return int(result.command_tuples or 0)

