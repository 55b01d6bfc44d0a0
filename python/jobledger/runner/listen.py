"""The runner's control connection: LISTEN, heartbeats and reconcile.

One connection per runner process, driven by the main thread:

* ``LISTEN jobledger_runs``: submit_job notifies on commit, and every
  notification wakes the idle executors, so an idle runner picks a new run
  up within milliseconds.  When the connection is lost (a restart, a
  terminated backend) it reconnects, LISTENs again, and only then wakes the
  executors for a claim pass: a run submitted while nobody listened is
  still found.  Executors also poll, should a notification ever be missed.
* heartbeats for the runs this process executes, a few times per lease, so
  reconcile_orphaned's lease never takes a run that is alive;
* ``reconcile_orphaned`` at start-up and every few seconds (jittered, so
  runners started together spread out): runs whose backend died (a kill -9'd
  runner) or whose heartbeat is older than the lease go back to pending.
"""

from __future__ import annotations

import datetime
import logging
import random
import time
from typing import TYPE_CHECKING

import psycopg

from jobledger.runner import ledger, queries

if TYPE_CHECKING:
    from jobledger.runner import process

log = logging.getLogger("jobledger.runner")

RECONCILE_EVERY = 3.0  # seconds, jittered by +-50%
RECONNECT_DELAYS = (0.1, 0.5, 1.0, 2.0, 5.0)


class Control:
    """Owns the control connection; ``serve`` runs until the runner is done."""

    def __init__(self, runner: process.Runner) -> None:
        self.runner = runner
        self.conn: psycopg.Connection | None = None
        self.failures = 0
        self.next_heartbeat = 0.0
        self.next_reconcile = 0.0

    def start(self) -> None:
        """Connect, LISTEN, and reconcile once before any executor claims:
        the runs a crashed runner left behind go first."""
        self._connect()
        self.runner.presence.start(self.conn)
        self._reconcile()
        self.next_reconcile = time.monotonic() + RECONCILE_EVERY * random.uniform(0.5, 1.5)

    def serve(self) -> None:
        runner = self.runner
        while True:
            runner.supervise()  # before asking: all executors may have just died
            if runner.finished():
                break
            runner.check_grace()
            try:
                if self.conn is None:
                    self._connect()
                now = time.monotonic()
                if now >= self.next_heartbeat:
                    self._heartbeat()
                    self.runner.presence.beat(self.conn)
                    self.next_heartbeat = now + runner.heartbeat_every
                if now >= self.next_reconcile:
                    self._reconcile()
                    self.next_reconcile = now + RECONCILE_EVERY * random.uniform(0.5, 1.5)
                wait = min(self.next_heartbeat, self.next_reconcile) - time.monotonic()
                # Short waits: a signal or the executors finishing is noticed quickly.
                for _ in self.conn.notifies(timeout=max(0.0, min(wait, 0.2))):
                    runner.wakeups.wake()
                self.failures = 0
            except psycopg.OperationalError as exc:
                self._lost(exc)

    def farewell(self) -> None:
        """The runner's exit, clean or failed: jobledger.workers shows it
        stopped, not lost (if it was ever recorded there)."""
        if not self.runner.presence.registered:
            return
        try:
            if self.conn is None:
                self._connect()
            assert self.conn is not None
            self.runner.presence.beat(self.conn, stopped=True)
        except psycopg.Error as exc:
            log.warning("could not record the runner's exit: %s", str(exc).strip())

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _connect(self) -> None:
        runner = self.runner
        self.conn = runner.connect(f"jobledger listen {runner.worker}")
        self.conn.execute(queries.get("listen"))
        log.debug("control connection up (backend %s), listening", self.conn.info.backend_pid)
        # After LISTEN, not before: whatever was submitted meanwhile is claimed now.
        runner.wakeups.wake()

    def _lost(self, exc: psycopg.OperationalError) -> None:
        log.warning("control connection lost (%s); reconnecting", str(exc).strip() or type(exc).__name__)
        self.close()
        delay = RECONNECT_DELAYS[min(self.failures, len(RECONNECT_DELAYS) - 1)]
        self.failures += 1
        self.runner.sleep(delay)

    def _heartbeat(self) -> None:
        running = self.runner.running_runs()
        if not running or self.conn is None:
            return
        ledger.heartbeat(self.conn, self.runner.worker, running)

    def _reconcile(self) -> None:
        assert self.conn is not None
        changed = ledger.reconcile(
            self.conn, "runner lost",
            datetime.timedelta(seconds=self.runner.lease) if self.runner.config.lease else None)
        if changed:
            log.info("reconcile_orphaned: %d orphaned run(s) recovered", changed)
            self.runner.wakeups.wake()
