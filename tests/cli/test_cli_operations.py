"""Operations: a metrics scrape after a few runs, structured logs, the
runner's row in jobledger.workers and `jobledger status`, pruning from the
CLI and by the runner (--prune-every)."""

from __future__ import annotations

import json
import socket
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

import dbtools
import jobledger
import runnertools
from clitools import one_line_error


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scrape(port: int) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_after_a_few_runs(db, cli, counter_job, start_runner) -> None:
    runnertools.define(db, "divide", "SELECT CAST(10 AS integer) / CAST({d} AS integer) AS n", "landed",
                       params={"d": {"type": "integer"}}, max_attempts=1)
    port = _free_port()
    runner = start_runner("--metrics-port", str(port), "--metrics-address", "127.0.0.1", worker="metered")
    runs = [runnertools.submit(db, "count", {"n": n}) for n in range(3)]
    failed = runnertools.submit(db, "divide", {"d": 0})
    for run in runs:
        runnertools.wait_status(db, run, "succeeded")
    runnertools.wait_status(db, failed, "failed")
    later = runnertools.submit(db, "count", {"n": 9}, run_after="2999-01-01T00:00:00Z")

    def scraped():
        m = _scrape(port)
        return m if m.get(("jobledger_runs_succeeded_total", (("job", "count"),))) == 3 else None

    m = runnertools.wait_until(scraped, what="the metrics to count three successes")
    job = (("job", "count"),)
    assert m[("jobledger_runs_claimed_total", job)] == 3
    assert m[("jobledger_runs_failed_total", (("job", "divide"),))] == 1
    assert m[("jobledger_runs_claimed_total", (("job", "divide"),))] == 1
    assert m[("jobledger_run_duration_seconds_count", (("job", "count"), ("outcome", "succeeded")))] == 3
    assert m[("jobledger_run_duration_seconds_count", (("job", "divide"), ("outcome", "failed")))] == 1
    assert m[("jobledger_run_pickup_latency_seconds_count", job)] == 3
    assert m[("jobledger_queue_depth", job)] == 0
    assert m[("jobledger_queue_scheduled", job)] == 1
    assert m[("jobledger_runner_up", (("version", jobledger.__version__),
                                      ("worker", "metered")))] == 1
    assert m[("jobledger_runs_in_flight", ())] == 0
    assert dbtools.run_row(db, later)["status"] == "pending"
    assert runner.stop() == 0, runner.log()


def test_cancelled_and_retried_runs_are_counted(db, sleepy_job, start_runner) -> None:
    port = _free_port()
    db.execute("CREATE SEQUENCE public.tries")
    db.execute("""CREATE FUNCTION public.flaky() RETURNS integer LANGUAGE plpgsql AS $$
                  BEGIN
                      IF nextval('public.tries') = 1 THEN
                          RAISE EXCEPTION 'simulated conflict' USING ERRCODE = 'serialization_failure';
                      END IF;
                      RETURN 1;
                  END $$""")
    runnertools.define(db, "flaky", "SELECT public.flaky() AS n", "landed")
    runner = start_runner("--metrics-port", str(port), "--retry-backoff", "0.1")
    flaky = runnertools.submit(db, "flaky")
    runnertools.wait_status(db, flaky, "succeeded")
    slow = runnertools.submit(db, "sleepy", {"n": 1, "sleep": 60})
    runnertools.wait_until(lambda: runnertools.executing(db, slow), what="the run to execute")
    db.execute("SELECT jobledger.cancel_run(%s)", (slow,))
    m = runnertools.wait_until(
        lambda: (m := _scrape(port)).get(("jobledger_runs_cancelled_total", (("job", "sleepy"),))) == 1 and m,
        what="the cancel to be counted")
    assert m[("jobledger_runs_retried_total", (("job", "flaky"),))] == 1
    assert m[("jobledger_runs_succeeded_total", (("job", "flaky"),))] == 1
    assert m[("jobledger_runs_claimed_total", (("job", "flaky"),))] == 2
    assert runner.stop() == 0, runner.log()


def test_json_logs_one_line_per_event(db, counter_job, start_runner) -> None:
    run = runnertools.submit(db, "count", {"n": 1})
    runner = start_runner("--drain", "--log-format", "json")
    assert runner.wait() == 0, runner.log()
    lines = [json.loads(line) for line in runner.log().splitlines()]
    events = [(e["event"], e["run"], e["job"], e["attempt"]) for e in lines if "event" in e]
    # At info, one line per run: its outcome.
    assert events == [("succeeded", str(run), "count", 1)]
    done = next(e for e in lines if e.get("event") == "succeeded")
    assert done["rows_written"] == 1 and done["level"] == "info" and done["time"].endswith("Z")


def test_debug_logs_claims_too(db, counter_job, start_runner) -> None:
    run = runnertools.submit(db, "count", {"n": 1})
    runner = start_runner("--drain", "--log-format", "json", "--log-level", "debug")
    assert runner.wait() == 0, runner.log()
    lines = [json.loads(line) for line in runner.log().splitlines() if line.startswith("{")]
    events = [(e["event"], e["run"], e["level"]) for e in lines if "event" in e]
    assert events == [("claimed", str(run), "debug"), ("succeeded", str(run), "info")]


def test_text_logs_carry_the_fields(db, counter_job, start_runner) -> None:
    run = runnertools.submit(db, "count", {"n": 1})
    runner = start_runner("--drain")
    assert runner.wait() == 0
    [line] = [line for line in runner.log().splitlines() if " succeeded " in line]
    assert f"run={run} job=count attempt=1" in line and "rows_written=1" in line


