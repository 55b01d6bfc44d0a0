"""The runner's calls into the ledger: one typed function per transition of
a run's state machine (docs/state-machine.md) and per other call the runner
makes on the ledger (heartbeat, reconcile, its presence).

This is the only module of the runner that names those SQL functions (their
statements are blocks of queries.sql and operations.sql); the others call
these.  A fenced call takes the ``Attempt`` it acts for: the run, its
attempt and the worker, which the database checks (the fence) before it
changes anything.  With ``attached`` a call goes through the
``*_attached_*`` form, on the job owner's connection (runner.owners).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import uuid
from typing import Any

import psycopg
from psycopg import rows

from jobledger.runner import claim, queries


@dataclasses.dataclass(frozen=True)
class Attempt:
    """What a fenced call acts for: this attempt of this run, on this worker."""

    run: uuid.UUID
    attempt: int
    worker: str

    @classmethod
    def of(cls, run: claim.ClaimedRun | claim.Unreadable, worker: str) -> Attempt:
        return cls(run.id, run.attempt, worker)

    def params(self, **more: Any) -> dict[str, Any]:
        return {"run": self.run, "attempt": self.attempt, "worker": self.worker, **more}


def _one(conn: psycopg.Connection, statement: str, params: dict[str, Any]) -> Any:
    """The single value ``statement`` returns."""
    with conn.cursor(row_factory=rows.tuple_row) as cur:
        row = cur.execute(statement, params).fetchone()
    assert row is not None
    return row[0]


# ---- claiming -----------------------------------------------------------------


def claim_runs(conn: psycopg.Connection, worker: str, max_runs: int = 1, prefer_job: str | None = None
               ) -> list[claim.ClaimedRun | claim.Unreadable]:
    """claim_runs: pending -> running for up to ``max_runs`` runs, executed on
    ``conn``; with ``prefer_job`` (affinity), that job's next run first at
    equal priority."""
    with conn.cursor() as cur:
        if prefer_job is None:
            cur.execute(queries.get("claim_runs"), {"worker": worker, "max_runs": max_runs})
        else:
            cur.execute(queries.get("claim_runs_affinity"),
                        {"worker": worker, "max_runs": max_runs, "prefer_job": prefer_job})
        assert cur.pgresult is not None
        return claim.load(conn, cur.pgresult)


def claim_runs_pipelined(worker: str, prefer_job: str | None = None) -> tuple[queries.Pipelined, dict[str, Any]]:
    """claim_runs of one run, for a pipeline (runner.wire; read with claim.load)."""
    if prefer_job is None:
        return queries.pipelined("claim_runs"), {"worker": worker, "max_runs": 1}
    return queries.pipelined("claim_runs_affinity"), {"worker": worker, "max_runs": 1, "prefer_job": prefer_job}


def claim_affinity_available(conn: psycopg.Connection) -> bool:
    """Whether the database has claim_runs with affinity (0.6.0) and this role may call it."""
    return bool(_one(conn, queries.get("claim_affinity_available"), {}))


# ---- the fenced transitions of a claimed run ----------------------------------


def _metrics(metrics: dict[str, int | float] | None) -> str | None:
    """The run's metrics as the JSON text complete_run takes (jsonb); None: none."""
    return None if metrics is None else json.dumps(metrics, sort_keys=True)


def complete_pipelined(attempt: Attempt, rows_written: int, attached: bool = False,
                       metrics: dict[str, int | float] | None = None
                       ) -> tuple[queries.Pipelined, dict[str, Any]]:
    """complete_run (running -> succeeded) for a pipeline, in the transaction
    that wrote the destination, with the attempt's ``metrics``
    (runner.metrics); raises run_fenced there if the run is no longer this
    attempt's."""
    return (queries.pipelined("complete_attached_run" if attached else "complete_run"),
            attempt.params(rows_written=rows_written, metrics=_metrics(metrics)))


def complete(conn: psycopg.Connection, attempt: Attempt, rows_written: int, snapshot_id: str | None,
             attached: bool = False, metrics: dict[str, int | float] | None = None) -> None:
    """complete_run with the version published (snapshot_id) and the
    attempt's ``metrics``, in the transaction that records it; raises
    run_fenced if not this attempt's."""
    conn.execute(queries.get("complete_attached_run_snapshot" if attached else "complete_run_snapshot"),
                 attempt.params(rows_written=rows_written, snapshot_id=snapshot_id, metrics=_metrics(metrics)))


def fail(conn: psycopg.Connection, attempt: Attempt, *, error: str, sqlstate: str | None, category: str,
         retry: bool, backoff: float) -> str | None:
    """fail_run: running -> pending after a backoff (retry, attempts left) or
    -> failed.  The new status, or None if the run was no longer this
    attempt's (fenced: nothing changed)."""
    return _one(conn, queries.get("fail_run"), attempt.params(
        error=error, sqlstate=sqlstate, category=category, retry=retry,
        backoff=datetime.timedelta(seconds=backoff)))


