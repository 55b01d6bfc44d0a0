"""The runner's state transitions through SQL: claim_runs, complete_run,
fail_run, heartbeat, release_run, cancel_run, and reconcile_orphaned's
takeover of a live backend."""

from __future__ import annotations

import concurrent.futures
import datetime
import threading
import time
import uuid
from typing import Any

import psycopg
import pytest

import dbtools

WORKER = "test-runner"


@pytest.fixture
def job(db: psycopg.Connection) -> str:
    db.execute("CREATE TABLE public.dest (x integer)")
    return dbtools.make_job(db, "job1", max_attempts=3)


def claim(conn: psycopg.Connection, worker: str = WORKER, max_runs: int = 1) -> list[dict[str, Any]]:
    return conn.execute("SELECT * FROM jobledger_internal.claim_runs(%s, %s)", (worker, max_runs)).fetchall()


def backend(conn: psycopg.Connection) -> dict[str, Any]:
    return conn.execute("SELECT pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()").fetchone()


def wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


# ---- claim_runs -------------------------------------------------------------


def test_claim_marks_the_run_running_on_the_calling_backend(db, job, connect) -> None:
    run = dbtools.make_run(db, job)
    runner = connect()
    [claimed] = claim(runner)
    assert claimed["id"] == run and claimed["attempt"] == 1
    assert claimed["mode"] == "append" and claimed["owner"] == "postgres"
    assert (claimed["destination_schema"], claimed["destination_table"]) == ("public", "dest")
    assert claimed["rendered_sql"] == "SELECT 1 AS x" and claimed["timeout_ms"] is None

    row = dbtools.run_row(db, run)
    me = backend(runner)
    assert row["status"] == "running" and row["worker"] == WORKER and row["attempt"] == 1
    assert (row["backend_pid"], row["backend_start"]) == (me["pid"], me["backend_start"])
    assert row["started_at"] is not None and row["heartbeat_at"] == row["started_at"]
    [attempt] = dbtools.attempts(db, run)
    assert attempt["status"] == "running" and attempt["worker"] == WORKER
    assert attempt["backend_pid"] == me["pid"]
    # Nothing left to claim.
    assert claim(runner) == []


def test_claim_order_is_priority_then_due_then_age(db, job) -> None:
    low = dbtools.make_run(db, job, priority=0)
    high = dbtools.make_run(db, job, priority=5)
    later = dbtools.make_run(db, job, priority=0, run_after=datetime.datetime.now(datetime.timezone.utc)
                             - datetime.timedelta(seconds=1))
    future = dbtools.make_run(db, job, priority=9, run_after=datetime.datetime.now(datetime.timezone.utc)
                              + datetime.timedelta(hours=1))
    assert [r["id"] for r in claim(db, max_runs=10)] == [high, later, low]
    assert dbtools.run_row(db, future)["status"] == "pending"


def test_claim_reports_mode_timeout_and_merge_key(db) -> None:
    db.execute("CREATE TABLE public.keyed (b text, a integer, v integer, PRIMARY KEY (a, b))")
    with db.transaction():  # a restore-like insert: the job, then its version
        db.execute("INSERT INTO jobledger.job (name, current_version) VALUES ('m', 1)")
        db.execute("""INSERT INTO jobledger.job_version (job, version, query, destination, mode, timeout)
                      VALUES ('m', 1, 'SELECT 1 AS a', 'public.keyed', 'merge', '2.5 seconds')""")
    dbtools.make_run(db, "m")
    [claimed] = claim(db)
    assert claimed["mode"] == "merge" and claimed["timeout_ms"] == 2500
    assert claimed["primary_key"] == ["a", "b"]


def test_claim_of_a_dropped_destination_says_so(db, job) -> None:
    dbtools.make_run(db, job)
    db.execute("DROP TABLE public.dest")
    [claimed] = claim(db)
    assert claimed["destination"] == "public.dest" and claimed["destination_table"] is None


