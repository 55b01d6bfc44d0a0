"""Run metrics through SQL: complete_run records them with the fenced flip,
checks their shape, and job_stats shows their percentiles (docs/runner.md,
"Run metrics"; docs/sql-api.md)."""

from __future__ import annotations

import json

import psycopg
import pytest

import dbtools

WORKER = "test-runner"


@pytest.fixture
def job(db: psycopg.Connection) -> str:
    db.execute("CREATE TABLE public.dest (x integer)")
    return dbtools.make_job(db, "job1", max_attempts=3)


def claimed_run(db: psycopg.Connection, job: str) -> object:
    run = dbtools.make_run(db, job)
    assert db.execute("SELECT id FROM jobledger_internal.claim_runs(%s, 1)", (WORKER,)).fetchone() == {"id": run}
    return run


def complete(db: psycopg.Connection, run: object, rows: int, metrics: dict | str | None,
             snapshot: str | None = None) -> None:
    text = metrics if isinstance(metrics, str) or metrics is None else json.dumps(metrics)
    db.execute("SELECT jobledger_internal.complete_run(%s, 1, %s, %s, %s, %s::jsonb)",
               (run, WORKER, rows, snapshot, text))


def test_complete_run_records_the_metrics_with_the_success(db, job) -> None:
    run = claimed_run(db, job)
    complete(db, run, 7, {"rows": 7, "statement_ms": 1.25})
    row = dbtools.run_row(db, run)
    assert (row["status"], row["rows_written"], row["metrics"]) == ("succeeded", 7, {"rows": 7, "statement_ms": 1.25})


def test_the_fence_refuses_the_metrics_of_an_attempt_that_lost_its_run(db, job) -> None:
    run = claimed_run(db, job)
    db.execute("SELECT jobledger.cancel_run(%s)", (run,))
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as caught:
        complete(db, run, 1, {"rows": 1})
    assert dbtools.category(caught.value) == "run_fenced"
    row = dbtools.run_row(db, run)
    assert (row["status"], row["metrics"]) == ("cancelled", None)


@pytest.mark.parametrize("bad", ['[1, 2]', '3', '{"rows": -1}', '{"rows": "7"}', '{"nested": {"a": 1}}',
                                 json.dumps({f"k{i}": i for i in range(33)}), json.dumps({"k" * 64: 1})])
def test_metrics_must_be_a_small_object_of_non_negative_numbers(db, job, bad: str) -> None:
    run = claimed_run(db, job)
    with pytest.raises(psycopg.errors.InvalidParameterValue) as caught:
        complete(db, run, 1, bad)
    assert dbtools.category(caught.value) == "invalid_argument"
    row = dbtools.run_row(db, run)
    assert (row["status"], row["metrics"]) == ("running", None)


def test_the_old_forms_still_complete_without_metrics(db, job) -> None:
    """Runners before 0.6.0 (and scripts) call the four- and five-argument
    forms: they still complete, and record no metrics."""
    first, second = claimed_run(db, job), claimed_run(db, job)
    db.execute("SELECT jobledger_internal.complete_run(%s, 1, %s, 3)", (first, WORKER))
    db.execute("SELECT jobledger_internal.complete_run(%s, 1, %s, 4, '9')", (second, WORKER))
    assert [(r["status"], r["rows_written"], r["snapshot_id"], r["metrics"])
            for r in map(lambda run: dbtools.run_row(db, run), (first, second))] == [
        ("succeeded", 3, None, None), ("succeeded", 4, "9", None)]
    stats = db.execute("SELECT p50_rows, p50_first_row_ms, p95_bytes FROM jobledger.job_stats"
                       " WHERE job = %s", (job,)).fetchone()
    assert stats == {"p50_rows": 3.5, "p50_first_row_ms": None, "p95_bytes": None}


def test_job_stats_percentiles_of_known_metrics(db, job) -> None:
    """percentile_cont over succeeded runs only: 5 runs with rows 1..5,
    first_row_ms 10..50 and bytes 100..500; a failed run and a run without
    the figure are left out of the figure's percentiles."""
    for n in range(1, 6):
        complete(db, claimed_run(db, job), n, {"rows": n, "first_row_ms": 10 * n, "bytes": 100 * n})
    # A table run measures no first row nor bytes: it counts for rows only.
    complete(db, claimed_run(db, job), 6, {"rows": 6, "statement_ms": 1})
    failed = claimed_run(db, job)
    db.execute("SELECT jobledger_internal.fail_run(%s, 1, %s, 'boom')", (failed, WORKER))
    stats = db.execute("""SELECT succeeded, failed, p50_rows, p95_rows, p50_first_row_ms, p95_first_row_ms,
                                 p50_bytes, p95_bytes
                            FROM jobledger.job_stats WHERE job = %s""", (job,)).fetchone()
    assert stats == {
        "succeeded": 6, "failed": 1,
        "p50_rows": 3.5, "p95_rows": pytest.approx(5.75),        # 1..6: 0.95 * 5 = 4.75 -> 5 + 0.75
        "p50_first_row_ms": 30.0, "p95_first_row_ms": pytest.approx(48.0),  # 10..50: 0.95 * 4 = 3.8
        "p50_bytes": 300.0, "p95_bytes": pytest.approx(480.0),
    }
    assert dbtools.run_row(db, failed)["metrics"] is None


def test_job_stats_keeps_its_columns_and_adds_the_metrics_at_the_end(db, job) -> None:
    columns = [r["attname"] for r in db.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = 'jobledger.job_stats'::regclass AND attnum > 0"
        " ORDER BY attnum").fetchall()]
    assert columns == ["job", "current_version", "runs", "pending", "running", "succeeded", "failed", "cancelled",
                       "last_success", "last_failure", "p50_duration", "p95_duration", "p50_rows", "p95_rows",
                       "p50_first_row_ms", "p95_first_row_ms", "p50_bytes", "p95_bytes"]


@pytest.mark.parametrize("function", ["complete_run(uuid,integer,text,bigint,text,jsonb)",
                                      "complete_attached_run(uuid,integer,text,bigint,text,jsonb)",
                                      "check_metrics(jsonb)"])
def test_the_new_forms_are_not_public(db, function: str) -> None:
    row = db.execute("SELECT has_function_privilege('public', %s, 'EXECUTE') AS public",
                     (f"jobledger_internal.{function}",)).fetchone()
    assert row == {"public": False}
