"""The runner's row in jobledger.worker, so ``jobledger.workers`` (and
``jobledger status``) show which runners are alive.

Written on the control connection: ``worker_start`` once connected,
``worker_beat`` with every heartbeat tick (a few times per lease, at most
every 10 s) carrying the runs in flight, and a last ``worker_beat`` with
``stopped`` on a clean exit.  A runner whose role may not call these
functions (a DBA upgrade that forgot the grant), or a database older than
0.4.0, still runs: it says so once and goes on without a row.
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
from typing import TYPE_CHECKING, Callable

import psycopg

import jobledger
from jobledger.runner import ledger

if TYPE_CHECKING:
    from jobledger.runner import process

log = logging.getLogger("jobledger.runner")

class Presence:
    def __init__(self, runner: process.Runner) -> None:
        self.runner = runner
        self.enabled = True
        self.registered = False

    def _call(self, call: Callable[[], object]) -> object:
        """Make one ledger call; None (and presence off) if the database
        refuses it.  Connection errors propagate: the control loop reconnects."""
        if not self.enabled:
            return None
        try:
            return call()
        except psycopg.OperationalError:
            raise
        except (psycopg.errors.InsufficientPrivilege, psycopg.errors.UndefinedFunction) as exc:
            self.enabled = False
            log.warning("not recorded in jobledger.workers: %s (grant EXECUTE on jobledger_internal.worker_start and "
                        "jobledger_internal.worker_beat to the runner's role; they exist from jobledger 0.4.0 on)",
                        (exc.diag.message_primary or str(exc)).strip())
            return None

    def start(self, conn: psycopg.Connection) -> None:
        runner = self.runner
        self._call(lambda: ledger.worker_start(
            conn, runner.worker, hostname=socket.gethostname(), pid=os.getpid(), version=jobledger.__version__,
            concurrency=runner.config.concurrency, lease=datetime.timedelta(seconds=runner.lease)))
        self.registered = self.enabled

    def beat(self, conn: psycopg.Connection, stopped: bool = False) -> None:
        if not self.registered:
            self.start(conn)
        known = self._call(lambda: ledger.worker_beat(
            conn, self.runner.worker, len(self.runner.running_runs()), stopped))
        if known is False and not stopped:  # forgotten meanwhile: register again
            self.start(conn)