@pytest.mark.parametrize("limited", [False, True], ids=["unlimited", "max_running"])
def test_claim_plan_walks_the_claim_index(db, job, limited) -> None:
    if limited:  # the limit's count of running runs must not scan the ledger either
        db.execute("SELECT jobledger.set_max_running('job1', 5)")
    db.execute("""INSERT INTO jobledger.run (job, job_version, rendered_sql, priority)
                  SELECT 'job1', 1, 'SELECT 1 AS x', g % 3 FROM generate_series(1, 3000) AS g""")
    db.execute("INSERT INTO jobledger.run (job, job_version, rendered_sql, status, attempt, finished_at)"
               " SELECT 'job1', 1, 'SELECT 1 AS x', 'succeeded', 1, now() FROM generate_series(1, 3000)")
    db.execute("ANALYZE jobledger.run")
    plans: list[str] = []
    db.add_notice_handler(lambda diag: plans.append(diag.message_primary or ""))
    db.execute("LOAD 'auto_explain'")
    db.execute("SET auto_explain.log_min_duration = 0")
    db.execute("SET auto_explain.log_nested_statements = on")
    db.execute("SET client_min_messages = log")
    with db.transaction():
        claim(db, max_runs=2)
        claim(db, max_runs=2)
    db.execute("SET client_min_messages = notice")
    claim_plans = [p for p in plans if "j.paused_at IS NULL" in p]  # the candidates' query
    assert claim_plans, plans
    assert all("run_claim_idx" in p for p in claim_plans), claim_plans
    assert not any("Seq Scan on run " in p for p in plans), plans


def test_concurrent_claimers_never_share_a_run(db, job, connect) -> None:
    db.execute("""INSERT INTO jobledger.run (job, job_version, rendered_sql)
                  SELECT 'job1', 1, 'SELECT 1 AS x' FROM generate_series(1, 400)""")
    claimers = [connect() for _ in range(6)]

    def drain(conn: psycopg.Connection) -> list[uuid.UUID]:
        got: list[uuid.UUID] = []
        while batch := claim(conn, worker=f"w{conn.info.backend_pid}", max_runs=3):
            got.extend(r["id"] for r in batch)
        return got

    with concurrent.futures.ThreadPoolExecutor(len(claimers)) as pool:
        claimed = [run for got in pool.map(drain, claimers) for run in got]
    assert len(claimed) == len(set(claimed)) == 400
    assert db.execute("SELECT count(*) AS n FROM jobledger.run_attempt").fetchone() == {"n": 400}


@pytest.mark.parametrize("args", ["NULL, 1", "'', 1", "'w', 0", "'w', 1001"])
def test_claim_refuses_bad_arguments(db, args: str) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue) as caught:
        db.execute(f"SELECT * FROM jobledger_internal.claim_runs({args})")
    assert dbtools.category(caught.value) == "invalid_argument"


# ---- complete_run: the fenced flip -------------------------------------------


def test_complete_flips_to_succeeded_with_the_write(db, job, connect) -> None:
    run = dbtools.make_run(db, job)
    runner = connect()
    claim(runner)
    with runner.transaction():
        runner.execute("INSERT INTO public.dest VALUES (1), (2)")
        runner.execute("SELECT jobledger_internal.complete_run(%s, 1, %s, 2)", (run, WORKER))
    row = dbtools.run_row(db, run)
    assert row["status"] == "succeeded" and row["rows_written"] == 2
    assert row["finished_at"] >= row["started_at"]
    assert [(a["status"], a["finished_at"] is not None) for a in dbtools.attempts(db, run)] == [("succeeded", True)]
    assert db.execute("SELECT count(*) AS n FROM public.dest").fetchone() == {"n": 2}


