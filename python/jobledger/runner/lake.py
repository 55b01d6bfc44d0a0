"""Executing runs whose destination is outside the database: ``result``, ``parquet:``,
``delta:`` and ``lance:`` (the last two: ``_lake_table``, one commit of the
table format's writer per run, recognisable by the run after a crash).

Both read the rendered query through a binary server-side cursor
(``arrow_batches.stream``) into Arrow record batches of at most
``BATCH_ROWS`` rows, in a transaction on the executor's connection that
starts like a table write (``run_context``: the owner's role, the job's
timeout for each statement, the template's search_path, the run in
application_name, so cancel_run and reconcile_orphaned find the backend).

``result``: the batches become an Arrow IPC stream under the size cap
(``jobledger.result_max_bytes``, default 64MB; over it the run fails with
``result_too_large`` and nothing is kept), plus its exact JSON rendering for
``jobledger.result_json`` (the server has no Arrow reader); the cap counts
both.  Both are emitted as outputs (``result``, then ``result.json`` derived
from it) in the transaction that completes the run: all or nothing.

``parquet:<directory>``: the batches are written into Parquet files under
the dataset's ``_tmp/`` as they arrive (memory: one batch, whatever the
size of the result), then

1. ``lock_run``: the fence, held (the run's row stays locked until this
   transaction ends, so a cancel or a lease takeover cannot slip in between
   the publish and the ledger);
2. the version is published (``parquet_dataset.Writer.commit``: one
   create-exclusive link of its manifest); its number is the snapshot_id;
3. the manifest is emitted as the run's ``manifest`` output and
   ``complete_run`` records rows_written and snapshot_id; COMMIT.

Exactly once: a crash between 2 and 3 leaves the run ``running`` with a
dead backend; reconcile_orphaned puts it back to pending and the retry,
before running anything, asks the dataset whether this run already
published a version (``dataset_manifest.find_commit``, by run id): if so it
only does step 3 with that version and writes nothing.  (``Writer.commit``
asks again right before publishing.)  A failure of step 3 after a publish
is recorded as retryable for the same reason.

During a long write, ``rows_written`` and ``progress`` are reported every
``jobledger.progress_interval`` (default 1 second) from a second connection
(``report_progress``; the run's own transaction is still open).  progress is
the share of the planner's row estimate, at most 99 until the commit.

The directory must be jobledger's (``dataset_manifest.check_owned``: its
marker, new, or empty; adopted with the marker when the Writer opens it):
one holding someone else's files fails the run with ``destination_missing``
before a row is read, and nothing in it is touched.

After an ``overwrite``, or any commit, jobledger's own files (by name) that
no version kept within ``jobledger.parquet_retention`` (default 1 day) lists
are removed (``parquet_dataset.remove_unreferenced``): readers of an earlier
version keep their files at least that long, and files others put into the
directory are never removed.

With ``--connect-as-owner`` (runner.owners) the read, and the transaction
that emits and completes, are on the owner's connection attached to the run,
through the ``*_attached_*`` functions (lock, emit, complete): the same
transaction as above, so the same guarantees.  The settings, the progress
reports and any failure are the runner's own connection's (``runner_conn``).
The ledger calls go through runner.ledger.

``JOBLEDGER_RUNNER_FAULT=exit-after-publish`` in the runner's environment
makes it exit at once after step 2 (runner.faults): the tests' way to crash
between the publish and the ledger.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
import threading
import time
from typing import Any, Callable, Iterator

import psycopg
import pyarrow
from psycopg import conninfo as pg_conninfo
from psycopg import rows, sql

from jobledger.core import dataset_manifest, destinations, errors, lake_grants
from jobledger.lake import arrow_batches, ipc_result, parquet_dataset
from jobledger.runner import claim, faults, ledger, outcome, queries, run_metrics, session

log = logging.getLogger("jobledger.runner")

BATCH_ROWS = arrow_batches.DEFAULT_BATCH_ROWS
IPC_CONTENT_TYPE = "application/vnd.apache.arrow.stream"
JSON_CONTENT_TYPE = "application/json"


@dataclasses.dataclass(frozen=True)
class Settings:
    """The lake_settings of the runner's session."""

    result_max_bytes: int
    parquet_retention: datetime.timedelta
    progress_interval: float


