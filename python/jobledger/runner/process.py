"""One runner process: executor threads, the control loop, signals, drain.

Threads, not asyncio: each executor spends its time waiting on its own
connection (psycopg releases the GIL there), and a blocking executor is easy
to interrupt (a cancel request on its connection).  ``--concurrency N`` is N
executor threads with one connection each; the main thread drives the
control connection (listen.Control).  Any number of such processes, on any
number of machines, share one database: claim_runs' SKIP LOCKED splits the
work and the fenced transitions keep every run's outcome single.

Operations: ``observe`` counts every claim and outcome (Prometheus metrics
on ``--metrics-port``) and logs one line per event; ``presence`` keeps this
process's row in jobledger.worker; a ``Pruner`` thread applies the retention
rules every ``--prune-every`` on a connection of its own.

Owners: with ``connect_as_owner`` (``--connect-as-owner``) each run executes
on a connection authenticated as its job's owner, from a small pool per
owner (runner.owners); the executor's own connection claims and records.
Otherwise (``--set-role``, and for now the default) it executes on the
executor's connection under ``SET LOCAL ROLE``, which a job can undo.

Shutdown (SIGTERM/SIGINT): stop claiming; runs in flight get ``grace``
seconds to finish; then their queries are cancelled and the runs released
back to pending (the interrupted attempt does not count).  A second signal
ends the grace period at once.

Failures: an error while handling one run ends that run (failed for good,
category ``runner_error``) and the executor goes on with the next.  An
executor that dies anyway is restarted by the control loop, up to
``MAX_RESTARTS`` times within ``RESTART_WINDOW`` seconds; past that, or when
the control loop itself fails, the runner cannot go on: it stops, records
itself stopped in jobledger.workers, and ``run()`` returns ``EXIT_FAILED``.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import random
import os
import signal
import socket
import threading
import time
import uuid
from typing import Any

import psycopg
from psycopg import conninfo as pg_conninfo

import jobledger
from jobledger.runner import (claim, execute, faults, ledger, listen, observe, outcome, owners, pooling, presence,
                              queries, session, webhooks)

log = logging.getLogger("jobledger.runner")

REQUIRED_EXTENSION = (0, 3, 0)

EXIT_FAILED = 1  # the runner could not go on (see the module's notes)
MAX_RESTARTS = 5  # executor deaths tolerated within RESTART_WINDOW seconds
# Affinity: after this many runs of one job in a row, an executor claims in
# queue order until it runs another job, so that older runs of the same
# priority wait at most that long for it (docs/runner.md, "Affinity").
AFFINITY_STREAK = 100
RESTART_WINDOW = 60.0


class StartupError(Exception):
    """The runner cannot start here (no server, no extension, too old)."""

    def __init__(self, message: str, category: str = "not_installed") -> None:
        super().__init__(message)
        self.category = category


@dataclasses.dataclass(frozen=True)
class Config:
    """What ``jobledger runner`` was told (see the CLI for each option)."""

    conninfo: str = ""
    concurrency: int = 2
    drain: bool = False
    worker: str | None = None
    poll_interval: float = 1.0
    lease: float | None = None  # seconds; None: the database's jobledger.lease, else 1 minute
    grace: float = 30.0
    retry_backoff: float = 1.0
    check_interval: str = "1s"
    metrics_port: int = 0  # 0: no metrics endpoint
    metrics_address: str = "0.0.0.0"  # every interface
    prune_every: float | None = None  # seconds; None: the runner does not prune
    prune_succeeded: datetime.timedelta | None = None
    prune_failed: datetime.timedelta | None = None
    prune_keep_last: int | None = None
    # Execute each run on a connection logged in as its job's owner (runner.owners).
    connect_as_owner: bool = False
    # Deliver job webhooks (runner.webhooks) on a thread of their own.
    webhooks: bool = True
    webhook_timeout: float = 10.0  # seconds per POST
    webhook_max_attempts: int = 10  # then the delivery is abandoned
    # Affinity: an executor claims the job it just ran first at equal priority.
    affinity: bool = True


def default_worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Wakeups:
    """"There may be work": NOTIFYs and reconciles wake the idle executors.

    A generation counter rather than an Event: an executor remembers the
    generation before it claims, so a wake-up that arrives during its claim
    is not lost."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.generation = 0

    def wake(self) -> None:
        with self._cond:
            self.generation += 1
            self._cond.notify_all()

    def wait(self, seen: int, timeout: float) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self.generation != seen, timeout)