@pytest.mark.parametrize("stale", ["attempt", "worker", "cancelled", "taken_over"])
def test_a_stale_complete_is_refused_and_its_write_rolls_back(db, job, connect, stale: str) -> None:
    run = dbtools.make_run(db, job)
    runner = connect()
    claim(runner)
    attempt, worker = 1, WORKER
    if stale == "attempt":
        attempt = 2
    elif stale == "worker":
        worker = "someone-else"
    elif stale == "cancelled":
        assert db.execute("SELECT jobledger.cancel_run(%s) AS ok", (run,)).fetchone() == {"ok": True}
    else:  # the lease expired, another runner took the run (attempt 2)
        db.execute("UPDATE jobledger.run SET heartbeat_at = now() - interval '1 hour' WHERE id = %s", (run,))
        assert db.execute("SELECT jobledger.reconcile_orphaned(lease => '1 minute') AS n").fetchone() == {"n": 1}
        claim(connect(), worker="other-runner")
    before = dbtools.run_row(db, run)
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as caught:
        with runner.transaction():
            runner.execute("INSERT INTO public.dest VALUES (1)")
            runner.execute("SELECT jobledger_internal.complete_run(%s, %s, %s, 1)", (run, attempt, worker))
    assert dbtools.category(caught.value) == "run_fenced"
    assert db.execute("SELECT count(*) AS n FROM public.dest").fetchone() == {"n": 0}
    assert dbtools.run_row(db, run) == before


# ---- fail_run ------------------------------------------------------------------


def fail(conn, run, attempt=1, worker=WORKER, *, error="boom", sqlstate="XX000", category="execution_error",
         retry=False, backoff="1 second"):
    return conn.execute("SELECT jobledger_internal.fail_run(%s, %s, %s, %s, %s, %s, %s, %s::interval) AS status",
                        (run, attempt, worker, error, sqlstate, category, retry, backoff)).fetchone()["status"]


def test_a_permanent_error_fails_at_once(db, job) -> None:
    run = dbtools.make_run(db, job, max_attempts=3)
    claim(db)
    assert fail(db, run, error='relation "x" does not exist', sqlstate="42P01") == "failed"
    row = dbtools.run_row(db, run)
    assert (row["status"], row["error"], row["error_sqlstate"], row["error_category"]) == (
        "failed", 'relation "x" does not exist', "42P01", "execution_error")
    assert row["finished_at"] is not None and row["worker"] == WORKER
    [attempt] = dbtools.attempts(db, run)
    assert (attempt["status"], attempt["error_sqlstate"]) == ("failed", "42P01")


def test_a_transient_error_retries_with_exponential_backoff_until_attempts_run_out(db, job) -> None:
    run = dbtools.make_run(db, job, max_attempts=3)
    delays = []
    for attempt in (1, 2):
        claim(db)
        assert fail(db, run, attempt, sqlstate="40001", category="transient_error", retry=True,
                    backoff="10 seconds") == "pending"
        row = db.execute("SELECT *, run_after - clock_timestamp() AS wait FROM jobledger.run WHERE id = %s",
                         (run,)).fetchone()
        assert row["status"] == "pending" and row["worker"] is None and row["started_at"] is None
        assert row["error_sqlstate"] == "40001"  # why it is pending again
        delays.append(row["wait"])
        # Due now, for the next claim.
        db.execute("UPDATE jobledger.run SET run_after = now() WHERE id = %s", (run,))
    assert datetime.timedelta(seconds=8) < delays[0] <= datetime.timedelta(seconds=10)
    assert datetime.timedelta(seconds=18) < delays[1] <= datetime.timedelta(seconds=20)
    claim(db)
    assert fail(db, run, 3, sqlstate="40001", category="transient_error", retry=True) == "failed"
    assert [a["status"] for a in dbtools.attempts(db, run)] == ["failed"] * 3
    assert dbtools.run_row(db, run)["attempt"] == 3


def test_fail_of_a_run_that_is_no_longer_ours_changes_nothing(db, job) -> None:
    run = dbtools.make_run(db, job)
    claim(db)
    before = dbtools.run_row(db, run)
    assert fail(db, run, attempt=2) is None
    assert fail(db, run, worker="other") is None
    assert dbtools.run_row(db, run) == before


