"""Claiming runs: what jobledger.claim_runs hands a runner.

Each executor connection claims for itself.  claim_runs records
``pg_backend_pid()`` of the connection calling it, so the backend the ledger
names is, by construction, the one that executes the run: reconcile_orphaned
sees it die, cancel_run signals exactly it, and nothing has to trust pids a
dispatcher passes along.  An executor claims one run at a time, so a run is
``running`` only while it really executes (honest ``started_at``, heartbeats
and pickup latency); a claim costs one short statement, which the executor
sends in the same round trip as the previous run's commit.
"""

from __future__ import annotations

import dataclasses
import datetime
import uuid
from typing import Any

import psycopg
from psycopg import rows

from jobledger.runner import queries


@dataclasses.dataclass(frozen=True)
class ClaimedRun:
    """A run this runner now executes: one row of claim_runs."""

    id: uuid.UUID
    job: str
    job_version: int
    attempt: int
    max_attempts: int
    rendered_sql: str
    parameters: Any
    mode: str
    owner: str
    timeout_ms: int | None
    destination: str
    destination_schema: str | None
    destination_table: str | None
    primary_key: tuple[str, ...] | None
    created_at: datetime.datetime
    started_at: datetime.datetime

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ClaimedRun:
        key = row["primary_key"]
        return cls(**{**row, "primary_key": tuple(key) if key is not None else None})

    @property
    def application_name(self) -> str:
        """What the executing backend shows in pg_stat_activity during the run.

        cancel_run and reconcile_orphaned match on it before signalling a
        backend, so it must stay exactly ``jobledger run <uuid>``."""
        return f"jobledger run {self.id}"


def claim(conn: psycopg.Connection, worker: str, max_runs: int = 1) -> list[ClaimedRun]:
    """Claim up to ``max_runs`` runnable runs for execution on ``conn``."""
    with conn.cursor(row_factory=rows.dict_row) as cur:
        cur.execute(queries.get("claim_runs"), {"worker": worker, "max_runs": max_runs})
        return [ClaimedRun.from_row(row) for row in cur.fetchall()]