class Executor(threading.Thread):
    """Claims a run on its own connection, executes it, and again."""

    def __init__(self, runner: Runner, index: int) -> None:
        super().__init__(name=f"executor-{index}", daemon=True)
        self.runner = runner
        self.index = index
        self.conn: psycopg.Connection | None = None
        self.current: claim.ClaimedRun | None = None
        # The owner's connection the current run executes on (connect_as_owner).
        self.running_on: psycopg.Connection | None = None
        # The job this executor ran last: its claims prefer that job's next
        # run at equal priority (Runner.affinity; docs/runner.md, "Affinity").
        self.last_job: str | None = None
        self.streak = 0  # runs of last_job in a row
        self.crashed = False
        self._lock = threading.Lock()

    def run(self) -> None:
        try:
            faults.crash_executor()
            self._loop()
        except Exception:
            self.crashed = True
            log.exception("executor %d stopped on an unexpected error", self.index)
        finally:
            if self.conn is not None:
                self.conn.close()
            self.runner.wakeups.wake()  # the control loop may be waiting for us

    def cancel_current(self) -> None:
        """Cancel the running query (grace period over); the run is released."""
        with self._lock:
            target = self.running_on or self.conn
            if self.current is not None and target is not None:
                log.info("cancelling run %s to release it", self.current.id)
                target.cancel_safe(timeout=5.0)

    def _using(self, conn: psycopg.Connection | None) -> None:
        with self._lock:
            self.running_on = conn

    def _connect(self) -> bool:
        runner = self.runner
        for delay in listen.RECONNECT_DELAYS:
            if runner.stopping.is_set() and self.current is None:
                return False
            try:
                self.conn = runner.connect(f"jobledger exec {runner.worker}", executor=True)
                return True
            except psycopg.OperationalError as exc:
                log.warning("executor %d cannot connect: %s", self.index, str(exc).strip())
                self.conn = None
                runner.sleep(delay)
        return False

    def _loop(self) -> None:
        runner = self.runner
        queue: list[claim.ClaimedRun | claim.Unreadable] = []
        # The wake-up generation before the last claim that found nothing.
        seen: int | None = None
        while True:
            if runner.stopping.is_set():
                self._give_back(queue)
                return
            if seen is not None:
                if runner.config.drain:
                    return
                runner.wakeups.wait(seen, runner.config.poll_interval)
                seen = None
                continue
            if self.conn is None and not self._connect():
                continue
            assert self.conn is not None
            if not queue:
                generation = runner.wakeups.generation
                try:
                    queue = ledger.claim_runs(self.conn, runner.worker, prefer_job=self._prefer())
                    if queue:
                        runner.observer.claimed(queue)
                except psycopg.OperationalError as exc:
                    log.warning("executor %d lost its connection: %s", self.index, str(exc).strip())
                    self.conn.close()
                    self.conn = None
                    continue
                if not queue:
                    seen = generation
                continue
            run = queue.pop(0)
            if isinstance(run, claim.Unreadable):
                failure = outcome.Failure(run.error, None, "runner_error", retry=False)
                runner.observer.finished(run, self._record(run, failure), None, 0.0)
                continue
            generation = runner.wakeups.generation
            claimed = self._execute(run, claim_next=not queue)
            if claimed is not None:
                if claimed:
                    runner.observer.claimed(claimed)
                queue.extend(claimed)
                if not claimed:
                    seen = generation

    def _prefer(self) -> str | None:
        """The job the next claim prefers (None: claim in queue order)."""
        if not self.runner.affinity or self.streak >= AFFINITY_STREAK:
            return None
        return self.last_job

    def _give_back(self, queue: list[claim.ClaimedRun | claim.Unreadable]) -> None:
        """Claimed as the stop came, never started: release them untouched."""
        for run in queue:
            if self.conn is None:
                break  # reconcile_orphaned will (the backend that claimed it is gone)
            try:
                outcome.release(self.conn, run, self.runner.worker)
            except psycopg.OperationalError:
                break

    def _execute(self, run: claim.ClaimedRun, claim_next: bool
                 ) -> list[claim.ClaimedRun | claim.Unreadable] | None:
        """Execute ``run``; the runs claimed after it (None: no claim made).
        Whatever goes wrong ends this run, not the executor."""
        runner = self.runner
        claim_next = claim_next and not runner.stopping.is_set()
        with self._lock:
            self.current = run
        self.streak = self.streak + 1 if run.job == self.last_job else 1
        self.last_job = run.job
        started = time.monotonic()
        try:
            try:
                assert self.conn is not None
                if runner.pools is not None:
                    result = owners.execute_run(
                        self.conn, runner.pools, run, runner.worker, columns=runner.columns,
                        backoff=runner.config.retry_backoff, releasing=runner.releasing.is_set, using=self._using)
                else:
                    result = execute.execute(
                        self.conn, run, runner.worker, columns=runner.columns,
                        backoff=runner.config.retry_backoff, releasing=runner.releasing.is_set,
                        claim_next=claim_next, prefer_job=self._prefer())
            except pooling.TransactionPooling as exc:
                # An owner's pool (--connect-as-owner): the run went back to
                # pending; the runner cannot go on as configured.
                runner.fail(str(exc))
                result = outcome.Result(outcome.Outcome.RELEASED)
            except outcome.ConnectionLost as lost:
                log.warning("run %s: lost the connection (%s)", run.id, lost.failure.error)
                assert self.conn is not None
                self.conn.close()
                self.conn = None
                result = outcome.Result(self._record(run, lost.failure, release_if_stopping=True))
            except Exception as exc:  # noqa: BLE001 - a bug, a value the runner cannot handle: this run only
                log.exception("run %s (job %s): unexpected error", run.id, run.job)
                result = outcome.Result(self._record(run, outcome.unexpected(exc)))
        finally:
            with self._lock:
                self.current = None
        seconds = time.monotonic() - started
        fenced_status = self._status_now(run) if result.outcome is outcome.Outcome.FENCED else None
        runner.observer.finished(run, result.outcome, result.rows_written, seconds, fenced_status)
        return result.claimed

    def _status_now(self, run: claim.ClaimedRun) -> str | None:
        """The status of a run this executor lost (rare: cancelled or taken over)."""
        if self.conn is None:
            return None
        try:
            return ledger.status(self.conn, run.id)
        except psycopg.Error:
            return None

    def _record(self, run: claim.ClaimedRun | claim.Unreadable, failure: outcome.Failure,
                release_if_stopping: bool = False) -> outcome.Outcome:
        """Record a failed attempt that execute.execute did not: on this
        executor's connection, reset first, or on a new one if it was lost
        (then, shutting down, ``release_if_stopping`` releases the run
        instead).  If that fails too, the connection is closed: its backend
        gone, reconcile_orphaned recovers the run."""
        if self.conn is not None:
            session.reset(self.conn)
            if self.conn.closed:
                self.conn = None
        if self.conn is None and (not self._connect() or self.conn is None):
            return outcome.Outcome.FENCED
        try:
            if release_if_stopping and self.runner.releasing.is_set():
                return outcome.release(self.conn, run, self.runner.worker)
            return outcome.record(self.conn, run, self.runner.worker, failure, self.runner.config.retry_backoff)
        except psycopg.Error as exc:
            log.warning("run %s: cannot record its failure (%s); reconcile_orphaned will", run.id, str(exc).strip())
            self.conn.close()
            self.conn = None
            return outcome.Outcome.FENCED