def test_a_run_failed_for_good_keeps_its_last_worker_whoever_failed_it(db, job, connect) -> None:
    """fail_run and reconcile_orphaned end a run the same way: failed, with the
    worker and backend of the attempt that ran it last; a retry keeps neither."""
    by_runner, by_reconcile, retried = (dbtools.make_run(db, job, max_attempts=1) for _ in range(3))
    db.execute("UPDATE jobledger.run SET max_attempts = 2 WHERE id = %s", (retried,))
    runner, lost = connect(), connect()
    claim(runner)
    assert fail(runner, by_runner) == "failed"
    claim(lost, worker="lost-worker", max_runs=2)
    lost_backend = backend(lost)
    db.execute("SELECT pg_terminate_backend(%s, 10000)", (lost_backend["pid"],))
    assert db.execute("SELECT jobledger.reconcile_orphaned('runner vanished') AS n").fetchone() == {"n": 2}

    ran = dbtools.run_row(db, by_runner)
    assert (ran["status"], ran["worker"], ran["backend_pid"]) == ("failed", WORKER, backend(runner)["pid"])
    reconciled = dbtools.run_row(db, by_reconcile)
    assert (reconciled["status"], reconciled["error_category"]) == ("failed", "runner_lost")
    assert (reconciled["worker"], reconciled["backend_pid"], reconciled["backend_start"]) == (
        "lost-worker", lost_backend["pid"], lost_backend["backend_start"])
    assert reconciled["started_at"] is not None and reconciled["heartbeat_at"] is not None
    again = dbtools.run_row(db, retried)
    assert (again["status"], again["worker"], again["backend_pid"], again["started_at"]) == (
        "pending", None, None, None)


# ---- heartbeat and release -----------------------------------------------------


def test_heartbeat_advances_only_this_workers_running_runs(db, job) -> None:
    mine, theirs, pending = (dbtools.make_run(db, job) for _ in range(3))
    claim(db)
    claim(db, worker="other")
    db.execute("UPDATE jobledger.run SET heartbeat_at = now() - interval '1 minute' WHERE status = 'running'")
    before = {r: dbtools.run_row(db, r)["heartbeat_at"] for r in (mine, theirs)}
    assert db.execute("SELECT jobledger_internal.heartbeat(%s, %s) AS n",
                      (WORKER, [mine, theirs, pending])).fetchone() == {"n": 1}
    assert dbtools.run_row(db, mine)["heartbeat_at"] > before[mine]
    assert dbtools.run_row(db, theirs)["heartbeat_at"] == before[theirs]
    assert dbtools.run_row(db, pending)["heartbeat_at"] is None


def test_release_gives_the_run_back_without_counting_the_attempt(db, job) -> None:
    run = dbtools.make_run(db, job, max_attempts=1)
    claim(db)
    assert db.execute("SELECT jobledger_internal.release_run(%s, 2, %s) AS ok", (run, WORKER)).fetchone() == {"ok": False}
    assert db.execute("SELECT jobledger_internal.release_run(%s, 1, %s) AS ok", (run, WORKER)).fetchone() == {"ok": True}
    row = dbtools.run_row(db, run)
    assert (row["status"], row["attempt"], row["worker"], row["started_at"]) == ("pending", 0, None, None)
    assert dbtools.attempts(db, run) == []
    # Its only attempt is still there to be had.
    assert [r["attempt"] for r in claim(db)] == [1]


# ---- cancel_run ------------------------------------------------------------------


def test_cancel_a_pending_run(db, job) -> None:
    run = dbtools.make_run(db, job)
    assert db.execute("SELECT jobledger.cancel_run(%s) AS ok", (run,)).fetchone() == {"ok": True}
    row = dbtools.run_row(db, run)
    assert (row["status"], row["error_category"], row["cancel_requested"]) == ("cancelled", "cancelled", False)
    assert row["error"] == "cancelled by postgres" and row["finished_at"] is not None
    assert claim(db) == []


