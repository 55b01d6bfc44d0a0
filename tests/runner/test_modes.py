"""Each mode end to end through a real runner, as a non-superuser runner role,
with the ledger's columns filled in as documented."""

from __future__ import annotations

import datetime

import psycopg
import pytest

import dbtools
import runnertools

RUNNER_FUNCTIONS = (
    "jobledger_internal.claim_runs(text, integer)",
    "jobledger_internal.claim_runs(text, integer, text)",
    "jobledger_internal.complete_run(uuid, integer, text, bigint, text, jsonb)",
    "jobledger_internal.fail_run(uuid, integer, text, text, text, text, boolean, interval)",
    "jobledger_internal.heartbeat(text, uuid[])",
    "jobledger_internal.release_run(uuid, integer, text)",
    "jobledger.reconcile_orphaned(text, interval)",
    "jobledger_internal.worker_start(text, text, integer, text, integer, interval)",
    "jobledger_internal.worker_beat(text, integer, boolean)",
    "jobledger_internal.claim_webhook_deliveries(integer)",
    "jobledger_internal.record_webhook_attempt(uuid, integer, text, integer)",
)


@pytest.fixture
def roles(db: psycopg.Connection, connect):
    """jl_owner owns the jobs; jl_runner runs them, set up as docs/runner.md says."""
    db.execute("CREATE ROLE jl_owner LOGIN")
    db.execute("CREATE ROLE jl_runner LOGIN")
    try:
        db.execute(f"GRANT EXECUTE ON FUNCTION {', '.join(RUNNER_FUNCTIONS)} TO jl_runner")
        db.execute("GRANT jl_owner TO jl_runner")
        db.execute("CREATE TABLE public.events (at date NOT NULL, kind text, amount numeric(12,2))")
        db.execute("""INSERT INTO public.events
                      SELECT date '2026-11-01' + (g % 3), CASE WHEN g % 2 = 0 THEN 'click' ELSE 'view' END, g
                        FROM generate_series(1, 60) AS g""")
        db.execute("CREATE TABLE public.big_events (at date, kind text, amount numeric(12,2),"
                   " written_by text DEFAULT current_user)")
        db.execute("CREATE TABLE public.daily (day date, events bigint, total numeric)")
        db.execute("INSERT INTO public.daily VALUES ('1999-01-01', 1, 1)")  # replaced by overwrite
        db.execute("CREATE TABLE public.per_kind (kind text PRIMARY KEY, events bigint, total numeric, note text)")
        db.execute("INSERT INTO public.per_kind VALUES ('click', -1, -1, 'kept'), ('other', 7, 7, 'untouched')")
        db.execute("GRANT SELECT ON public.events TO jl_owner")
        db.execute("GRANT INSERT ON public.big_events TO jl_owner")
        db.execute("GRANT INSERT, DELETE ON public.daily TO jl_owner")
        db.execute("GRANT INSERT, UPDATE, SELECT ON public.per_kind TO jl_owner")
        yield connect(user="jl_owner")
    finally:
        db.execute("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
                   " WHERE usename IN ('jl_owner', 'jl_runner')")
        db.execute("DROP OWNED BY jl_owner, jl_runner")
        db.execute("DROP ROLE jl_runner")
        db.execute("DROP ROLE jl_owner")


