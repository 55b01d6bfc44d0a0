"""Claimed runs: what jobledger_internal.claim_runs hands a runner (the
call itself is runner.ledger.claim_runs).

Each executor connection claims for itself.  claim_runs records
``pg_backend_pid()`` of the connection calling it, so the backend the ledger
names is, by construction, the one that executes the run: reconcile_orphaned
sees it die, cancel_run signals exactly it, and nothing has to trust pids a
dispatcher passes along.  An executor claims one run at a time, so a run is
``running`` only while it really executes (honest ``started_at``, heartbeats
and pickup latency); a claim costs one short statement, which the executor
sends in the same round trip as the previous run's commit.

The runner decodes only what it needs, and no row it cannot read stops it: a
run's parameters are never decoded (a jsonb number may have more digits than
Python will read: ``{"n": 1e5000}``); the claim brings the JSON type of each
value instead, which is all OutputColumns needs.  A claimed row that still
cannot be loaded becomes an ``Unreadable`` entry (its id, job and attempt,
read as plain text), which the executor fails at once (``runner_error``).
"""

from __future__ import annotations

import dataclasses
import datetime
import uuid
from typing import Any

import psycopg
from psycopg import adapt, pq

from jobledger.core.search_path import TEMPLATE_SEARCH_PATH


@dataclasses.dataclass(frozen=True)
class ClaimedRun:
    """A run this runner now executes: one row of claim_runs."""

    id: uuid.UUID
    job: str
    job_version: int
    attempt: int
    max_attempts: int
    rendered_sql: str
    # "name:jsontype,..." of the run's parameters (jsonb_typeof), never their values.
    parameter_shape: str | None
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

    def context(self) -> dict[str, Any]:
        """The parameters of run_context (queries.sql), which starts the run's
        transaction, whoever executes it (runner.execute, runner.lake)."""
        return {
            "owner": self.owner,
            "timeout_ms": str(self.timeout_ms or 0),
            "search_path": TEMPLATE_SEARCH_PATH,
            "run": self.id,
        }


@dataclasses.dataclass(frozen=True)
class Unreadable:
    """A claimed run whose row the runner could not load: to be failed at once."""

    id: uuid.UUID
    job: str
    attempt: int
    error: str


def load(conn: psycopg.Connection, result: pq.abc.PGresult) -> list[ClaimedRun | Unreadable]:
    """The rows of a claim_runs result (text format), each loaded on its own."""
    encoding = conn.info.encoding
    names = [(result.fname(i) or b"").decode(encoding) for i in range(result.nfields)]
    transformer = adapt.Transformer(conn)
    transformer.set_pgresult(result)
    found: list[ClaimedRun | Unreadable] = []
    for index in range(result.ntuples):
        try:
            found.append(ClaimedRun.from_row(dict(zip(names, transformer.load_row(index, tuple) or ()))))
        except Exception as exc:  # noqa: BLE001 - whatever the loaders raise, the run is failed, not the runner
            raw = {name: result.get_value(index, i) for i, name in enumerate(names)}
            found.append(Unreadable(
                uuid.UUID((raw["id"] or b"").decode()), (raw["job"] or b"").decode(encoding, "replace"),
                int(raw["attempt"] or b"0"), f"the runner cannot read this run's row: {exc}"))
    return found