def test_workers_and_status_show_the_runner_alive_then_stopped(db, cli, counter_job, start_runner) -> None:
    runner = start_runner("--concurrency", "3", worker="w-status")
    row = runnertools.wait_until(lambda: db.execute(
        "SELECT * FROM jobledger.workers WHERE worker = 'w-status' AND state = 'alive'").fetchone(),
        what="the runner's row")
    assert row["concurrency"] == 3 and row["pid"] == runner.pid
    db.execute("SELECT jobledger.submit_job('count', '{\"n\": 1}', run_after => now() + interval '1 hour')")
    status = cli("status")
    assert status.code == 0, status
    assert "runners alive     1" in status.out and "w-status" in status.out
    assert "pending runs      1 (0 ready)" in status.out
    data = json.loads(cli("status", "--json").out)
    assert data["runners_alive"] == 1 and data["extension_version"] == data["package_version"]
    assert data["queue"][0]["job"] == "count" and data["queue"][0]["scheduled"] == 1
    assert data["oldest_pending"]["job"] == "count"
    assert runner.stop() == 0, runner.log()
    assert db.execute("SELECT state FROM jobledger.workers WHERE worker = 'w-status'").fetchone() == {"state": "stopped"}


def _finished_runs(db, count: int, ago: str) -> list:
    return [dbtools.make_run(db, "count", status="succeeded", attempt=1,
                             finished_at=db.execute("SELECT now() - %s::interval AS t", (ago,)).fetchone()["t"])
            for _ in range(count)]


def test_prune_from_the_cli(db, cli, counter_job) -> None:
    old = _finished_runs(db, 2, "10 days")
    recent = _finished_runs(db, 3, "1 hour")
    result = cli("prune", "--succeeded", "7d", "--failed", "30d")
    assert (result.code, result.out.strip()) == (0, "pruned 2 run(s)")
    left = {r["id"] for r in db.execute("SELECT id FROM jobledger.run")}
    assert left == set(recent) and not left & set(old)
    assert json.loads(cli("prune", "--keep-last", "1", "--json").out) == {"deleted": 2}
    assert cli("prune", "--older-than", "soon").code == 2


def test_prune_needs_the_grant(db, cli, counter_job, make_role) -> None:
    role = make_role("pruner")
    line = one_line_error(cli("prune", "--older-than", "1d", dsn=runnertools.dsn(db, user=role)), "permission_denied")
    assert "jobledger.prune" in line or "prune" in line


def test_the_runner_prunes_every_period(db, counter_job, start_runner) -> None:
    old = _finished_runs(db, 3, "10 days")
    runner = start_runner("--prune-every", "0.3s", "--prune-succeeded", "7d", "--prune-keep-last", "100")
    runnertools.wait_until(lambda: db.execute("SELECT count(*) AS n FROM jobledger.run").fetchone()["n"] == 0,
                           what="the runner to prune")
    # the rows are gone at the prune's commit; its log line follows that commit
    runnertools.wait_until(lambda: "pruned" in runner.log() and "deleted=3" in runner.log(),
                           what="the runner to log the prune")
    assert runner.stop() == 0
    assert not {r["id"] for r in db.execute("SELECT id FROM jobledger.run")} & set(old)


def test_runner_prune_options_are_checked(cli) -> None:
    result = cli("runner", "--prune-every", "1h")
    assert result.code == 2 and "--prune-succeeded" in result.err


def test_pause_resume_and_max_running_from_the_cli_with_a_runner(db, cli, counter_job, start_runner) -> None:
    assert cli("jobs", "pause", "count").out.strip() == "paused count"
    assert cli("jobs", "pause", "count").out.strip() == "count was paused already"
    assert cli("jobs", "max-running", "count", "2").out.strip() == "count: at most 2 running"
    one_line_error(cli("jobs", "pause", "nope"), "unknown_job")
    assert cli("jobs", "max-running", "count", "0").code == 2  # a usage error, nothing sent
    db.execute("SELECT jobledger.submit_job('count', '{\"n\": 1}')")
    runner = start_runner("--concurrency", "2", "--poll-interval", "0.2", worker="w-paused")
    runnertools.wait_until(lambda: db.execute(
        "SELECT 1 FROM jobledger.workers WHERE worker = 'w-paused' AND state = 'alive'").fetchone(),
        what="the runner's row")

    listed = cli("jobs", "list")
    assert listed.code == 0, listed
    header, row = listed.out.splitlines()[:2]
    assert "max running" in header and "paused since" in header
    assert row.split()[:9] == ["count", db.info.user, "1", "append", "public.landed", "1", "1", "0", "2"]
    [job] = json.loads(cli("jobs", "list", "--json").out)
    assert job["max_running"] == 2 and job["paused_at"] is not None

    status = cli("status")
    assert status.code == 0, status
    assert "paused jobs       count (since " in status.out and f"by {db.info.user})" in status.out
    data = json.loads(cli("status", "--json").out)
    assert [p["job"] for p in data["paused_jobs"]] == ["count"]
    assert data["queue"] == [{**data["queue"][0], "job": "count", "ready": 1, "running": 0,
                              "max_running": 2, "paused": True}]
    assert db.execute("SELECT status FROM jobledger.run").fetchone() == {"status": "pending"}

    assert cli("jobs", "resume", "count").out.strip() == "resumed count"
    runnertools.wait_until(lambda: db.execute("SELECT status FROM jobledger.run").fetchone()["status"] == "succeeded",
                           what="the run to succeed once resumed")
    assert cli("jobs", "max-running", "count", "none").out.strip() == "count: no limit"
    assert json.loads(cli("status", "--json").out)["paused_jobs"] == []
    assert json.loads(cli("jobs", "list", "--json").out)[0]["max_running"] is None
    assert runner.stop() == 0, runner.log()
