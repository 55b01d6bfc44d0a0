"""Run ids on the command line: every command that takes one accepts a unique
prefix (one resolver, common.resolve_run); values Python cannot read as
numbers are printed, not a traceback."""

from __future__ import annotations

import json
import uuid

import runnertools
from clitools import one_line_error
from jobledger import cli as jobledger_cli
from jobledger import exact_json


def test_the_commands_that_take_a_run_are_these() -> None:
    # A new command taking a run must be added to the test below.
    taking_a_run = {name for name, command in jobledger_cli.main.commands.items()
                    if any(param.name == "run" for param in command.params)}
    assert taking_a_run == {"show", "cancel", "retry", "result"}


def test_every_command_taking_a_run_accepts_a_unique_prefix(db, cli, start_runner) -> None:
    runnertools.define(db, "echo", "SELECT CAST(70 / {n} AS integer) AS n", "result",
                       params={"n": {"type": "integer"}}, max_attempts=1)
    done = runnertools.submit(db, "echo", {"n": 7})
    failed = runnertools.submit(db, "echo", {"n": 0})  # division by zero
    runner = start_runner("--drain")
    assert runner.wait() == 0, runner.log()
    pending = runnertools.submit(db, "echo", {"n": 8})

    result = cli("result", str(done)[:8])
    assert result.code == 0, result
    assert json.loads(result.out) == [{"n": 10}]
    shown = cli("show", str(done)[:8], "--json")
    assert shown.code == 0 and json.loads(shown.out)["id"] == str(done), shown
    assert runnertools.status(db, failed) == "failed"
    retried = cli("retry", str(failed)[:8])
    assert retried.code == 0, retried
    assert uuid.UUID(retried.out.strip()) not in (done, failed, pending)
    cancelled = cli("cancel", str(pending)[:8])
    assert cancelled.code == 0, cancelled
    assert runnertools.status(db, pending) == "cancelled"

    one_line_error(cli("result", "0000"), "unknown_run")
    one_line_error(cli("result", "not-a-run"), "unknown_run")


def test_show_and_runs_print_a_number_python_cannot_read(db, cli, counter_job) -> None:
    runnertools.define(db, "echo_num", "SELECT CAST({n} AS integer) AS n", "landed",
                       params={"n": {"type": "numeric"}})
    run = db.execute("SELECT jobledger.submit_job('echo_num', '{\"n\": 1e5000}') AS id").fetchone()["id"]
    digits = "1" + "0" * 5000

    listed = cli("runs", "--json")
    assert listed.code == 0 and "Traceback" not in listed.err, listed
    assert exact_json.loads(listed.out)[0]["parameters"] == {"n": exact_json.Number(digits)}
    assert cli("runs").code == 0
    shown = cli("show", str(run))
    assert shown.code == 0 and "Traceback" not in shown.err, shown
    assert digits[:150] in shown.out.replace("\n", "").replace(" ", "")
    as_json = cli("show", str(run), "--json")
    assert as_json.code == 0, as_json
    assert exact_json.loads(as_json.out)["parameters"] == {"n": exact_json.Number(digits)}
