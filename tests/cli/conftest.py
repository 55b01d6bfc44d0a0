"""The jobledger command through its real entry point (``python -m
jobledger``, a subprocess) against the test database: exit codes, output,
and what it did to the database.  Runners come from tests/runner's fixture."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from typing import Callable, Iterator

import psycopg
import pytest

import runnertools
from clitools import Result


@pytest.fixture
def cli(db: psycopg.Connection) -> Callable[..., Result]:
    """Runs ``jobledger ARGS --dsn <test database>`` (unless ``dsn=False``),
    with no PG* variables (unless given in ``env``)."""

    def run(*args: str, dsn: bool | str = True, env: dict[str, str] | None = None, timeout: float = 120,
            input: str | None = None) -> Result:
        base = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DATABASE_URL"}
        base["COLUMNS"] = "200"
        extra = ["--dsn", runnertools.dsn(db) if dsn is True else dsn] if dsn else []
        proc = subprocess.run([sys.executable, "-m", "jobledger", *args, *extra], capture_output=True, text=True,
                              env={**base, **(env or {})}, timeout=timeout, input=input)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture
def counter_job(db: psycopg.Connection) -> str:
    """Job ``count`` appending {n} to public.landed (integer parameter n)."""
    db.execute("CREATE TABLE public.landed (n integer, who text DEFAULT current_user)")
    runnertools.define(db, "count", "SELECT CAST({n} AS integer) AS n", "landed", params={"n": {"type": "integer"}})
    return "count"


@pytest.fixture
def start_runner(db: psycopg.Connection, tmp_path: pathlib.Path) -> Iterator[Callable[..., runnertools.Runner]]:
    """Starts ``jobledger runner`` processes on the test database (as in tests/runner)."""
    started: list[runnertools.Runner] = []

    def start(*args: str, worker: str | None = None) -> runnertools.Runner:
        name = worker or f"runner-{len(started)}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DATABASE_URL"}
        runner = runnertools.Runner(["--dsn", runnertools.dsn(db), "--worker-id", name, *args],
                                    tmp_path / f"{name}.log", env)
        started.append(runner)
        return runner

    yield start
    for runner in started:
        runner.close()


@pytest.fixture
def sleepy_job(db: psycopg.Connection) -> str:
    """Job ``sleepy``: sleeps {sleep} seconds (default 0), then appends {n}."""
    db.execute("CREATE TABLE public.landed (n integer, who text DEFAULT current_user)")
    runnertools.define(db, "sleepy", runnertools.SLEEPY, "landed", params=runnertools.SLEEPY_PARAMS)
    return "sleepy"
