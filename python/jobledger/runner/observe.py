"""What a runner tells the outside: Prometheus metrics and structured logs.

One ``Observer`` per runner process.  The executors call ``claimed`` and
``finished`` on their hot path; each costs a few counter increments and a
histogram observation (per-job children are cached, so not even a label
lookup), plus one log call only when event logging is on.  Everything else
is computed when Prometheus scrapes: the queue depth is one query, made on
the metrics server's own connection at scrape time, never by an executor.

Metrics live in a registry of their own (not prometheus_client's global
one), so a process holds exactly its runner's metrics and tests can run
several runners in one interpreter.

Logs: one line per event (claimed, succeeded, failed, retried, cancelled,
released, lost, pruned) with the run id and job as fields; ``text`` appends
them as ``key=value``, ``json`` writes one JSON object per line.
"""

from __future__ import annotations

import datetime
import json
import logging
import threading
from typing import TYPE_CHECKING, Any, Iterable

import prometheus_client
import psycopg
from prometheus_client import core, exposition, registry as prom_registry

import jobledger
from jobledger.runner import claim
from jobledger.runner.outcome import Outcome

if TYPE_CHECKING:
    from jobledger.runner import process

log = logging.getLogger("jobledger.runner")
events = logging.getLogger("jobledger.runner.events")

# Seconds.  Runs range from a millisecond (a one-row append) to hours.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300,
                    600, 1800, 3600, float("inf"))
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300,
                   float("inf"))

# Outcome (what the executor saw) -> the counter it increments.
_COUNTED = {
    Outcome.SUCCEEDED: "succeeded",
    Outcome.FAILED: "failed",
    Outcome.RETRY: "retried",
    Outcome.RELEASED: "released",
}


class _JobMetrics:
    """The label children of one job, resolved once."""

    __slots__ = ("claimed", "succeeded", "failed", "retried", "cancelled", "released", "lost",
                 "duration_ok", "duration_failed", "pickup")

    def __init__(self, metrics: Metrics, job: str) -> None:
        for name in ("claimed", "succeeded", "failed", "retried", "cancelled", "released", "lost"):
            setattr(self, name, getattr(metrics, name).labels(job))
        self.duration_ok = metrics.duration.labels(job, "succeeded")
        self.duration_failed = metrics.duration.labels(job, "failed")
        self.pickup = metrics.pickup.labels(job)


class Metrics:
    """The runner's Prometheus metrics, in a registry of their own."""

    def __init__(self, worker: str) -> None:
        self.registry = prom_registry.CollectorRegistry(auto_describe=True)
        r = self.registry

        def counter(name: str, doc: str) -> prometheus_client.Counter:
            return prometheus_client.Counter(name, doc, ["job"], registry=r)

        self.claimed = counter("jobledger_runs_claimed", "Runs this runner claimed (each attempt counts).")
        self.succeeded = counter("jobledger_runs_succeeded", "Runs this runner completed successfully.")
        self.failed = counter("jobledger_runs_failed", "Runs that failed for good on this runner.")
        self.retried = counter("jobledger_runs_retried",
                               "Attempts that failed on this runner and went back to pending for a retry.")
        self.cancelled = counter("jobledger_runs_cancelled", "Runs cancelled (cancel_run) while this runner executed them.")
        self.released = counter("jobledger_runs_released",
                                "Runs this runner gave back to pending when shutting down (attempt not counted).")
        self.lost = counter("jobledger_runs_lost",
                            "Attempts this runner lost to another (lease expired, connection lost); the run went on elsewhere.")
        self.duration = prometheus_client.Histogram(
            "jobledger_run_duration_seconds", "Execution time of an attempt, claim to commit, by outcome.",
            ["job", "outcome"], buckets=DURATION_BUCKETS, registry=r)
        self.pickup = prometheus_client.Histogram(
            "jobledger_run_pickup_latency_seconds",
            "Submission to start of a run's first attempt (created_at to started_at, the server's clock).",
            ["job"], buckets=LATENCY_BUCKETS, registry=r)
        self.in_flight = prometheus_client.Gauge("jobledger_runs_in_flight", "Runs this runner is executing now.",
                                                 registry=r)
        self.up = prometheus_client.Gauge("jobledger_runner_up", "1 while this runner runs.",
                                          ["worker", "version"], registry=r)
        self.up.labels(worker, jobledger.__version__).set(1)
        self._jobs: dict[str, _JobMetrics] = {}

    def job(self, job: str) -> _JobMetrics:
        found = self._jobs.get(job)
        if found is None:
            found = self._jobs[job] = _JobMetrics(self, job)  # a race makes the same children twice
        return found