def _pin(conn: psycopg.Connection, extra: tuple[tuple[str, str], ...]) -> None:
    """session.pin, closing ``conn`` if that fails."""
    try:
        session.pin(conn, extra)
    except BaseException:
        conn.close()
        raise


class Runner:
    """A runner process: ``run()`` returns when drained or shut down."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.worker = config.worker or default_worker()
        self.wakeups = Wakeups()
        self.stopping = threading.Event()
        self.releasing = threading.Event()
        self.columns = execute.OutputColumns()
        self.executors: list[Executor] = []
        self.lease = config.lease or 60.0
        # config.affinity, if the database has it (check_server).
        self.affinity = False
        self.heartbeat_every = 10.0
        self._grace_deadline: float | None = None
        self.observer = observe.Observer(self.worker)
        self.presence = presence.Presence(self)
        self.failed: str | None = None  # why the runner could not go on
        self._restarts: list[float] = []  # when executors were restarted
        self.pools = owners.Pools(self.connect_owner, self.probe_owner) if config.connect_as_owner else None

    # ---- connections ----------------------------------------------------

    def connect(self, application_name: str, executor: bool = False, pin: bool = True) -> psycopg.Connection:
        """A connection with the standard libpq settings (PG*, --dsn, DATABASE_URL)
        and the settings the runner pins (runner.session).

        An executor's connection also stops the query of a client that died
        within ``check_interval`` (otherwise a kill -9'd runner's query runs
        on to its end), and never prepares statements (session.RESET would
        drop them under psycopg's feet).  ``pin``: make sure the pinned
        settings are in effect (session.pin; not on the pooling probe's
        connections, which must leave no session state behind)."""
        extra = (("client_connection_check_interval", self.config.check_interval),) if executor else ()
        conn = psycopg.connect(self.config.conninfo, autocommit=True, application_name=application_name[:63],
                               prepare_threshold=None if executor else 5,
                               **session.connect_kwargs(self.config.conninfo, extra))
        if pin:
            _pin(conn, extra)
        return conn

    def connect_owner(self, owner: str, pin: bool = True) -> psycopg.Connection:
        """A connection logged in as ``owner`` (runner.owners): the runner's
        conninfo with ``user`` replaced and no password (the server must let
        the runner in as its job owners by peer or cert, with a user name map),
        made like an executor's connection."""
        params = pg_conninfo.conninfo_to_dict(self.config.conninfo)
        params.pop("password", None)
        params.pop("passfile", None)
        params["user"] = owner
        conninfo = pg_conninfo.make_conninfo(**params)
        extra = (("client_connection_check_interval", self.config.check_interval),)
        conn = psycopg.connect(conninfo, autocommit=True, application_name=f"jobledger exec {self.worker}"[:63],
                               prepare_threshold=None, **session.connect_kwargs(conninfo, extra))
        if pin:
            _pin(conn, extra)
        return conn

    def probe_owner(self, owner: str) -> None:
        """Refuse an owner whose connections go through transaction pooling
        (runner.pooling; the pooler may set pool_mode per user)."""
        params = pg_conninfo.conninfo_to_dict(self.config.conninfo)
        pooling.refuse(lambda: self.connect_owner(owner, pin=False), owner, params.get("dbname"),
                       whose=f'the connections logged in as the job owner "{owner}"')

    def sleep(self, seconds: float) -> None:
        """Sleep before a retry; a stop cuts it short (but a stopping runner
        still waits a little between its last tries to record a run)."""
        if self.stopping.is_set():
            time.sleep(min(seconds, 0.5))
        else:
            self.stopping.wait(seconds)

    def check_server(self) -> None:
        """Refuse to start without a database that has jobledger 0.3.0 or later."""
        try:
            with self.connect(f"jobledger check {self.worker}", pin=False) as conn:
                user, dbname = conn.info.user, conn.info.dbname
            # Before any connection sets anything: behind transaction pooling a
            # SET would stay on a server backend that other clients then get.
            try:
                pooling.refuse(lambda: self.connect(f"jobledger probe {self.worker}", pin=False), user, dbname)
            except pooling.TransactionPooling as exc:
                raise StartupError(str(exc), "transaction_pooling") from None
            with self.connect(f"jobledger check {self.worker}") as conn:
                row = conn.execute(queries.get("extension_version")).fetchone()
                if row is None:
                    raise StartupError(f"the extension jobledger is not installed in database {conn.info.dbname}")
                version = tuple(int(part) for part in row[0].split("."))
                if version < REQUIRED_EXTENSION:
                    raise StartupError(
                        f"database {conn.info.dbname} has jobledger {row[0]}; the runner "
                        f"{jobledger.__version__} needs {'.'.join(map(str, REQUIRED_EXTENSION))} or later "
                        "(ALTER EXTENSION jobledger UPDATE)")
                self.affinity = self.config.affinity and ledger.claim_affinity_available(conn)
                if self.config.affinity and not self.affinity:
                    log.info("this runner claims without affinity: the database has no "
                             "jobledger_internal.claim_runs(text, integer, text) (0.6.0), or this role may not "
                             "execute it (docs/runner.md, \"Affinity\")")
                if self.config.lease is None:
                    lease = conn.execute(queries.get("default_lease")).fetchone()[0]
                    self.lease = lease.total_seconds()
        except psycopg.OperationalError as exc:
            raise StartupError(f"cannot connect to the database: {str(exc).strip()}", "connection_failed") from exc
        except psycopg.Error as exc:
            raise StartupError(f"cannot start: {str(exc).strip()}", "database_error") from exc
        # A few heartbeats per lease, and never rarer than every 10 seconds.
        self.heartbeat_every = max(0.05, min(self.lease / 4, 10.0))

    # ---- state shared with the threads --------------------------------

    def running_runs(self) -> list[uuid.UUID]:
        found = []
        for executor in self.executors:
            current = executor.current
            if current is not None:
                found.append(current.id)
        return found

    def finished(self) -> bool:
        """No executor runs, and none that crashed waits for supervise to
        restart it (or for the runner to give up on it)."""
        waiting = not self.stopping.is_set()
        return not any(e.is_alive() or (waiting and e.crashed) for e in self.executors)

    def stop(self, *_: Any) -> None:
        if self.stopping.is_set():
            log.info("second signal: releasing the runs in flight now")
            self._grace_deadline = time.monotonic()
            return
        log.info("stopping: no new runs; %.0f s for the runs in flight", self.config.grace)
        self._grace_deadline = time.monotonic() + self.config.grace
        self.stopping.set()
        self.wakeups.wake()

    def supervise(self) -> None:
        """Restart the executors that died unexpectedly (control loop).  Past
        MAX_RESTARTS within RESTART_WINDOW, the runner gives up."""
        if self.stopping.is_set():
            return
        for index, executor in enumerate(self.executors):
            if executor.is_alive() or not executor.crashed:
                continue
            now = time.monotonic()
            self._restarts = [t for t in self._restarts if now - t < RESTART_WINDOW]
            if len(self._restarts) >= MAX_RESTARTS:
                self.fail(f"executors died {len(self._restarts) + 1} times within {RESTART_WINDOW:.0f} s")
                return
            self._restarts.append(now)
            log.warning("restarting executor %d", index)
            self.executors[index] = Executor(self, index)
            self.executors[index].start()

    def fail(self, reason: str) -> None:
        """The runner cannot go on: stop as on SIGTERM, and exit EXIT_FAILED."""
        log.error("runner %s cannot go on: %s; stopping", self.worker, reason)
        if self.failed is None:
            self.failed = reason
        if not self.stopping.is_set():
            self.stop()

    def check_grace(self) -> None:
        """Past the grace period: cancel the runs in flight, to release them."""
        if self._grace_deadline is None or time.monotonic() < self._grace_deadline:
            return
        if not self.releasing.is_set():
            self.releasing.set()
        for executor in self.executors:
            executor.cancel_current()
        self._grace_deadline = time.monotonic() + 1.0  # and again, should one slip through

    # ---- the process ----------------------------------------------------

    def run(self) -> int:
        self.check_server()
        log.info("runner %s: %d executor(s)%s, lease %.1f s, runs execute %s", self.worker,
                 self.config.concurrency, ", draining" if self.config.drain else "", self.lease,
                 "on connections logged in as their owners" if self.config.connect_as_owner
                 else "with SET ROLE on the runner's connections")
        handlers = {}
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                handlers[signum] = signal.signal(signum, self.stop)
        if self.config.metrics_port:
            try:
                port = self.observer.serve(self, self.config.metrics_port, self.config.metrics_address,
                                           queries.operation("queue_depth"))
            except OSError as exc:
                raise StartupError(f"cannot serve metrics on port {self.config.metrics_port}: {exc.strerror}",
                                   "invalid_argument") from exc
            log.info("metrics on http://%s:%d/metrics", self.config.metrics_address, port)
        control = listen.Control(self)
        pruner = Pruner(self) if self.config.prune_every else None
        hooks = webhooks.Webhooks(self) if self.config.webhooks else None
        drained = False
        try:
            control.start()
            if pruner is not None:
                pruner.start()
            if hooks is not None:
                hooks.start()
            self.executors = [Executor(self, i) for i in range(self.config.concurrency)]
            for executor in self.executors:
                executor.start()
            control.serve()
            drained = not self.stopping.is_set()  # the executors ran out of runs (--drain)
        except psycopg.OperationalError as exc:
            raise StartupError(f"cannot start: {str(exc).strip()}", "connection_failed") from exc
        except Exception as exc:  # noqa: BLE001 - the control loop failed: stop, say so, exit non-zero
            log.exception("the control loop failed")
            self.fail(f"the control loop failed: {exc}")
        finally:
            self.stopping.set()
            self.wakeups.wake()
            for executor in self.executors:
                executor.join()
            if hooks is not None and hooks.is_alive():
                hooks.join(self.config.webhook_timeout + 5.0)  # a POST in flight ends, or times out
            if hooks is not None and self.config.drain and drained and self.failed is None and not hooks.is_alive():
                hooks.flush(self.config.grace)  # --drain: the webhooks of the runs it ran go out now
            if self.pools is not None:
                self.pools.close()
            control.farewell()
            control.close()
            self.observer.close()
            for signum, handler in handlers.items():
                signal.signal(signum, handler)
        if self.failed is not None:
            log.error("runner %s: stopped, failed (%s)", self.worker, self.failed)
            return EXIT_FAILED
        log.info("runner %s: done", self.worker)
        return 0


class Pruner(threading.Thread):
    """Applies the retention rules every ``prune_every`` seconds (jittered by
    +-10%, so runners started together spread out), on a connection of its
    own: a long prune never delays claims or heartbeats.  Several runners
    pruning is harmless; a refused prune (no EXECUTE on jobledger.prune) is
    logged and tried again next period."""

    def __init__(self, runner: Runner) -> None:
        super().__init__(name="pruner", daemon=True)
        self.runner = runner

    def run(self) -> None:
        runner = self.runner
        config = runner.config
        assert config.prune_every
        while not runner.stopping.wait(config.prune_every * random.uniform(0.9, 1.1)):
            try:
                with runner.connect(f"jobledger prune {runner.worker}") as conn:
                    deleted = conn.execute(queries.operation("prune"), {
                        "succeeded": config.prune_succeeded, "failed": config.prune_failed,
                        "keep_last": config.prune_keep_last}).fetchone()[0]
            except psycopg.Error as exc:
                log.warning("prune failed: %s", (exc.diag.message_primary or str(exc)).strip())
                continue
            runner.observer.event("pruned", deleted=deleted)