def test_cancel_a_terminal_run_changes_nothing(db, job) -> None:
    run = dbtools.make_run(db, job)
    claim(db)
    db.execute("SELECT jobledger_internal.complete_run(%s, 1, %s, 0)", (run, WORKER))
    before = dbtools.run_row(db, run)
    assert db.execute("SELECT jobledger.cancel_run(%s) AS ok", (run,)).fetchone() == {"ok": False}
    assert dbtools.run_row(db, run) == before


def test_cancel_an_unknown_run(db) -> None:
    with pytest.raises(psycopg.errors.UndefinedObject) as caught:
        db.execute("SELECT jobledger.cancel_run(%s)", (uuid.uuid4(),))
    assert dbtools.category(caught.value) == "unknown_run"


def _execute_in_background(conn: psycopg.Connection, run: uuid.UUID, application_name: str | None = None):
    """What a runner does with a run: its name in application_name, then a
    long statement, in one transaction.  Returns the thread and its outcome."""
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            with conn.transaction():
                conn.execute("SELECT set_config('application_name',"
                             " coalesce(%s, jobledger_internal.run_application_name(%s)), true)", (application_name, run))
                conn.execute("INSERT INTO public.dest SELECT 1 FROM pg_sleep(30)")
                conn.execute("SELECT jobledger_internal.complete_run(%s, 1, %s, 1)", (run, WORKER))
        except psycopg.Error as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=work)
    thread.start()
    return thread, outcome


def _active(db: psycopg.Connection, pid: int) -> bool:
    return db.execute("SELECT state = 'active' AND query LIKE 'INSERT%%' AS busy FROM pg_stat_activity"
                      " WHERE pid = %s", (pid,)).fetchone() == {"busy": True}


def test_cancel_a_running_run_stops_its_query_and_nothing_is_written(db, job, connect) -> None:
    run = dbtools.make_run(db, job)
    runner = connect()
    claim(runner)
    thread, outcome = _execute_in_background(runner, run)
    wait_for(lambda: _active(db, runner.info.backend_pid))

    assert db.execute("SELECT jobledger.cancel_run(%s) AS ok", (run,)).fetchone() == {"ok": True}
    thread.join(20)
    assert not thread.is_alive()
    assert isinstance(outcome["error"], psycopg.errors.QueryCanceled)
    row = dbtools.run_row(db, run)
    assert (row["status"], row["cancel_requested"], row["error_category"]) == ("cancelled", True, "cancelled")
    assert [a["status"] for a in dbtools.attempts(db, run)] == ["cancelled"]
    assert db.execute("SELECT count(*) AS n FROM public.dest").fetchone() == {"n": 0}
    # The runner's fenced fail_run then leaves the cancelled run alone.
    assert fail(runner, run, sqlstate="57014", retry=True) is None
    assert dbtools.run_row(db, run)["status"] == "cancelled"


def test_cancel_signals_only_a_backend_executing_that_run(db, job, connect) -> None:
    run = dbtools.make_run(db, job)
    runner = connect()
    claim(runner)
    # The recorded backend is busy with something else (say, the next run).
    thread, outcome = _execute_in_background(runner, run, application_name=f"jobledger run {uuid.uuid4()}")
    wait_for(lambda: _active(db, runner.info.backend_pid))
    assert db.execute("SELECT jobledger.cancel_run(%s) AS ok", (run,)).fetchone() == {"ok": True}
    time.sleep(0.5)
    assert thread.is_alive() and "error" not in outcome
    db.execute("SELECT pg_cancel_backend(%s)", (runner.info.backend_pid,))
    thread.join(20)
    assert dbtools.run_row(db, run)["status"] == "cancelled"


