"""Helpers for the runner tests: runner subprocesses, jobs, runs, polling."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import uuid
from typing import Any, Callable

import psycopg
from psycopg import conninfo as pg_conninfo

import dbtools

# A runner started by a test that should have finished gets this long.
DEADLINE = 60.0


def wait_until(predicate: Callable[[], Any], timeout: float = DEADLINE, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Runner:
    """One ``jobledger runner`` subprocess; its stderr goes to a log file."""

    def __init__(self, args: list[str], log: pathlib.Path, env: dict[str, str]) -> None:
        self.args = args
        self.log_path = log
        self._log = log.open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "jobledger", "runner", *args],
                                     stdout=self._log, stderr=subprocess.STDOUT, env=env)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def send(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = DEADLINE) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"runner {self.args} did not exit:\n{self.log()}") from None

    def stop(self) -> int:
        """SIGTERM, then its exit code."""
        self.send(signal.SIGTERM)
        return self.wait()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def dsn(conn: psycopg.Connection, **overrides: Any) -> str:
    params = {**dbtools.conninfo(conn), **{k: v for k, v in overrides.items() if v is not None}}
    params = {k: v for k, v in params.items() if v is not None}
    return pg_conninfo.make_conninfo(**params)


# ---- jobs and runs -----------------------------------------------------------


def define(conn: psycopg.Connection, name: str, query: str, destination: str, mode: str = "append",
           params: dict[str, Any] | None = None, **options: Any) -> int:
    extra = "".join(f", {key} => %({key})s" for key in options)
    return conn.execute(
        f"SELECT jobledger.define_job(%(name)s, %(query)s, %(destination)s, %(mode)s, %(params)s{extra}) AS v",
        {"name": name, "query": query, "destination": destination, "mode": mode,
         "params": json.dumps(params) if params is not None else None, **options},
    ).fetchone()["v"]


def submit(conn: psycopg.Connection, job: str, params: dict[str, Any] | None = None, **options: Any) -> uuid.UUID:
    extra = "".join(f", {key} => %({key})s" for key in options)
    return conn.execute(f"SELECT jobledger.submit_job(%(job)s, %(params)s{extra}) AS id",
                        {"job": job, "params": json.dumps(params or {}), **options}).fetchone()["id"]


def status(conn: psycopg.Connection, run: uuid.UUID) -> str:
    return dbtools.run_row(conn, run)["status"]


def wait_status(conn: psycopg.Connection, run: uuid.UUID, *wanted: str, timeout: float = DEADLINE) -> dict:
    return wait_until(lambda: (row := dbtools.run_row(conn, run))["status"] in wanted and row,
                      timeout, f"run {run} to be {' or '.join(wanted)}")


# A job that sleeps {sleep} seconds, then writes {n}: for runs caught mid-flight.
SLEEPY = ("SELECT CAST({n} AS integer) AS n FROM (SELECT pg_sleep(CAST({sleep} AS numeric))) AS nap")
SLEEPY_PARAMS = {"n": {"type": "integer"}, "sleep": {"type": "numeric", "default": 0}}
NAP_ONCE = "SELECT CAST({n} AS integer) + public.nap_first(CAST({sleep} AS numeric)) AS n"


def out_rows(conn: psycopg.Connection) -> list[int]:
    return [r["n"] for r in conn.execute("SELECT n FROM public.landed ORDER BY n").fetchall()]


def executing(conn: psycopg.Connection, run: uuid.UUID) -> bool:
    """The run's backend is in the middle of its statement."""
    return conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = jobledger_internal.run_application_name(%s)"
        " AND state = 'active'"
        " AND query LIKE 'INSERT%%') AS busy", (run,)).fetchone()["busy"]


def attempts(conn: psycopg.Connection, run: uuid.UUID) -> list[tuple]:
    """(attempt, worker, status, error, error_sqlstate) of each attempt."""
    return [(a["attempt"], a["worker"], a["status"], a["error"], a["error_sqlstate"])
            for a in dbtools.attempts(conn, run)]


def backend_of(conn: psycopg.Connection, application_name: str) -> int | None:
    row = conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                       (application_name,)).fetchone()
    return row["pid"] if row else None


# ---- the server's client programs (pg_dump, pg_restore, psql) -------------


def pg_bin(name: str) -> str:
    """A client program of the server under test."""
    return str(pathlib.Path(dbtools.pg_config("--bindir")) / name)


def pg_tool_env(conn: psycopg.Connection) -> dict[str, str]:
    """The environment for a client program to reach conn's server."""
    info = dbtools.conninfo(conn)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(PGHOST=info["host"], PGPORT=str(info["port"]), PGUSER=info["user"])
    if info["password"]:
        env["PGPASSWORD"] = info["password"]
    return env


def pg_tool(conn: psycopg.Connection, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a client program against conn's server; it must succeed."""
    done = subprocess.run(list(args), env=pg_tool_env(conn), capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(args)} exited {done.returncode}:\n{done.stderr}"
    return done


def drain(conn: psycopg.Connection, worker: str) -> None:
    """Run `jobledger runner --drain` on conn's database until nothing is runnable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DATABASE_URL"}
    runner = Runner(["--dsn", dsn(conn), "--worker-id", worker, "--drain"],
                    pathlib.Path(os.environ.get("TMPDIR", "/tmp")) / f"{worker}-{uuid.uuid4().hex[:6]}.log", env)
    try:
        assert runner.wait() == 0, runner.log()
    finally:
        runner.close()
