"""Executing one claimed run into its destination table, in one transaction.

The transaction, pipelined (libpq pipeline mode, runner.wire) into two round
trips:

1. ``BEGIN``; ``run_context`` (SET LOCAL role = the job's owner,
   statement_timeout = the job's timeout, search_path = the template's,
   application_name = the run); for overwrite ``LOCK TABLE dest IN SHARE ROW
   EXCLUSIVE MODE`` and ``DELETE FROM dest``; the
   ``INSERT INTO dest (columns) (<rendered SQL>)`` (merge: ``ON CONFLICT
   (primary key) DO UPDATE``).  Its row count is what ``rows_written`` needs.
2. ``reset_role`` (the runner's role again, no timeout); ``complete_run`` (the fenced flip to succeeded, which
   raises if the run is no longer this attempt's); the executor's next
   claim (so one commit serves both); ``COMMIT``; ``session.RESET`` (nothing
   the job left in the session outlives its run).

Either everything commits, or nothing: a failure anywhere rolls the write
back, the session is reset, and the attempt is then recorded by
``fail_run`` (fenced too) on the same connection, or on a new one if the
connection was lost.

Destinations outside the database (``result``, ``parquet:``) are executed
by ``runner.lake``.

With ``--connect-as-owner`` (runner.owners) ``conn`` is a connection logged
in as the job's owner, attached to the run (``attach_run``), and ``ledger``
the executor's own: the transaction above is the same, but completes with
``complete_attached_run`` on ``conn`` (so write and flip still commit
together) and claims nothing; failures, releases and claims go on ``ledger``.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import logging
import time
from typing import Any, Callable

import psycopg
from psycopg import rows, sql

from jobledger.core import destinations, errors
from jobledger.core.search_path import TEMPLATE_SEARCH_PATH
from jobledger.runner import claim, queries, session, wire

log = logging.getLogger("jobledger.runner")

# Errors worth another attempt: the same statement may well succeed later.
TRANSIENT_SQLSTATES = frozenset({
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
    "57P01",  # admin_shutdown (also pg_terminate_backend)
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now
})
TRANSIENT_CLASSES = frozenset({"08"})  # connection exceptions
LOST_CONNECTION_SQLSTATE = "08006"  # connection_failure, when the server said nothing


class Outcome(enum.Enum):
    """What became of one attempt, from this runner's point of view."""

    SUCCEEDED = "succeeded"
    RETRY = "retry"  # failed; pending again after a backoff
    FAILED = "failed"  # failed for good
    FENCED = "fenced"  # someone else decided first (cancel_run, a lease takeover)
    RELEASED = "released"  # given back by a runner shutting down


@dataclasses.dataclass(frozen=True)
class Failure:
    """A failed attempt as fail_run records it."""

    error: str
    sqlstate: str | None
    category: str
    retry: bool


@dataclasses.dataclass(frozen=True)
class Result:
    """An executed attempt: its outcome, the rows written if it succeeded, and
    the runs claimed right after its commit (None: no claim was made)."""

    outcome: Outcome
    rows_written: int | None = None
    claimed: list[claim.ClaimedRun | claim.Unreadable] | None = None


