"""submit, runs, show, cancel, retry and the errors every command reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import dbtools
import runnertools
from clitools import one_line_error


def test_submit_prints_the_run_and_records_it(db, cli, counter_job) -> None:
    result = cli("submit", "count", "-p", "n=5", "--priority", "3")
    assert result.code == 0, result
    run = uuid.UUID(result.out.strip())
    row = dbtools.run_row(db, run)
    assert (row["status"], row["parameters"], row["priority"]) == ("pending", {"n": 5}, 3)


def test_typed_string_parameters_stay_strings(db, cli) -> None:
    db.execute("CREATE TABLE public.days (day date, label text)")
    runnertools.define(db, "days", "SELECT CAST({day} AS date) AS day, CAST({label} AS text) AS label", "days",
                       params={"day": {"type": "date"}, "label": {"type": "text"}})
    result = cli("submit", "days", "-p", "day=2026-11-01", "-p", "label=42", "--json")
    assert result.code == 0, result
    out = json.loads(result.out)
    assert dbtools.run_row(db, uuid.UUID(out["run"]))["parameters"] == {"day": "2026-11-01", "label": "42"}


def test_submit_refusals_are_one_line_with_their_category(db, cli, counter_job) -> None:
    line = one_line_error(cli("submit", "count", "-p", "n=abc"), "invalid_parameter")
    assert '"n"' in line and "plpy" not in line
    one_line_error(cli("submit", "nope"), "unknown_job")
    one_line_error(cli("submit", "count", "-p", "n"), "invalid_argument")
    assert db.execute("SELECT count(*) AS n FROM jobledger.run").fetchone() == {"n": 0}


def test_submit_wait_exit_codes_follow_the_outcome(db, cli, counter_job, start_runner) -> None:
    runnertools.define(db, "divide", "SELECT CAST(10 AS integer) / CAST({d} AS integer) AS n", "landed",
                       params={"d": {"type": "integer"}}, max_attempts=1)
    start_runner()
    ok = cli("submit", "count", "-p", "n=1", "--wait")
    assert ok.code == 0, ok
    assert "succeeded: 1 rows written" in ok.err
    failed = cli("submit", "divide", "-p", "d=0", "--wait")
    assert failed.code == 3, failed
    assert "failed: division by zero (execution_error)" in failed.err
    assert dbtools.run_row(db, uuid.UUID(failed.out.strip()))["status"] == "failed"
    waited = cli("submit", "count", "-p", "n=2", "--wait", "--json")
    assert waited.code == 0 and json.loads(waited.out)["status"] == "succeeded"
    assert runnertools.out_rows(db) == [1, 2]


def test_submit_wait_on_a_cancelled_run_and_a_timeout(db, cli, sleepy_job, start_runner) -> None:
    # No runner yet: the wait times out with the run still pending.
    timed_out = cli("submit", "sleepy", "-p", "n=1", "--wait", "--timeout", "0.5s")
    assert timed_out.code == 5, timed_out
    assert "still pending" in timed_out.err
    start_runner()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    waiting = subprocess.Popen([sys.executable, "-m", "jobledger", "submit", "sleepy", "-p", "n=2", "-p", "sleep=60",
                                "--wait", "--dsn", runnertools.dsn(db)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env)
    try:
        # This run, not the first one, which the runner may be executing too.
        run = runnertools.wait_until(lambda: db.execute(
            "SELECT id FROM jobledger.run WHERE status = 'running' AND parameters ->> 'n' = '2'").fetchone(),
            what="the run to start")["id"]
        assert cli("cancel", str(run)[:8]).code == 0
        out, err = waiting.communicate(timeout=60)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.communicate()
    assert waiting.returncode == 4, (out, err)
    assert "cancelled" in err


def test_runs_lists_filters_and_prints_json(db, cli, counter_job) -> None:
    first = runnertools.submit(db, "count", {"n": 1})
    second = runnertools.submit(db, "count", {"n": 2})
    db.execute("SELECT jobledger.cancel_run(%s)", (first,))
    table = cli("runs")
    assert table.code == 0, table
    lines = table.out.splitlines()
    assert lines[0].split()[:4] == ["run", "job", "v", "status"]
    assert [line.split()[0] for line in lines[1:]] == [str(second)[:8], str(first)[:8]]  # newest first
    assert "cancelled: cancelled by" in lines[2]
    only = json.loads(cli("runs", "--status", "cancelled", "--json").out)
    assert [r["id"] for r in only] == [str(first)]
    assert json.loads(cli("runs", "--job", "other", "--json").out) == []
    assert len(json.loads(cli("runs", "--limit", "1", "--json").out)) == 1


def test_show_tells_everything_about_a_run(db, cli, counter_job, start_runner) -> None:
    run = runnertools.submit(db, "count", {"n": 7})
    start_runner("--drain").wait()
    result = cli("show", str(run)[:6])
    assert result.code == 0, result
    for expected in (str(run), "count (version 1)", "succeeded", "public.landed (append)", '"n": 7',
                     "SELECT CAST(CAST(7 AS INT) AS integer) AS n", "attempts"):
        assert expected in result.out, (expected, result.out)
    data = json.loads(cli("show", str(run), "--json").out)
    assert data["rows_written"] == 1 and [a["status"] for a in data["attempts"]] == ["succeeded"]


def test_show_and_cancel_refuse_unknown_ambiguous_and_finished_runs(db, cli, counter_job) -> None:
    one_line_error(cli("show", str(uuid.uuid4())), "unknown_run")
    one_line_error(cli("show", "xyz"), "unknown_run")
    # Two runs sharing a prefix (ids chosen): the prefix is ambiguous.
    for suffix in ("1", "2"):
        db.execute("INSERT INTO jobledger.run (id, job, job_version, rendered_sql) VALUES (%s, 'count', 1, 'SELECT 1')",
                   (uuid.UUID("abcd0000-0000-0000-0000-00000000000" + suffix),))
    one_line_error(cli("show", "abcd"), "ambiguous_run")
    assert cli("cancel", "abcd0000-0000-0000-0000-000000000001").code == 0
    line = one_line_error(cli("cancel", "abcd0000-0000-0000-0000-000000000001"), "invalid_run_state")
    assert "already cancelled" in line


def test_retry_a_cancelled_run_once(db, cli, counter_job) -> None:
    run = runnertools.submit(db, "count", {"n": 3})
    assert cli("cancel", str(run)).code == 0
    first = cli("retry", str(run))
    assert first.code == 0, first
    again = uuid.UUID(first.out.strip())
    assert dbtools.run_row(db, again)["parameters"] == {"n": 3}
    assert cli("retry", str(run)).out.strip() == str(again)  # the same retry
    one_line_error(cli("retry", str(again)), "invalid_run_state")  # pending: nothing to retry


def test_connection_and_installation_errors(cli, empty_db) -> None:
    line = one_line_error(cli("runs", dsn="host=127.0.0.1 port=1 connect_timeout=2"), "connection_failed")
    assert "cannot connect" in line
    one_line_error(cli("status", dsn=runnertools.dsn(empty_db)), "not_installed")


def test_the_pg_environment_is_used_without_dsn(db, cli, counter_job) -> None:
    info = dbtools.conninfo(db)
    env = {"PGHOST": info["host"], "PGPORT": str(info["port"]), "PGUSER": info["user"], "PGDATABASE": info["dbname"]}
    result = cli("submit", "count", "-p", "n=9", dsn=False, env=env)
    assert result.code == 0, result
    assert dbtools.run_row(db, uuid.UUID(result.out.strip()))["parameters"] == {"n": 9}


def test_usage_errors_exit_2(cli) -> None:
    assert cli("runs", "--status", "bogus").code == 2
    assert cli("prune").code == 2
