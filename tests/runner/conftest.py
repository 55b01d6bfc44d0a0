"""Real ``jobledger runner`` processes against a real database.

Each test gets a fresh database (the ``db`` fixture) and starts runners as
subprocesses (``python -m jobledger runner``), exactly as an operator would.
The tests assert effects (destination rows, ledger rows), never timing: they
poll with generous deadlines instead of sleeping.  Helpers: runnertools.
"""

from __future__ import annotations

import os
import pathlib
from typing import Callable, Iterator

import psycopg
import pytest

import runnertools


@pytest.fixture
def start_runner(db: psycopg.Connection, tmp_path: pathlib.Path) -> Iterator[Callable[..., runnertools.Runner]]:
    """Starts runner processes on the test database; all killed at the end."""
    started: list[runnertools.Runner] = []

    def start(*args: str, worker: str | None = None, user: str | None = None,
              dsn: str | None = None) -> runnertools.Runner:
        name = worker or f"runner-{len(started)}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DATABASE_URL"}
        runner = runnertools.Runner(["--dsn", dsn or runnertools.dsn(db, user=user), "--worker-id", name,
                         "--log-level", "debug", *args], tmp_path / f"{name}.log", env)
        started.append(runner)
        return runner

    yield start
    for runner in started:
        runner.close()


@pytest.fixture
def sleepy(db: psycopg.Connection) -> str:
    """Job ``sleepy`` appending one row n into public.landed (who: the writing
    role) after sleeping {sleep} seconds; and job ``nap_once``, the same but
    only the first execution in the database sleeps (a sequence counts them,
    and a rollback does not take a nextval back), so a retry is quick."""
    db.execute("CREATE TABLE public.landed (n integer, who text DEFAULT current_user)")
    db.execute("CREATE SEQUENCE public.naps")
    db.execute("""CREATE FUNCTION public.nap_first(seconds numeric) RETURNS integer LANGUAGE plpgsql AS $$
                  BEGIN
                      IF nextval('public.naps') = 1 THEN PERFORM pg_sleep(seconds); END IF;
                      RETURN 0;
                  END $$""")
    runnertools.define(db, "sleepy", runnertools.SLEEPY, "landed", params=runnertools.SLEEPY_PARAMS)
    runnertools.define(db, "nap_once", runnertools.NAP_ONCE, "landed", params=runnertools.SLEEPY_PARAMS)
    return "sleepy"