class TimedOut(Exception):
    """The job's timeout passed between two statements of a streamed read."""


class Published(Exception):
    """Something failed after a dataset version was published for the run:
    another attempt will find that version and only record it."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def execute(conn: psycopg.Connection, run: claim.ClaimedRun, worker: str, *, backoff: float,
            releasing: Callable[[], bool], runner_conn: psycopg.Connection | None = None) -> outcome.Result:
    """Execute ``run`` (destination ``result`` or ``parquet:...``) on ``conn``.

    Never claims the next run in its transaction (the executor claims
    afterwards).  The session is reset (runner.session) before anything
    else is done on ``conn``.  Raises ConnectionLost if ``conn`` died, like
    ``execute.execute``; with ``runner_conn`` (the runner's connection,
    ``conn`` being the owner's: runner.owners) failures are recorded on
    ``runner_conn``."""
    calls = Calls(conn, runner_conn)
    target = destinations.parse(run.destination)
    started = time.monotonic()
    failure: outcome.Failure | None = None
    try:
        try:
            if isinstance(target, destinations.Parquet):
                rows_written = _parquet(conn, run, worker, target, calls)
            elif isinstance(target, destinations.Delta):
                rows_written = _delta(conn, run, worker, target, calls)
            elif isinstance(target, destinations.Lance):
                rows_written = _lance(conn, run, worker, target, calls)
            else:
                rows_written = _result(conn, run, worker, calls)
        finally:
            session.reset(conn)  # the job's transaction is over: nothing of it stays
    except Published as published:
        cause = published.cause
        if isinstance(cause, psycopg.Error) and (conn.closed or conn.broken) and runner_conn is None:
            raise outcome.ConnectionLost(outcome.Failure(
                str(cause).strip() or "lost the connection to the server",
                cause.sqlstate or outcome.LOST_CONNECTION_SQLSTATE, "transient_error",
                retry=True)) from cause
        failure = outcome.Failure(
            f"the dataset version was published but recording it failed: {cause}",
            getattr(cause, "sqlstate", None), "transient_error", retry=True)
    except psycopg.Error as exc:
        return outcome.database_error(conn, run, worker, exc, (time.monotonic() - started) * 1000,
                                      backoff, releasing, runner_conn=runner_conn)
    except errors.JobledgerError as exc:
        failure = outcome.Failure(exc.message, exc.sqlstate, exc.category,
                                  retry=exc.category in outcome.TRANSIENT_CATEGORIES)
    except TimedOut:
        failure = outcome.Failure(f"timed out after {run.timeout_ms} ms", "57014", "timeout", retry=False)
    except PermissionError as exc:
        failure = outcome.Failure(f"the runner cannot write {target}: {exc}", "42501",
                                        "permission_denied", retry=False)
    except OSError as exc:
        failure = outcome.Failure(f"writing the dataset failed: {exc}", "58030", "execution_error",
                                        retry=False)
    if failure is not None:
        return outcome.Result(outcome.record(runner_conn or conn, run, worker, failure, backoff))
    return outcome.Result(outcome.Outcome.SUCCEEDED, rows_written, None)


# ---- result -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Calls:
    """Where the ledger calls of a lake run go: all on ``conn`` (SET ROLE
    mode), or, with ``own`` (the runner's connection: runner.owners), the
    fenced ones (lock, emit, complete) on ``conn`` through their
    ``*_attached_*`` forms and the settings and progress reports on ``own``."""

    conn: psycopg.Connection
    own: psycopg.Connection | None = None

    @property
    def attached(self) -> bool:
        return self.own is not None

    @property
    def runner_conn(self) -> psycopg.Connection:
        return self.own or self.conn

    def lock(self, run: claim.ClaimedRun, worker: str) -> None:
        ledger.lock(self.conn, ledger.Attempt.of(run, worker), self.attached)


def _result(conn: psycopg.Connection, run: claim.ClaimedRun, worker: str, calls: Calls) -> int:
    with conn.transaction():
        settings = _settings(calls.runner_conn)
        conn.execute(queries.get("run_context"), run.context())
        deadline = _deadline(run)
        measure = run_metrics.Lake()
        with measure.query(arrow_batches.stream(conn, run.rendered_sql, batch_rows=BATCH_ROWS)) as result:
            ipc = ipc_result.encode(result.schema, _until(deadline, result.batches),
                                    max_bytes=settings.result_max_bytes)
        table = ipc_result.decode(ipc)
        rendered = ipc_result.to_json(table).encode()
        if len(ipc) + len(rendered) > settings.result_max_bytes:
            raise errors.JobledgerError(
                "result_too_large",
                f"the result and its JSON rendering take {len(ipc) + len(rendered)} bytes, over the size cap "
                f"of {settings.result_max_bytes} bytes (jobledger.result_max_bytes); nothing was kept",
                hint="Raise the cap, narrow the query, or write to a parquet: destination.")
        conn.execute(queries.get("reset_role"))
        ipc_id = _emit(calls, run, worker, "result", IPC_CONTENT_TYPE, ipc)
        _emit(calls, run, worker, "result.json", JSON_CONTENT_TYPE, rendered, [ipc_id])
        _complete(calls, run, worker, table.num_rows, None, measure.figures(table.num_rows, len(ipc)))
    return table.num_rows


# ---- parquet ------------------------------------------------------------------


def _parquet(conn: psycopg.Connection, run: claim.ClaimedRun, worker: str, target: destinations.Parquet,
             calls: Calls) -> int:
    # A retry after a crash between publish and ledger: record, write nothing.
    earlier = dataset_manifest.find_commit(target.root, str(run.id))
    if earlier is not None:
        log.info("run %s: version %d of %s was published by attempt %d; recording it", run.id, earlier.version,
                 target.root, earlier.attempt)
        _record_earlier(conn, run, worker, calls, lambda: _record_commit(calls, run, worker, earlier))
        return earlier.added_rows

    with conn.transaction():
        settings = _settings(calls.runner_conn)
        conn.execute(queries.get("run_context"), run.context())
        progress = Progress(calls.runner_conn, run, worker, settings.progress_interval, _estimate(conn, run))
        deadline = _deadline(run)
        measure = run_metrics.Lake()
        with measure.query(arrow_batches.stream(conn, run.rendered_sql, batch_rows=BATCH_ROWS)) as result, \
                parquet_dataset.Writer(target.root, result.schema, run=str(run.id), attempt=run.attempt,
                                       mode=run.mode, create_if_missing=target.create_if_missing,
                                       progress=progress.report) as writer:
            writer.write(_until(deadline, result.batches))
            conn.execute(queries.get("reset_role"))
            calls.lock(run, worker)
            commit = writer.commit()
            faults.exit_now("exit-after-publish")
            try:
                _record_commit(calls, run, worker, commit.manifest, measure)
            except Exception as exc:
                raise Published(exc) from exc
    if commit.already_committed:
        log.info("run %s: already published as version %d", run.id, commit.snapshot_id)
    _retention(target, settings)
    return commit.rows_written


# ---- delta ----------------------------------------------------------------------


def _delta(conn: psycopg.Connection, run: claim.ClaimedRun, worker: str, target: destinations.Delta,
           calls: Calls) -> int:
    """One commit of the run into the Delta table (lake.delta_table).

    delta-rs writes the files and commits in one call, so the fence is taken
    (``lock_run``) right before the first batch is read into it and held to
    the end of the transaction: meanwhile cancel_run waits (the job's timeout
    bounds the write) and a lease takeover passes the run by.  A retry asks
    the table first (``find_commit``: the run's app transaction) and only
    records the version an earlier attempt committed (even if the owner's
    grant was taken back since: the write happened).  Otherwise the owner's
    right to write the location (``check_lake_writer``) is asked before the
    query runs and again under the fence, right before delta-rs writes."""
    from jobledger.lake import delta_table  # deltalake only for delta: runs

    storage = delta_table.storage_options(target.uri)
    return _lake_table(conn, run, worker, target, calls,
                       lambda: delta_table.find_commit(target.uri, str(run.id), storage),
                       lambda schema, batches, **kwargs: delta_table.write(
                           target.uri, schema, batches, partition_by=target.partition_by,
                           merge_keys=target.merge_keys, storage=storage, **kwargs))


# ---- lance ----------------------------------------------------------------------


def _lance(conn: psycopg.Connection, run: claim.ClaimedRun, worker: str, target: destinations.Lance,
           calls: Calls) -> int:
    """One commit of the run into the Lance dataset (lake.lance_dataset), as
    ``_delta`` does it: the fence right before the first batch is read into
    ``lance.write_dataset``; a retry (attempt > 1) asks the dataset first
    (``find_commit``: the run in a version's transaction properties) and only
    records the version an earlier attempt committed; otherwise the owner's
    grant (``check_lake_writer``) is asked before the query and under the fence."""
    from jobledger.lake import lance_dataset  # pylance only for lance: runs

    storage = lance_dataset.storage_options(target.uri)

    def earlier() -> Any:
        return lance_dataset.find_commit(target.uri, str(run.id), storage) if run.attempt > 1 else None

    return _lake_table(conn, run, worker, target, calls, earlier,
                       lambda schema, batches, **kwargs: lance_dataset.write(
                           target.uri, schema, batches, storage=storage, **kwargs))


# ---- delta and lance ---------------------------------------------------------------


def _lake_table(conn: psycopg.Connection, run: claim.ClaimedRun, worker: str,
                target: destinations.Delta | destinations.Lance, calls: Calls, find_earlier: Callable[[], Any],
                write: Callable[..., Any]) -> int:
    """A run into a table format that writes and commits in one call
    (``delta_table.write``, ``lance_dataset.write``): an earlier attempt's
    commit only recorded; else the query streamed into ``write`` with the
    fence taken before its first batch, then the version recorded in the
    same transaction."""
    earlier = find_earlier()
    if earlier is not None:
        log.info("run %s: version %d of %s was committed by attempt %d; recording it", run.id, earlier.version,
                 target.uri, earlier.attempt)
        _record_earlier(conn, run, worker, calls, lambda: _record_lake(calls, run, worker, target, earlier))
        return earlier.rows_written

    # The owner's right to write here (core.lake_grants): before the query
    # runs and the table's schema is read (only whether this run committed
    # was asked of the table so far), and again under the fence.
    check_lake_writer(calls.runner_conn, run, target.uri)
    with conn.transaction():
        settings = _settings(calls.runner_conn)
        conn.execute(queries.get("run_context"), run.context())
        progress = Progress(calls.runner_conn, run, worker, settings.progress_interval, _estimate(conn, run))
        deadline = _deadline(run)
        measure = run_metrics.Lake()
        with measure.query(arrow_batches.stream(conn, run.rendered_sql, batch_rows=BATCH_ROWS)) as result:
            commit = write(result.schema, _until(deadline, result.batches), run=str(run.id),
                           attempt=run.attempt, mode=run.mode, create_if_missing=target.create_if_missing,
                           progress=progress.report,
                           before_write=lambda: _fence_held(conn, run, worker, calls, target.uri),
                           before_create=lambda: conn.execute(queries.get("lake_create_lock"), {"uri": target.uri}))
        conn.execute(queries.get("reset_role"))
        faults.exit_now("exit-after-publish")
        try:
            _record_lake(calls, run, worker, target, commit, measure)
        except Exception as exc:
            raise Published(exc) from exc
    return commit.rows_written


def _fence_held(conn: psycopg.Connection, run: claim.ClaimedRun, worker: str, calls: Calls, uri: str) -> None:
    """lock_run as the runner, the owner's right to write ``uri``, then the
    owner's role again for the rest of the read."""
    conn.execute(queries.get("reset_role"))
    calls.lock(run, worker)
    check_lake_writer(calls.runner_conn, run, uri)
    conn.execute(queries.get("run_context"), run.context())


def check_lake_writer(conn: psycopg.Connection, run: claim.ClaimedRun, uri: str) -> None:
    """Refuse (permission_denied: the run fails, not retried) to write the
    lake location ``uri`` for an owner who may no longer (core.lake_grants):
    a grant taken back after submit_job.  Call it, as the runner's role on
    ``conn``, after the fence and before the first byte is written, for
    every lake destination (delta:, lance:)."""
    with conn.cursor(row_factory=rows.dict_row) as cur:
        row = cur.execute(queries.get("lake_write_allowed"), {"owner": run.owner, "uri": uri}).fetchone()
    if not (row and row["ok"]):
        raise lake_grants.refused(run.job, run.owner, uri, when=" (checked by the runner before writing)")


def _record_lake(calls: Calls, run: claim.ClaimedRun, worker: str, target: destinations.Delta | destinations.Lance,
                 commit: Any, measure: run_metrics.Lake | None = None) -> None:
    """The committed version in the ledger: the output ``delta_commit`` or
    ``lance_commit`` (one trigger for both updates jobledger.lake_dataset,
    what submit_job compares with), then the fenced success with the version
    as snapshot_id."""
    record = {"uri": target.uri, "format": target.kind, "version": commit.version, "schema": commit.schema}
    _emit(calls, run, worker, f"{target.kind}_commit", JSON_CONTENT_TYPE, json.dumps(record).encode())
    # No bytes: neither delta-rs nor pylance says what its files take.
    _complete(calls, run, worker, commit.rows_written, str(commit.version),
              measure.figures(commit.rows_written) if measure else None)


def _record_earlier(conn: psycopg.Connection, run: claim.ClaimedRun, worker: str, calls: Calls,
                    record: Callable[[], None]) -> None:
    """A retry whose run an earlier attempt already committed: the fence, then ``record`` only."""
    try:
        with conn.transaction():
            calls.lock(run, worker)
            record()
    except psycopg.Error as exc:
        if errors.category_of_detail(exc.diag.message_detail) == "run_fenced":
            raise  # someone else decided the run: leave it
        raise Published(exc) from exc


def _record_commit(calls: Calls, run: claim.ClaimedRun, worker: str, manifest: dataset_manifest.Manifest,
                   measure: run_metrics.Lake | None = None) -> None:
    """The published version in the ledger: the manifest as an output, then
    the fenced success (with the figures ``measure`` took: a retry that only
    records an earlier attempt's version has none)."""
    _emit(calls, run, worker, "manifest", JSON_CONTENT_TYPE, manifest.to_json().encode())
    added = set(manifest.added)
    figures = measure.figures(manifest.added_rows, sum(f.bytes for f in manifest.files if f.path in added)) \
        if measure else None
    _complete(calls, run, worker, manifest.added_rows, str(manifest.version), figures)


def _retention(target: destinations.Parquet, settings: Settings) -> None:
    try:
        removed = parquet_dataset.remove_unreferenced(target.root, settings.parquet_retention)
    except (OSError, ValueError) as exc:  # the run is recorded: retention is best effort
        log.warning("retention of %s failed: %s", target.root, exc)
        return
    if removed.files or removed.versions:
        log.info("retention of %s: removed versions %s and %d file(s)", target.root,
                 list(removed.versions), len(removed.files))


class Progress:
    """Reports rows_written and progress of a long write, from a connection of its own."""

    def __init__(self, conn: psycopg.Connection, run: claim.ClaimedRun, worker: str, interval: float,
                 estimate: int | None) -> None:
        self.conn = conn
        self.run = run
        self.worker = worker
        self.interval = interval
        self.estimate = estimate
        self.next = time.monotonic() + interval

    def report(self, rows_written: int) -> None:
        now = time.monotonic()
        if now < self.next:
            return
        self.next = now + self.interval
        percent = None
        if self.estimate:
            percent = min(99, rows_written * 100 // self.estimate)
        side = _side_connection(self.conn)
        if side is None:
            return
        try:
            ledger.report_progress(side, ledger.Attempt.of(self.run, self.worker), rows_written, percent)
        except psycopg.Error as exc:  # best effort: the write goes on
            log.warning("run %s: cannot report progress: %s", self.run.id, str(exc).strip())
            _drop_side_connection()


_local = threading.local()


def _side_connection(conn: psycopg.Connection) -> psycopg.Connection | None:
    """This executor thread's second connection (made like its first), for progress reports."""
    side = getattr(_local, "conn", None)
    if side is not None and not side.closed and not side.broken:
        return side
    params = conn.info.get_parameters()
    if conn.info.password:
        params["password"] = conn.info.password
    params["application_name"] = f"jobledger progress {threading.current_thread().name}"[:63]
    try:
        side = psycopg.connect(pg_conninfo.make_conninfo(**params), autocommit=True)
    except psycopg.Error as exc:
        log.warning("cannot open a connection for progress reports: %s", str(exc).strip())
        return None
    _local.conn = side
    return side


def _drop_side_connection() -> None:
    side = getattr(_local, "conn", None)
    if side is not None:
        side.close()
    _local.conn = None


# ---- shared -------------------------------------------------------------------


def _settings(conn: psycopg.Connection) -> Settings:
    with conn.cursor(row_factory=rows.dict_row) as cur:
        row = cur.execute(queries.get("lake_settings")).fetchone()
    assert row is not None
    return Settings(int(row["result_max_bytes"]), row["parquet_retention"],
                    max(0.0, row["progress_interval"].total_seconds()))


def _estimate(conn: psycopg.Connection, run: claim.ClaimedRun) -> int | None:
    """The planner's estimate of the rows the query returns (None if it cannot tell)."""
    statement = sql.SQL(queries.get("explain")).format(query=sql.SQL(run.rendered_sql))
    with conn.cursor() as cur:
        plan = cur.execute(statement).fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    try:
        return max(1, int(plan[0]["Plan"]["Plan Rows"]))
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def _deadline(run: claim.ClaimedRun) -> float | None:
    """statement_timeout bounds each FETCH; this bounds the whole read."""
    return time.monotonic() + run.timeout_ms / 1000 if run.timeout_ms else None


def _until(deadline: float | None, batches: Iterator[pyarrow.RecordBatch]) -> Iterator[pyarrow.RecordBatch]:
    for batch in batches:
        if deadline is not None and time.monotonic() > deadline:
            raise TimedOut()
        yield batch


def _emit(calls: Calls, run: claim.ClaimedRun, worker: str, name: str, content_type: str, data: bytes,
          parents: list[Any] | None = None) -> Any:
    return ledger.emit_output(calls.conn, ledger.Attempt.of(run, worker), name, content_type, data, parents,
                              calls.attached)


def _complete(calls: Calls, run: claim.ClaimedRun, worker: str, rows_written: int,
              snapshot_id: str | None, metrics: dict[str, int | float] | None = None) -> None:
    ledger.complete(calls.conn, ledger.Attempt.of(run, worker), rows_written, snapshot_id, calls.attached,
                    metrics)