class QueueDepth(prom_registry.Collector):
    """``jobledger_queue_depth{job}`` at scrape time, on a connection of its own.

    Counts the pending runs ready to run now, by job (every job this runner's
    role may see, zeros included, so a drained queue reads 0 rather than
    vanishing), and ``jobledger_queue_scheduled{job}`` for those waiting for
    their run_after.  A failed query leaves the metrics out of that scrape
    (and says why in the log) rather than failing the scrape."""

    def __init__(self, runner: process.Runner, sql: str) -> None:
        self.runner = runner
        self.sql = sql
        self._conn: psycopg.Connection | None = None
        self._lock = threading.Lock()

    def describe(self) -> Iterable[core.Metric]:
        return []  # nothing to query at registration

    def collect(self) -> Iterable[core.Metric]:
        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = self.runner.connect(f"jobledger metrics {self.runner.worker}")
                rows = self._conn.execute(self.sql).fetchall()
            except psycopg.Error as exc:
                log.warning("metrics: cannot read the queue depth: %s", str(exc).strip())
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
                return []
        ready = core.GaugeMetricFamily("jobledger_queue_depth", "Pending runs ready to run now, by job.",
                                       labels=["job"])
        later = core.GaugeMetricFamily("jobledger_queue_scheduled",
                                       "Pending runs waiting for their run_after (retry backoff, delayed submission).",
                                       labels=["job"])
        for job, ready_now, scheduled in rows:
            ready.add_metric([job], ready_now)
            later.add_metric([job], scheduled)
        return [ready, later]

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class Observer:
    """Metrics and event logs of one runner process."""

    def __init__(self, worker: str) -> None:
        self.worker = worker
        self.metrics = Metrics(worker)
        self._server: Any = None
        self._queue: QueueDepth | None = None
        # Checked once: the hot path must not even build the fields when off.
        # "claimed" is a debug event: at info, one line per run (its outcome).
        self.events_on = events.isEnabledFor(logging.INFO)
        self.claims_on = events.isEnabledFor(logging.DEBUG)

    # ---- the executors' hot path ----------------------------------------

    def claimed(self, runs: list[claim.ClaimedRun | claim.Unreadable]) -> None:
        for run in runs:
            m = self.metrics.job(run.job)
            m.claimed.inc()
            if run.attempt == 1 and isinstance(run, claim.ClaimedRun):
                m.pickup.observe(max(0.0, (run.started_at - run.created_at).total_seconds()))
            if self.claims_on:
                self.event("claimed", run, level=logging.DEBUG, attempt=run.attempt)

    def finished(self, run: claim.ClaimedRun | claim.Unreadable, outcome: Outcome, rows_written: int | None,
                 seconds: float, fenced_status: str | None = None) -> None:
        """``fenced_status``: for a FENCED outcome, what the run is now
        (cancelled: cancel_run stopped it; anything else: it was lost)."""
        m = self.metrics.job(run.job)
        if outcome is Outcome.FENCED:
            name = "cancelled" if fenced_status == "cancelled" else "lost"
        else:
            name = _COUNTED[outcome]
        getattr(m, name).inc()
        if outcome is Outcome.SUCCEEDED:
            m.duration_ok.observe(seconds)
        elif outcome in (Outcome.FAILED, Outcome.RETRY):
            m.duration_failed.observe(seconds)
        if self.events_on:
            fields: dict[str, Any] = {"attempt": run.attempt, "duration_ms": round(seconds * 1000, 2)}
            if rows_written is not None:
                fields["rows_written"] = rows_written
            self.event(name, run, **fields)

    def event(self, name: str, run: claim.ClaimedRun | claim.Unreadable | None = None, level: int = logging.INFO,
              **fields: Any) -> None:
        """One log line for one event, with its fields."""
        if run is not None:
            fields = {"run": str(run.id), "job": run.job, **fields}
        events.log(level, "%s", name, extra={"event": name, "fields": fields})

    # ---- the metrics endpoint -----------------------------------------

    def serve(self, runner: process.Runner, port: int, address: str, queue_sql: str) -> int:
        """Serve /metrics on ``address:port`` (0: any free port); the port."""
        self._queue = QueueDepth(runner, queue_sql)
        self.metrics.registry.register(self._queue)
        self.metrics.in_flight.set_function(lambda: len(runner.running_runs()))
        self._server, _thread = exposition.start_http_server(port, address, registry=self.metrics.registry)
        return self._server.server_port

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._queue is not None:
            self._queue.close()


# ---- log formats -----------------------------------------------------------

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class TextFormatter(logging.Formatter):
    """The usual one-line format, with an event's fields as ``key=value``."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, "fields", None)
        if fields:
            head, sep, tail = line.partition("\n")  # a traceback stays below
            line = head + "".join(f" {key}={_text(value)}" for key, value in fields.items()) + sep + tail
        return line


def _text(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if (not text or any(c.isspace() or c in '"=' for c in text)) else text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, then the
    event and its fields when the line is an event."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
                    .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        event = getattr(record, "event", None)
        if event is not None:
            out["event"] = event
        out["message"] = record.getMessage()
        out.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure_logging(level: str, fmt: str) -> None:
    """The runner's logging: ``fmt`` is ``text`` or ``json``, to stderr."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