class ConnectionLost(Exception):
    """The executor's connection died mid-run; record ``failure`` on a new one."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.error)
        self.failure = failure


def is_transient(sqlstate: str | None) -> bool:
    return sqlstate is not None and (sqlstate in TRANSIENT_SQLSTATES or sqlstate[:2] in TRANSIENT_CLASSES)


def classify(exc: psycopg.Error, run: claim.ClaimedRun, elapsed_ms: float) -> Failure | None:
    """The failure to record for ``exc``, or None when the run is no longer ours.

    A cancelled statement (57014) is a timeout when the job has one and it
    has elapsed: the client's clock cannot run ahead of the server's timer,
    whatever language the server reports in.  Otherwise it was cancel_run
    (whose fenced effect fail_run then respects: the run stays cancelled) or
    somebody's pg_cancel_backend, which deserves another attempt.
    """
    detail = exc.diag.message_detail
    category = errors.category_of_detail(detail)
    if category == "run_fenced":
        return None
    sqlstate = exc.sqlstate
    message = exc.diag.message_primary or str(exc).strip() or type(exc).__name__
    if sqlstate == "57014":
        if run.timeout_ms and elapsed_ms >= run.timeout_ms:
            return Failure(f"timed out after {run.timeout_ms} ms", sqlstate, "timeout", retry=False)
        return Failure(message, sqlstate, "transient_error", retry=True)
    if is_transient(sqlstate):
        return Failure(message, sqlstate, "transient_error", retry=True)
    return Failure(message, sqlstate, category or "execution_error", retry=False)


class OutputColumns:
    """The names of the columns a run's query produces, by job version.

    A run writes its rows by column name (the schema diff at submit time
    matched them by name), so the INSERT needs the names.  PostgreSQL tells
    them by parsing the rendered SQL (never executing it); a placeholder can
    only stand for a value, so they depend on the job version and, at most,
    on the types of the parameters' values, which is the cache key.
    """

    MAX_ENTRIES = 10_000

    def __init__(self) -> None:
        self._known: dict[tuple[Any, ...], tuple[str, ...]] = {}

    def get(self, conn: psycopg.Connection, run: claim.ClaimedRun) -> tuple[str, ...]:
        key = (run.job, run.job_version, run.parameter_shape)
        found = self._known.get(key)
        if found is None:
            found = describe(conn, run.rendered_sql, run.owner)
            if len(self._known) >= self.MAX_ENTRIES:
                self._known.clear()
            self._known[key] = found
        return found


def describe(conn: psycopg.Connection, query: str, owner: str) -> tuple[str, ...]:
    """Output column names of ``query``, parsed as ``owner`` would run it."""
    encoding = conn.info.encoding
    with conn.transaction():
        conn.execute(queries.get("describe_context"),
                     {"owner": owner, "search_path": TEMPLATE_SEARCH_PATH})
        pgconn = conn.pgconn
        for result in (pgconn.prepare(b"", query.encode(encoding)), pgconn.describe_prepared(b"")):
            if result.status != psycopg.pq.ExecStatus.COMMAND_OK:
                raise psycopg.errors.error_from_result(result, encoding=encoding)
        return tuple(result.fname(i).decode(encoding) for i in range(result.nfields))


def statements(run: claim.ClaimedRun, columns: tuple[str, ...]) -> list[sql.Composed]:
    """The write of ``run``, by mode: the statements of step 1 after run_context."""
    destination = sql.Identifier(run.destination_schema, run.destination_table)
    names = sql.SQL(", ").join(map(sql.Identifier, columns))
    query = sql.SQL(run.rendered_sql)  # from the ledger, rendered by submit_job
    if run.mode == "append":
        return [sql.SQL(queries.get("append")).format(destination=destination, columns=names, query=query)]
    if run.mode == "overwrite":
        return [
            sql.SQL(queries.get("overwrite_lock")).format(destination=destination),
            sql.SQL(queries.get("overwrite_delete")).format(destination=destination),
            sql.SQL(queries.get("append")).format(destination=destination, columns=names, query=query),
        ]
    if run.mode == "merge":
        key = run.primary_key or ()
        if not key:
            raise psycopg.errors.InvalidTableDefinition(
                f"merge needs a primary key on {run.destination}, and it has none")
        others = [c for c in columns if c not in key]
        key_sql = sql.SQL(", ").join(map(sql.Identifier, key))
        if not others:
            return [sql.SQL(queries.get("merge_keys_only")).format(
                destination=destination, columns=names, query=query, key=key_sql)]
        assignment = sql.SQL(queries.get("merge_assignment"))
        assignments = sql.SQL(", ").join(assignment.format(column=sql.Identifier(c)) for c in others)
        return [sql.SQL(queries.get("merge")).format(
            destination=destination, columns=names, query=query, key=key_sql, assignments=assignments)]
    raise ValueError(f"unknown mode {run.mode!r}")


def write(conn: psycopg.Connection, run: claim.ClaimedRun, worker: str, steps: list[sql.Composed],
          claim_next: bool = False, attached: bool = False
          ) -> tuple[int, list[claim.ClaimedRun | claim.Unreadable] | None]:
    """Run the pipelined transaction: the rows written, and the next runs if
    ``claim_next``.  Raises on any failure, after which nothing of it is
    left: the transaction is rolled back, the claim never made, the session
    reset (or the connection closed).  ``attached``: ``conn`` is the owner's
    (runner.owners), which completes with complete_attached_run and never
    claims."""
    assert not (attached and claim_next), "an owner's connection claims nothing"
    try:
        with wire.Pipeline(conn) as pipeline:
            pipeline.send(b"BEGIN")
            pipeline.send(queries.pipelined("run_context"), {
                "owner": run.owner,
                "timeout_ms": str(run.timeout_ms or 0),
                "search_path": TEMPLATE_SEARCH_PATH,
                "run": run.id,
            })
            for step in steps:
                pipeline.send(step.as_bytes(conn))
            rows_written = wire.rows_affected(pipeline.sync()[-1])
            pipeline.send(queries.pipelined("reset_role"), {})
            pipeline.send(queries.pipelined("complete_attached_run" if attached else "complete_run"), {
                "run": run.id, "attempt": run.attempt, "worker": worker, "rows_written": rows_written,
            })
            if claim_next:  # in the same transaction: one commit for both
                pipeline.send(queries.pipelined("claim_runs"), {"worker": worker, "max_runs": 1})
            pipeline.send(b"COMMIT")
            for statement in session.reset_statements(conn):  # after the COMMIT: what the job left in the session goes
                pipeline.send(statement)
            results = pipeline.sync()
    except BaseException:
        session.reset(conn)
        raise
    # results: reset_role, complete_run, [claim_runs], COMMIT, session.RESET.
    claimed = claim.load(conn, results[2]) if claim_next else None
    return rows_written, claimed


def execute(conn: psycopg.Connection, run: claim.ClaimedRun, worker: str, *, columns: OutputColumns,
            backoff: float, releasing: Callable[[], bool], claim_next: bool = False,
            ledger: psycopg.Connection | None = None) -> Result:
    """Execute ``run`` on ``conn`` (the connection that claimed it), claiming
    the next run after a success if ``claim_next``.  Raises ConnectionLost
    if ``conn`` died.  With ``ledger`` (runner.owners), ``conn`` is the
    owner's connection attached to the run, and the ledger calls go on
    ``ledger``; a lost ``conn`` is then recorded there."""
    if destinations.outside_database(run.destination):
        # result and parquet: (runner.lake; imported on first use: pyarrow).
        from jobledger.runner import lake

        return lake.execute(conn, run, worker, backoff=backoff, releasing=releasing, ledger=ledger)
    if run.destination_table is None:
        failure = Failure(f'the destination table {run.destination} of job "{run.job}" no longer exists',
                          "42P01", "destination_missing", retry=False)
        return Result(record(ledger or conn, run, worker, failure, backoff))
    started = time.monotonic()
    try:
        steps = statements(run, columns.get(conn, run))
        started = time.monotonic()
        rows_written, claimed = write(conn, run, worker, steps, claim_next and ledger is None,
                                      attached=ledger is not None)
    except psycopg.Error as exc:
        return database_error(conn, run, worker, exc, (time.monotonic() - started) * 1000, backoff, releasing,
                              ledger=ledger)
    return Result(Outcome.SUCCEEDED, rows_written, claimed)


def database_error(conn: psycopg.Connection, run: claim.ClaimedRun, worker: str, exc: psycopg.Error,
                   elapsed_ms: float, backoff: float, releasing: Callable[[], bool],
                   ledger: psycopg.Connection | None = None) -> Result:
    """What to do after ``exc`` ended an attempt: record it (fail_run), release
    the run (shutting down), or leave it (fenced), on ``ledger`` if given,
    else on ``conn``.  Raises ConnectionLost if ``conn`` died and there is
    no ``ledger``."""
    if conn.closed or conn.broken:
        lost = Failure(exc.diag.message_primary or str(exc).strip() or "lost the connection to the server",
                       exc.sqlstate or LOST_CONNECTION_SQLSTATE, "transient_error", retry=True)
        if ledger is None:
            raise ConnectionLost(lost) from exc
        if releasing():
            return Result(release(ledger, run, worker))
        return Result(record(ledger, run, worker, lost, backoff))
    recorder = ledger or conn
    if releasing() and exc.sqlstate == "57014":
        return Result(release(recorder, run, worker))
    failure = classify(exc, run, elapsed_ms)
    if failure is None:
        log.info("run %s attempt %d: %s", run.id, run.attempt, exc.diag.message_primary)
        return Result(Outcome.FENCED)
    return Result(record(recorder, run, worker, failure, backoff))


def unexpected(exc: BaseException) -> Failure:
    """The failure to record when the runner itself failed on a run (an
    error it does not expect, a value it cannot handle): the run fails for
    good, the executor goes on."""
    return Failure(f"the runner failed on this run: {type(exc).__name__}: {str(exc)[:500]}", None,
                   "runner_error", retry=False)


def record(conn: psycopg.Connection, run: claim.ClaimedRun | claim.Unreadable, worker: str, failure: Failure,
           backoff: float) -> Outcome:
    """fail_run: the attempt's error; pending again (retry) or failed."""
    with conn.cursor(row_factory=rows.dict_row) as cur:
        cur.execute(queries.get("fail_run"), {
            "run": run.id, "attempt": run.attempt, "worker": worker, "error": failure.error,
            "sqlstate": failure.sqlstate, "category": failure.category, "retry": failure.retry,
            "backoff": _interval(backoff),
        })
        status = cur.fetchone()["status"]
    if status is None:
        return Outcome.FENCED
    log.warning("run %s (job %s) attempt %d failed%s: %s [%s]", run.id, run.job, run.attempt,
                ", will retry" if status == "pending" else "", failure.error, failure.sqlstate)
    return Outcome.RETRY if status == "pending" else Outcome.FAILED


def release(conn: psycopg.Connection, run: claim.ClaimedRun, worker: str) -> Outcome:
    """release_run: back to pending, the interrupted attempt not counted."""
    with conn.cursor(row_factory=rows.dict_row) as cur:
        cur.execute(queries.get("release_run"), {"run": run.id, "attempt": run.attempt, "worker": worker})
        released = cur.fetchone()["released"]
    return Outcome.RELEASED if released else Outcome.FENCED


def _interval(seconds: float) -> datetime.timedelta:
    return datetime.timedelta(seconds=seconds)
