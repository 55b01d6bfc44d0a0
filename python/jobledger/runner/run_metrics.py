"""The figures a runner records for a run in ``jobledger.run.metrics``
(docs/runner.md, "Run metrics"), measured on the runner's monotonic clock
and recorded by ``complete_run`` in the transaction that completes the run.

Times are milliseconds (three decimals), sizes bytes.  What exists depends
on how the destination is written:

* a table: one pipelined round trip runs BEGIN, the session settings, the
  overwrite's lock and DELETE and the ``INSERT ... SELECT``; reading and
  writing happen inside one statement of the server and cannot be told
  apart, so there are only ``rows`` and ``statement_ms`` (that round trip).
  No bytes: a table's size hardly moves with what a run wrote (free space
  is reused, an overwrite's old rows stay until VACUUM, indexes and TOAST
  grow on their own), so a size delta would mislead.
* ``result``, ``parquet:``, ``delta:`` (runner.lake): the rows arrive as
  Arrow batches from a server-side cursor, so the wait for the server and
  the runner's own work are measured apart (``Lake``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from typing import Any, ContextManager, Iterator


def ms(seconds: float) -> float:
    """Seconds as milliseconds, to the microsecond."""
    return round(max(0.0, seconds) * 1000, 3)


def table(rows: int, statement_seconds: float) -> dict[str, int | float]:
    """The figures of a run written into a table."""
    return {"rows": rows, "statement_ms": ms(statement_seconds)}


class Lake:
    """The figures of one run streamed into a lake destination.

    ``query`` wraps ``arrow_batches.stream``: from entering it (the cursor
    is declared and the column types read) the clock runs, and each wait for
    the next batch is added to the query's time.  ``figures`` closes the
    measure right before the run is completed:

    * ``first_row_ms``: the query's time until the first batch with rows
      arrived (opening the cursor, then the fetches up to it; the runner's
      own work in between is not counted, so it is at most ``query_ms``).
      Absent when the query returned no rows.
    * ``query_ms``: the query's whole time: opening the cursor and every
      fetch (the server's work, the transfer and the conversion to Arrow).
    * ``write_ms``: everything else from opening the cursor until the
      completion: encoding and writing files, publishing the version,
      emitting outputs.
    * ``arrow_bytes``: the size of the Arrow batches read (in memory).
    * ``bytes``: what was written to the destination, when the caller knows
      it (the ``result`` IPC stream; the Parquet files of the new version).
    """

    def __init__(self) -> None:
        self.began: float | None = None
        self.query_seconds = 0.0
        self.first_row_seconds: float | None = None
        self.arrow_bytes = 0

    @contextlib.contextmanager
    def query(self, opening: ContextManager[Any]) -> Iterator[Any]:
        """``with m.query(arrow_batches.stream(...)) as result``: the same
        result, with its batches timed."""
        self.began = time.monotonic()
        with opening as result:
            self.query_seconds += time.monotonic() - self.began
            yield dataclasses.replace(result, batches=self._timed(result.batches))

    def _timed(self, batches: Iterator[Any]) -> Iterator[Any]:
        while True:
            waited = time.monotonic()
            try:
                batch = next(batches)
            except StopIteration:
                self.query_seconds += time.monotonic() - waited
                return
            self.query_seconds += time.monotonic() - waited
            if self.first_row_seconds is None and batch.num_rows > 0:
                self.first_row_seconds = self.query_seconds
            self.arrow_bytes += batch.nbytes
            yield batch

    def figures(self, rows: int, written_bytes: int | None = None) -> dict[str, int | float]:
        """The run's metrics, measured until now."""
        total = time.monotonic() - self.began if self.began is not None else 0.0
        found: dict[str, int | float] = {
            "rows": rows,
            "query_ms": ms(self.query_seconds),
            "write_ms": ms(total - self.query_seconds),
            "arrow_bytes": self.arrow_bytes,
        }
        if self.first_row_seconds is not None:
            found["first_row_ms"] = ms(self.first_row_seconds)
        if written_bytes is not None:
            found["bytes"] = written_bytes
        return found