def release(conn: psycopg.Connection, attempt: Attempt) -> bool:
    """release_run: running -> pending, the attempt not counted (shutting
    down); False if the run was no longer this attempt's."""
    return bool(_one(conn, queries.get("release_run"), attempt.params()))


def lock(conn: psycopg.Connection, attempt: Attempt, attached: bool = False) -> None:
    """lock_run: the fence, held until the transaction ends (before
    publishing outside the database); raises run_fenced if not this attempt's."""
    conn.execute(queries.get("lock_attached_run" if attached else "lock_run"), attempt.params())


def emit_output(conn: psycopg.Connection, attempt: Attempt, name: str, content_type: str, data: bytes,
                parents: list[uuid.UUID] | None = None, attached: bool = False) -> uuid.UUID:
    """emit_output from the connection executing the run; the output's id."""
    return _one(conn, queries.get("emit_attached_output" if attached else "emit_output"), attempt.params(
        name=name, content_type=content_type, data=data, parents=parents or []))


def report_progress(conn: psycopg.Connection, attempt: Attempt, rows_written: int, progress: int | None) -> bool:
    """report_progress, from a connection other than the run's; whether it applied."""
    return bool(_one(conn, queries.get("report_progress"), attempt.params(
        rows_written=rows_written, progress=progress)))


def attach(conn: psycopg.Connection, attempt: Attempt) -> None:
    """attach_run, on the job owner's connection: it executes the run from now on."""
    conn.execute(queries.get("attach_run"), attempt.params())


# ---- webhooks (runner.webhooks) ------------------------------------------------


@dataclasses.dataclass(frozen=True)
class WebhookDelivery:
    """A due row of jobledger.webhook_delivery, locked by this transaction."""

    id: uuid.UUID
    url: str
    payload: dict[str, Any]
    attempts: int


def claim_webhook_deliveries(conn: psycopg.Connection, hold: float, max_deliveries: int = 1) -> list[WebhookDelivery]:
    """claim_webhook_deliveries: due deliveries, locked until ``conn``'s
    transaction ends (SKIP LOCKED: another runner takes the others), which
    the server ends after ``hold`` seconds idle (a frozen runner's)."""
    with conn.cursor(row_factory=rows.tuple_row) as cur:
        cur.execute(queries.get("webhook_hold"), {"hold_ms": str(int(hold * 1000))})
        found = cur.execute(queries.get("claim_webhook_deliveries"), {"max_deliveries": max_deliveries}).fetchall()
    return [WebhookDelivery(*row) for row in found]


def record_webhook_attempt(conn: psycopg.Connection, delivery: uuid.UUID, http_status: int | None,
                           error: str | None, max_attempts: int) -> str | None:
    """record_webhook_attempt: 'delivered', 'retry' (after a backoff) or
    'abandoned'; None if the delivery was settled already."""
    return _one(conn, queries.get("record_webhook_attempt"), {
        "delivery": delivery, "http_status": http_status, "error": error, "max_attempts": max_attempts})


# ---- the control connection ---------------------------------------------------


def heartbeat(conn: psycopg.Connection, worker: str, runs: list[uuid.UUID]) -> int:
    """heartbeat: this worker's running runs are alive; how many it touched."""
    return int(_one(conn, queries.get("heartbeat"), {"worker": worker, "runs": runs}))


def reconcile(conn: psycopg.Connection, reason: str, lease: datetime.timedelta | None) -> int:
    """reconcile_orphaned: running runs whose backend is gone or whose lease
    expired -> pending or failed; how many."""
    return int(_one(conn, queries.get("reconcile_orphaned"), {"reason": reason, "lease": lease}))


def status(conn: psycopg.Connection, run: uuid.UUID) -> str | None:
    """The run's status now (None: no such run)."""
    row = conn.execute(queries.operation("run_status"), {"run": run}).fetchone()
    return row[0] if row else None


def worker_start(conn: psycopg.Connection, worker: str, *, hostname: str, pid: int, version: str,
                 concurrency: int, lease: datetime.timedelta) -> None:
    """worker_start: the runner process's row in jobledger.worker."""
    conn.execute(queries.operation("worker_start"), {
        "worker": worker, "hostname": hostname, "pid": pid, "version": version, "concurrency": concurrency,
        "lease": lease})


def worker_beat(conn: psycopg.Connection, worker: str, runs_in_flight: int, stopped: bool = False) -> bool:
    """worker_beat: the process's heartbeat (with ``stopped``, its clean exit);
    False if the worker is unknown (call worker_start)."""
    return bool(_one(conn, queries.operation("worker_beat"), {
        "worker": worker, "runs_in_flight": runs_in_flight, "stopped": stopped}))
