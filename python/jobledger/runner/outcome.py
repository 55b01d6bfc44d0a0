"""What became of an attempt, and recording it: the runner's side of a
failed attempt's transitions (fail_run, release_run, through runner.ledger).

Shared by the executions into a table (runner.execute) and outside the
database (runner.lake), and by the executor (runner.process).
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from typing import Callable

import psycopg

from jobledger.core import errors
from jobledger.runner import claim, ledger

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
# jobledger's own categories worth another attempt: an object store that
# failed in a way not known to be permanent (unreachable, 5xx, a commit
# conflict delta-rs gave up on).  A missing bucket (destination_missing) or
# refused credentials (permission_denied) are not retried.  The retry asks
# the table first, so a write that did commit is never made twice.
TRANSIENT_CATEGORIES = frozenset({"storage_error"})
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


def database_error(conn: psycopg.Connection, run: claim.ClaimedRun, worker: str, exc: psycopg.Error,
                   elapsed_ms: float, backoff: float, releasing: Callable[[], bool],
                   runner_conn: psycopg.Connection | None = None) -> Result:
    """What to do after ``exc`` ended an attempt: record it (fail_run), release
    the run (shutting down), or leave it (fenced), on ``runner_conn`` if
    given (``conn`` being the owner's: runner.owners), else on ``conn``.
    Raises ConnectionLost if ``conn`` died and there is no ``runner_conn``."""
    if conn.closed or conn.broken:
        lost = Failure(exc.diag.message_primary or str(exc).strip() or "lost the connection to the server",
                       exc.sqlstate or LOST_CONNECTION_SQLSTATE, "transient_error", retry=True)
        if runner_conn is None:
            raise ConnectionLost(lost) from exc
        if releasing():
            return Result(release(runner_conn, run, worker))
        return Result(record(runner_conn, run, worker, lost, backoff))
    recorder = runner_conn or conn
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
    status = ledger.fail(conn, ledger.Attempt.of(run, worker), error=failure.error, sqlstate=failure.sqlstate,
                         category=failure.category, retry=failure.retry, backoff=backoff)
    if status is None:
        return Outcome.FENCED
    log.warning("run %s (job %s) attempt %d failed%s: %s [%s]", run.id, run.job, run.attempt,
                ", will retry" if status == "pending" else "", failure.error, failure.sqlstate)
    return Outcome.RETRY if status == "pending" else Outcome.FAILED


def release(conn: psycopg.Connection, run: claim.ClaimedRun | claim.Unreadable, worker: str) -> Outcome:
    """release_run: back to pending, the interrupted attempt not counted."""
    return Outcome.RELEASED if ledger.release(conn, ledger.Attempt.of(run, worker)) else Outcome.FENCED
