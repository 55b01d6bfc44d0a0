"""Each run starts from a clean session: nothing one job leaves in the runner's
session (temporary tables, settings, a role, advisory locks) is seen by the
next run, of another owner, on the same connection, nor gets in the way of
the runner's own ledger calls."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

import dbtools
import runnertools


@pytest.fixture
def owners(db: psycopg.Connection, make_role) -> tuple[str, str]:
    """Two job owners; public.shared_src (readable by both) holds 'permanent'."""
    owner_a, owner_b = make_role("owner_a"), make_role("owner_b")
    db.execute("CREATE TABLE public.shared_src (v text)")
    db.execute("INSERT INTO public.shared_src VALUES ('permanent')")
    db.execute("CREATE TABLE public.a_out (n integer)")
    db.execute("CREATE TABLE public.b_out (v text, ro text, lock_timeout text, note text, locks bigint,"
               " who text DEFAULT current_user)")
    for owner, table in ((owner_a, "a_out"), (owner_b, "b_out")):
        db.execute(sql.SQL("GRANT SELECT ON public.shared_src TO {}").format(sql.Identifier(owner)))
        db.execute(sql.SQL("GRANT INSERT ON {} TO {}").format(sql.Identifier("public", table), sql.Identifier(owner)))
    return owner_a, owner_b


# B reads shared_src as it resolves at run time, and what of the session it can see.
B_QUERY = ("SELECT v, current_setting('default_transaction_read_only') AS ro,"
           " current_setting('lock_timeout') AS lock_timeout,"
           " current_setting('app.note', true) AS note,"
           " (SELECT count(*) FROM pg_catalog.pg_locks AS l"
           "   WHERE l.locktype = 'advisory' AND l.pid = pg_catalog.pg_backend_pid()) AS locks"
           " FROM shared_src")

# What A's function leaves in the session, at session level (set_config(..., false)).
SPOIL = """CREATE FUNCTION public.spoil() RETURNS integer LANGUAGE plpgsql AS $$
BEGIN
    CREATE TEMP TABLE shared_src AS SELECT 'temporary'::text AS v;
    GRANT SELECT ON shared_src TO PUBLIC;
    PERFORM set_config('default_transaction_read_only', 'on', false);
    PERFORM set_config('search_path', 'pg_temp, pg_catalog', false);
    PERFORM set_config('statement_timeout', '200ms', false);
    PERFORM set_config('lock_timeout', '1ms', false);
    PERFORM set_config('app.note', 'left by A', false);
    PERFORM set_config('role', current_user, false);  -- A's role, for the rest of the session
    PERFORM pg_advisory_lock(42);
    RETURN 1;
END $$"""


def _b_rows(db: psycopg.Connection) -> list[dict]:
    return db.execute("SELECT v, ro, lock_timeout, coalesce(note, '') AS note, locks, who FROM public.b_out"
                      ).fetchall()


@pytest.mark.parametrize("a_destination", ["a_out", "result"])
def test_the_next_run_and_the_ledger_calls_see_nothing_of_the_previous_job(
        db, owners, a_destination, connect, start_runner) -> None:
    owner_a, owner_b = owners
    db.execute(SPOIL)
    runnertools.define(connect(user=owner_a), "spoil", "SELECT public.spoil() AS n", a_destination)
    as_b = connect(user=owner_b)
    runnertools.define(as_b, "reader", B_QUERY, "b_out")
    # One executor: every run on the same connection, A's first.
    spoiled = runnertools.submit(db, "spoil", priority=2)
    runs = [spoiled, runnertools.submit(as_b, "reader", priority=1), runnertools.submit(as_b, "reader")]
    runner = start_runner("--concurrency", "1", "--drain", worker="iso")
    assert runner.wait() == 0, runner.log()

    assert [dbtools.run_row(db, run)["status"] for run in runs] == ["succeeded"] * 3, runner.log()
    assert len({a["backend_pid"] for run in runs for a in dbtools.attempts(db, run)}) == 1  # one session
    # The permanent table, the default settings, no lock, B's own role.
    assert _b_rows(db) == [
        {"v": "permanent", "ro": "off", "lock_timeout": "0", "note": "", "locks": 0, "who": owner_b}] * 2


def test_a_failed_jobs_leftovers_do_not_reach_the_next_run(db, owners, connect, start_runner) -> None:
    owner_a, owner_b = owners
    # The advisory lock is not transactional: it outlives the rollback.
    db.execute("""CREATE FUNCTION public.spoil_then_fail() RETURNS integer LANGUAGE plpgsql AS $$
                  BEGIN
                      PERFORM pg_advisory_lock(42);
                      PERFORM set_config('app.note', 'left by A', false);
                      RETURN 1 / 0;
                  END $$""")
    runnertools.define(connect(user=owner_a), "fails", "SELECT public.spoil_then_fail() AS n", "a_out",
                       max_attempts=1)
    as_b = connect(user=owner_b)
    runnertools.define(as_b, "reader", B_QUERY, "b_out")
    failed = runnertools.submit(db, "fails", priority=2)
    read = runnertools.submit(as_b, "reader")
    runner = start_runner("--concurrency", "1", "--drain", worker="iso")
    assert runner.wait() == 0, runner.log()
    row = dbtools.run_row(db, failed)
    assert (row["status"], row["error_sqlstate"]) == ("failed", "22012"), row
    assert dbtools.run_row(db, read)["status"] == "succeeded"
    assert _b_rows(db) == [
        {"v": "permanent", "ro": "off", "lock_timeout": "0", "note": "", "locks": 0, "who": owner_b}]