def test_who_may_cancel(db, job, connect) -> None:
    roles = ["jl_owner", "jl_submitter", "jl_member", "jl_stranger"]
    for role in roles:
        db.execute(f"CREATE ROLE {role} LOGIN")
    try:
        db.execute("GRANT jl_submitter TO jl_member")
        db.execute("UPDATE jobledger.job SET owner = 'jl_owner'")
        runs = [dbtools.make_run(db, job, submitted_by="jl_submitter") for _ in range(3)]
        stranger = connect(user="jl_stranger")
        with pytest.raises(psycopg.errors.UndefinedObject) as caught:  # a run it may not see looks absent
            stranger.execute("SELECT jobledger.cancel_run(%s)", (runs[0],))
        assert dbtools.category(caught.value) == "unknown_run"
        assert dbtools.run_row(db, runs[0])["status"] == "pending"
        for role, run in zip(["jl_owner", "jl_submitter", "jl_member"], runs):
            conn = connect(user=role)
            assert conn.execute("SELECT jobledger.cancel_run(%s) AS ok", (run,)).fetchone() == {"ok": True}
            assert dbtools.run_row(db, run)["error"] == f"cancelled by {role}"
            conn.close()
        stranger.close()
    finally:
        for role in roles:
            db.execute(f"SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE usename = '{role}'")
            db.execute(f"DROP ROLE {role}")


# ---- reconcile_orphaned and a live stale backend ----------------------------------


def test_a_takeover_after_the_lease_terminates_the_stale_backend(db, job, connect) -> None:
    run = dbtools.make_run(db, job)
    runner = connect()
    claim(runner)
    thread, outcome = _execute_in_background(runner, run)
    wait_for(lambda: _active(db, runner.info.backend_pid))
    db.execute("UPDATE jobledger.run SET heartbeat_at = now() - interval '2 minutes' WHERE id = %s", (run,))

    assert db.execute("SELECT jobledger.reconcile_orphaned(lease => '1 minute') AS n").fetchone() == {"n": 1}
    thread.join(20)
    assert not thread.is_alive()
    assert isinstance(outcome["error"], psycopg.OperationalError)
    assert runner.broken or runner.closed
    row = dbtools.run_row(db, run)
    assert (row["status"], row["attempt"]) == ("pending", 1)
    assert db.execute("SELECT count(*) AS n FROM public.dest").fetchone() == {"n": 0}


def test_a_takeover_leaves_a_backend_that_moved_on_alone(db, job, connect) -> None:
    run = dbtools.make_run(db, job)
    runner = connect()
    claim(runner)
    thread, outcome = _execute_in_background(runner, run, application_name=f"jobledger run {uuid.uuid4()}")
    wait_for(lambda: _active(db, runner.info.backend_pid))
    db.execute("UPDATE jobledger.run SET heartbeat_at = now() - interval '2 minutes' WHERE id = %s", (run,))
    assert db.execute("SELECT jobledger.reconcile_orphaned(lease => '1 minute') AS n").fetchone() == {"n": 1}
    time.sleep(0.5)
    assert thread.is_alive() and "error" not in outcome
    db.execute("SELECT pg_cancel_backend(%s)", (runner.info.backend_pid,))
    thread.join(20)
    assert not runner.broken


# ---- privileges ------------------------------------------------------------------


@pytest.mark.parametrize("function", [
    "claim_runs(text,integer)",
    "claim_runs(text,integer,text)",
    "complete_run(uuid,integer,text,bigint)",
    "complete_run(uuid,integer,text,bigint,text,jsonb)",
    "fail_run(uuid,integer,text,text,text,text,boolean,interval)",
    "heartbeat(text,uuid[])",
    "release_run(uuid,integer,text)",
])
def test_runner_functions_are_not_public(db, function: str) -> None:
    row = db.execute("SELECT has_function_privilege('public', %s, 'EXECUTE') AS public,"
                     " p.prosecdef FROM pg_proc p WHERE p.oid = %s::regprocedure",
                     (f"jobledger_internal.{function}", f"jobledger_internal.{function}")).fetchone()
    assert row == {"public": False, "prosecdef": True}
