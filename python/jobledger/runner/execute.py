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
   raises if the run is no longer this attempt's; it records the run's metrics: rows and the time of step 1,
   runner.run_metrics); the executor's next
   claim (so one commit serves both); ``COMMIT``; ``session.RESET`` (nothing
   the job left in the session outlives its run).

Either everything commits, or nothing: a failure anywhere rolls the write
back, the session is reset, and the attempt is then recorded by
``fail_run`` (fenced too) on the same connection, or on a new one if the
connection was lost.

Destinations outside the database (``result``, ``parquet:``, ``delta:``,
``lance:``) are executed by ``runner.lake``.

With ``--connect-as-owner`` (runner.owners) ``conn`` is a connection logged
in as the job's owner, attached to the run (``attach_run``), and
``runner_conn`` the executor's own: the transaction above is the same, but
completes with ``complete_attached_run`` on ``conn`` (so write and flip
still commit together) and claims nothing; failures, releases and claims go
on ``runner_conn``.

The ledger calls go through runner.ledger; what became of the attempt, and
recording a failure, is runner.outcome's.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import psycopg
from psycopg import sql

from jobledger.core import destinations
from jobledger.core.search_path import TEMPLATE_SEARCH_PATH
from jobledger.runner import claim, ledger, outcome, queries, run_metrics, session, wire

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
          claim_next: bool = False, attached: bool = False, prefer_job: str | None = None
          ) -> tuple[int, list[claim.ClaimedRun | claim.Unreadable] | None]:
    """Run the pipelined transaction: the rows written, and the next runs if
    ``claim_next``.  Raises on any failure, after which nothing of it is
    left: the transaction is rolled back, the claim never made, the session
    reset (or the connection closed).  ``attached``: ``conn`` is the owner's
    (runner.owners), which completes with complete_attached_run and never
    claims.  ``prefer_job``: the claim's affinity (ledger.claim_runs)."""
    assert not (attached and claim_next), "an owner's connection claims nothing"
    try:
        with wire.Pipeline(conn) as pipeline:
            began = time.monotonic()  # the write's round trip: its statement_ms (runner.run_metrics)
            pipeline.send(b"BEGIN")
            pipeline.send(queries.pipelined("run_context"), run.context())
            for step in steps:
                pipeline.send(step.as_bytes(conn))
            rows_written = wire.rows_affected(pipeline.sync()[-1])
            figures = run_metrics.table(rows_written, time.monotonic() - began)
            pipeline.send(queries.pipelined("reset_role"), {})
            pipeline.send(*ledger.complete_pipelined(ledger.Attempt.of(run, worker), rows_written, attached,
                                                     figures))
            if claim_next:  # in the same transaction: one commit for both
                pipeline.send(*ledger.claim_runs_pipelined(worker, prefer_job))
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
            runner_conn: psycopg.Connection | None = None, prefer_job: str | None = None) -> outcome.Result:
    """Execute ``run`` on ``conn`` (the connection that claimed it), claiming
    the next run after a success if ``claim_next`` (preferring ``prefer_job``'s
    at equal priority: affinity).  Raises ConnectionLost
    if ``conn`` died.  With ``runner_conn`` (runner.owners), ``conn`` is the
    owner's connection attached to the run, and the other ledger calls go on
    ``runner_conn``; a lost ``conn`` is then recorded there."""
    if destinations.outside_database(run.destination):
        # result and parquet: (runner.lake; imported on first use: pyarrow).
        from jobledger.runner import lake

        return lake.execute(conn, run, worker, backoff=backoff, releasing=releasing, runner_conn=runner_conn)
    if run.destination_table is None:
        failure = outcome.Failure(f'the destination table {run.destination} of job "{run.job}" no longer exists',
                                  "42P01", "destination_missing", retry=False)
        return outcome.Result(outcome.record(runner_conn or conn, run, worker, failure, backoff))
    started = time.monotonic()
    try:
        steps = statements(run, columns.get(conn, run))
        started = time.monotonic()
        rows_written, claimed = write(conn, run, worker, steps, claim_next and runner_conn is None,
                                      attached=runner_conn is not None, prefer_job=prefer_job)
    except psycopg.Error as exc:
        return outcome.database_error(conn, run, worker, exc, (time.monotonic() - started) * 1000, backoff,
                                      releasing, runner_conn=runner_conn)
    return outcome.Result(outcome.Outcome.SUCCEEDED, rows_written, claimed)