def test_append_overwrite_and_merge_as_a_non_superuser_runner(db, roles, start_runner) -> None:
    owner = roles
    runnertools.define(owner, "big", "SELECT at, kind, amount FROM public.events WHERE amount >= {min} AND kind = {kind}",
           "big_events", params={"min": {"type": "numeric"}, "kind": {"type": "text", "default": "click"}})
    runnertools.define(owner, "rollup", "SELECT at AS day, count(*) AS events, sum(amount) AS total FROM public.events"
           " GROUP BY at", "daily", mode="overwrite")
    runnertools.define(owner, "kinds", "SELECT kind, count(*) AS events, sum(amount) AS total FROM public.events"
           " WHERE at >= {since} GROUP BY kind", "per_kind", mode="merge", params={"since": {"type": "date"}})
    runs = {
        "big": runnertools.submit(owner, "big", {"min": 50.5}),
        "rollup": runnertools.submit(owner, "rollup"),
        "kinds": runnertools.submit(owner, "kinds", {"since": "2026-11-01"}),
    }
    runner = start_runner("--drain", user="jl_runner", worker="modes")
    assert runner.wait() == 0, runner.log()

    # append: the rows of the query, written as the job's owner.
    assert db.execute("SELECT count(*) AS n, min(amount) AS lo, bool_and(kind = 'click') AS clicks,"
                      " array_agg(DISTINCT written_by) AS who FROM public.big_events").fetchone() == {
        "n": 5, "lo": 52, "clicks": True, "who": ["jl_owner"]}
    # overwrite: the old contents are gone, the new ones complete.
    assert db.execute("SELECT day, events, total FROM public.daily ORDER BY day").fetchall() == [
        {"day": datetime.date(2026, 11, 1), "events": 20, "total": 630},
        {"day": datetime.date(2026, 11, 2), "events": 20, "total": 590},
        {"day": datetime.date(2026, 11, 3), "events": 20, "total": 610},
    ]
    # merge: upserted on the key; columns the query does not produce are kept.
    assert db.execute("SELECT * FROM public.per_kind ORDER BY kind").fetchall() == [
        {"kind": "click", "events": 30, "total": 930, "note": "kept"},
        {"kind": "other", "events": 7, "total": 7, "note": "untouched"},
        {"kind": "view", "events": 30, "total": 900, "note": None},
    ]

    expected_rows = {"big": 5, "rollup": 3, "kinds": 2}
    for job, run in runs.items():
        row = dbtools.run_row(db, run)
        assert row["status"] == "succeeded", (job, row)
        assert row["rows_written"] == expected_rows[job]
        assert row["attempt"] == 1 and row["worker"] == "modes"
        assert row["backend_pid"] is not None and row["backend_start"] is not None
        assert row["created_at"] <= row["started_at"] <= row["heartbeat_at"] <= row["finished_at"]
        assert row["error"] is None and row["error_sqlstate"] is None and row["error_category"] is None
        [attempt] = dbtools.attempts(db, run)
        assert (attempt["status"], attempt["worker"], attempt["backend_pid"]) == (
            "succeeded", "modes", row["backend_pid"])
        assert attempt["started_at"] == row["started_at"] and attempt["finished_at"] is not None
    assert db.execute("SELECT succeeded FROM jobledger.job_stats WHERE job = 'big'").fetchone() == {"succeeded": 1}


def test_readers_never_see_an_overwrite_half_done(db, start_runner, connect) -> None:
    db.execute("CREATE TABLE public.src (n integer)")
    db.execute("INSERT INTO public.src SELECT generate_series(1, 20000)")
    db.execute("CREATE TABLE public.copy (n integer)")
    db.execute("INSERT INTO public.copy SELECT generate_series(1, 20000)")
    runnertools.define(db, "copy", "SELECT n FROM public.src", "copy", mode="overwrite")
    for _ in range(20):
        runnertools.submit(db, "copy")
    reader = connect()
    runner = start_runner("--drain")
    counts = set()
    while runner.proc.poll() is None:
        counts.add(reader.execute("SELECT count(*) AS n FROM public.copy").fetchone()["n"])
    assert runner.wait() == 0, runner.log()
    assert counts <= {20000}
    assert db.execute("SELECT count(*) AS n FROM jobledger.run WHERE status = 'succeeded'").fetchone() == {"n": 20}


def test_python_dash_m_and_the_console_script_are_the_same_command(db) -> None:
    import subprocess
    import sys
    import pathlib

    script = pathlib.Path(sys.executable).parent / "jobledger"
    for command in ([sys.executable, "-m", "jobledger"], [str(script)]):
        out = subprocess.run([*command, "runner", "--help"], check=True, capture_output=True, text=True).stdout
        assert "--concurrency" in out and "--drain" in out and "--worker-id" in out


def test_a_database_without_the_extension_is_refused_clearly(empty_db, tmp_path) -> None:
    import subprocess
    import sys


    result = subprocess.run([sys.executable, "-m", "jobledger", "runner", "--dsn", runnertools.dsn(empty_db), "--drain"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "jobledger is not installed" in result.stderr


def test_out_rows_helper_sanity(db, sleepy, start_runner) -> None:
    """The fixture job used by the fault tests works as such."""
    run = runnertools.submit(db, sleepy, {"n": 7})
    runner = start_runner("--drain")
    assert runner.wait() == 0, runner.log()
    assert runnertools.wait_status(db, run, "succeeded")["rows_written"] == 1
    assert runnertools.out_rows(db) == [7]
