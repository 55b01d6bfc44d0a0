"""submit, runs, show, cancel, retry."""

from __future__ import annotations

import datetime
import json
import uuid
from typing import Any

import click
import psycopg

from jobledger import client, exact_json
from jobledger.cli import durations
from jobledger.cli.commands import common

# Declared types whose values are strings: a -p value is taken as written.
_STRING_TYPES = {"text", "date", "timestamptz", "uuid"}


def parse_params(conn: psycopg.Connection, job: str, pairs: tuple[str, ...], params_json: str | None
                 ) -> dict[str, Any]:
    """``-p key=value`` pairs (over ``--params`` JSON) as the job's values.

    A value of a parameter declared text, date, timestamptz or uuid is the
    string as written; any other value is read as JSON when it is JSON
    (``5``, ``true``, ``[1,2]``, ``null``, ``"5"``) and as a string otherwise."""
    values: dict[str, Any] = {}
    if params_json is not None:
        try:
            values = json.loads(params_json)
        except json.JSONDecodeError as exc:
            raise common.CliError("invalid_argument", f"--params is not JSON: {exc}") from None
        if not isinstance(values, dict):
            raise common.CliError("invalid_argument", "--params must be a JSON object")
    found = conn.execute(common.query("job_params"), {"job": job}).fetchone()
    declared = (found or {}).get("params") or {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise common.CliError("invalid_argument", f"-p {pair!r}: write name=value")
        kind = declared.get(name, {}).get("type") if isinstance(declared.get(name), dict) else None
        if kind in _STRING_TYPES:
            values[name] = text
            continue
        try:
            values[name] = json.loads(text)
        except json.JSONDecodeError:
            values[name] = text
    return values


def wait_for(conn: psycopg.Connection, run: uuid.UUID, timeout: datetime.timedelta | None, quiet: bool
             ) -> dict[str, Any]:
    """Wait for the run to end (client.wait), or ``timeout``, with a live
    status line on stderr; its last state."""
    from rich.status import Status

    status_line = None if quiet else Status("", console=common.console(err=True))

    def show(state: dict[str, Any]) -> None:
        assert status_line is not None
        where = f" on {state['worker']}" if state["worker"] else ""
        status_line.update(f"run {common.short(run)} {state['status']}, attempt "
                           f"{max(state['attempt'], 1)}/{state['max_attempts']}{where}, "
                           f"{durations.show(state['duration'] or state['queued_for'])}")

    if status_line is not None:
        status_line.start()
    try:
        return client.wait(conn, run, None if timeout is None else timeout.total_seconds(),
                           poll_interval=1.0, on_poll=None if status_line is None else show)
    except TimeoutError:
        return {**client.status(conn, run), "timed_out": True}
    except LookupError:
        raise common.CliError("unknown_run", f"run {run} is gone (pruned or its job dropped)") from None
    finally:
        if status_line is not None:
            status_line.stop()


def finish(run: uuid.UUID, state: dict[str, Any], as_json: bool) -> None:
    """Report the end of a waited-for run; exit with its code."""
    if as_json:
        common.print_json({"run": run, **state})
    elif state.get("timed_out"):
        click.echo(f"run {run} is still {state['status']}", err=True)
    elif state["status"] == "succeeded":
        click.echo(f"run {run} succeeded: {state['rows_written']} rows written in "
                   f"{durations.show(state['finished_at'] - state['started_at'])}", err=True)
    else:
        click.echo(f"run {run} {state['status']}: {state['error']} ({state['error_category']})", err=True)
    if state.get("timed_out"):
        raise SystemExit(common.WAIT_TIMEOUT)
    raise SystemExit({"succeeded": common.OK, "failed": common.RUN_FAILED,
                      "cancelled": common.RUN_CANCELLED}[state["status"]])


_wait_options = [
    click.option("--wait", is_flag=True,
                 help="Wait for the run to end, with a live status line; the exit code tells how it ended "
                      "(0 succeeded, 3 failed, 4 cancelled, 5 still running after --timeout)."),
    common.duration_option("--timeout", "With --wait: give up waiting after this long (e.g. 30s, 10m)."),
    click.option("--quiet", "-q", is_flag=True, help="With --wait: no live status line."),
]


def _with_wait_options(fn: Any) -> Any:
    for option in reversed(_wait_options):
        fn = option(fn)
    return fn


@click.command()
@click.argument("job")
@click.option("-p", "--param", "pairs", multiple=True, metavar="NAME=VALUE",
              help="A parameter value; repeat for each. Strings for text/date/timestamptz/uuid parameters, "
                   "JSON otherwise (5, true, [1,2], null), else the text as a string.")
@click.option("--params", "params_json", metavar="JSON", help="Parameters as one JSON object (-p values win).")
@click.option("--priority", type=int, default=0, show_default=True, help="Higher runs first.")
@click.option("--run-after", metavar="TIMESTAMP", help="Not before this time (a timestamptz, e.g. '2026-12-01 06:00Z').")
@click.option("--idempotency-key", "key", help="Submitting the same key for the job again returns the same run.")
@click.option("--max-attempts", type=click.IntRange(1, 100), help="Attempts, retries included (default: the job's).")
@click.option("--range", "span", metavar="NAME=FIRST..LAST",
              help="One run per value of NAME, e.g. day=2026-11-01..2026-11-30 (as `jobledger backfill`).")
@click.option("--step", help="With --range: an interval for dates and timestamps (default 1 day), an integer for integers.")
@_with_wait_options
@common.json_option
@common.dsn_option
def submit(job: str, pairs: tuple[str, ...], params_json: str | None, priority: int, run_after: str | None,
           key: str | None, max_attempts: int | None, span: str | None, step: str | None, wait: bool,
           timeout: datetime.timedelta | None, quiet: bool, as_json: bool, dsn: str | None) -> None:
    """Submit a run of JOB; print its id.  With --range, one run per value (a backfill)."""
    if span is not None:
        if wait or run_after or key or max_attempts:
            raise common.CliError("invalid_argument", "--range submits a backfill: without --wait, --run-after, "
                                                      "--idempotency-key or --max-attempts")
        from jobledger.cli.commands import schedules

        with common.connect(dsn, need=schedules.NEED) as conn:
            schedules.backfill(conn, job, span, step, parse_params(conn, job, pairs, params_json), priority, as_json)
        return
    if step is not None:
        raise common.CliError("invalid_argument", "--step goes with --range")
    with common.connect(dsn, need=(0, 2, 0)) as conn:
        values = parse_params(conn, job, pairs, params_json)
        run = conn.execute(common.query("submit"), {
            "job": job, "params": json.dumps(values), "key": key, "priority": priority, "run_after": run_after,
            "max_attempts": max_attempts}).fetchone()["id"]
        if not wait:
            if as_json:
                common.print_json({"run": run, "job": job, "parameters": values})
            else:
                click.echo(run)
            return
        if not as_json:
            click.echo(run)
        finish(run, wait_for(conn, run, timeout, quiet or as_json), as_json)


@click.command()
@click.option("--job", help="Only this job's runs.")
@click.option("--status", "statuses", multiple=True,
              type=click.Choice(["pending", "running", "succeeded", "failed", "cancelled"]),
              help="Only runs in this status; repeat for several.")
@click.option("--limit", type=click.IntRange(1, 100000), default=20, show_default=True, help="Newest first, at most this many.")
@common.json_option
@common.dsn_option
def runs(job: str | None, statuses: tuple[str, ...], limit: int, as_json: bool, dsn: str | None) -> None:
    """List runs, newest first."""
    with common.connect(dsn, need=(0, 1, 0)) as conn:
        found = conn.execute(common.query("runs"), {
            "job": job, "statuses": list(statuses) or None, "limit": limit}).fetchall()
    if as_json:
        common.print_json(found)
        return
    common.table(None, ["run", "job", "v", "status", "attempt", "created", "duration", "rows", "worker", "error"], [
        [common.short(r["id"]), r["job"], r["version"], r["status"], f"{r['attempt']}/{r['max_attempts']}",
         r["created_at"], r["duration"], r["rows_written"], r["worker"],
         f"{r['error_category']}: {r['error']}" if r["error"] else None]
        for r in found])


METRICS_ORDER = ("rows", "first_row_ms", "query_ms", "write_ms", "statement_ms", "bytes", "arrow_bytes")


def metrics_text(metrics: dict[str, Any] | None) -> str | None:
    """run.metrics on one line, the documented keys first (docs/runner.md,
    "Run metrics"): ``rows 3, first row 0.8 ms, query 1.2 ms, ...``."""
    if not metrics:
        return None
    keys = [k for k in METRICS_ORDER if k in metrics] + sorted(k for k in metrics if k not in METRICS_ORDER)
    return ", ".join(f"{k[:-3].replace('_', ' ')} {metrics[k]} ms" if k.endswith("_ms")
                     else f"{k.replace('_', ' ')} {metrics[k]}" for k in keys)


@click.command()
@click.argument("run")
@common.json_option
@common.dsn_option
def show(run: str, as_json: bool, dsn: str | None) -> None:
    """Everything about one RUN (its id or a unique prefix): parameters,
    rendered SQL, attempts, output, error."""
    from rich.syntax import Syntax

    with common.connect(dsn, need=(0, 1, 0)) as conn:
        run_id = common.resolve_run(conn, run)
        row = conn.execute(common.query("show_run"), {"id": run_id}).fetchone()
        attempts = conn.execute(common.query("attempts"), {"id": run_id}).fetchall()
    if row is None:
        raise common.CliError("unknown_run", f"there is no run {run}")
    if as_json:
        common.print_json({**row, "attempts": attempts})
        return
    out = common.console()
    fields = [
        ("run", row["id"]), ("job", f"{row['job']} (version {row['version']})"), ("status", row["status"]),
        ("attempt", f"{row['attempt']} of {row['max_attempts']}"), ("priority", row["priority"]),
        ("submitted by", row["submitted_by"]), ("idempotency key", row["idempotency_key"]),
        ("created", row["created_at"]), ("run after", row["run_after"]), ("started", row["started_at"]),
        ("finished", row["finished_at"]), ("queued for", row["queued_for"]), ("duration", row["duration"]),
        ("worker", row["worker"]),
        ("output", f"{row['destination']} ({row['mode']})" if row["destination"] else None),
        ("rows written", row["rows_written"]), ("snapshot", row["snapshot_id"]),
        ("metrics", metrics_text(row.get("metrics"))),
    ]
    if row["error"]:
        fields.append(("error", f"{row['error']} (category {row['error_category']}, "
                                f"SQLSTATE {row['error_sqlstate'] or '-'})"))
    width = max(len(name) for name, _ in fields)
    for name, value in fields:
        if value is not None and value != "":
            out.print(f"[bold]{name.ljust(width)}[/]  {common.cell_text(value)}")
    out.print("[bold]parameters[/]")
    out.print(Syntax(exact_json.dumps(row["parameters"], indent=2, sort_keys=True), "json",
                     background_color="default"))
    out.print("[bold]rendered SQL[/]")
    out.print(Syntax(row["rendered_sql"], "sql", background_color="default", word_wrap=True))
    if attempts:
        common.table("attempts", ["#", "status", "worker", "started", "took", "error"], [
            [a["attempt"], a["status"], a["worker"], a["started_at"], a["took"],
             f"{a['error']} [{a['error_sqlstate']}]" if a["error_sqlstate"] else a["error"]] for a in attempts])


@click.command()
@click.argument("run")
@common.json_option
@common.dsn_option
def cancel(run: str, as_json: bool, dsn: str | None) -> None:
    """Cancel a pending or running RUN (a running one's query is stopped)."""
    with common.connect(dsn, need=(0, 3, 0)) as conn:
        run_id = common.resolve_run(conn, run)
        done = conn.execute(common.query("cancel"), {"id": run_id}).fetchone()["cancelled"]
        if not done:
            status = conn.execute(common.query("run_state"), {"id": run_id}).fetchone()["status"]
            raise common.CliError("invalid_run_state", f"run {run_id} already {status}: nothing to cancel")
    if as_json:
        common.print_json({"run": run_id, "cancelled": True})
    else:
        click.echo(f"run {run_id} cancelled")


@click.command()
@click.argument("run")
@_with_wait_options
@common.json_option
@common.dsn_option
def retry(run: str, wait: bool, timeout: datetime.timedelta | None, quiet: bool, as_json: bool,
          dsn: str | None) -> None:
    """Submit a failed or cancelled RUN again (same parameters, the job's
    current version); print the new run's id.  Retrying the same run twice
    gives the same new run."""
    with common.connect(dsn) as conn:
        run_id = common.resolve_run(conn, run)
        new = conn.execute(common.query("retry"), {"id": run_id}).fetchone()["id"]
        if as_json and not wait:
            common.print_json({"run": new, "retry_of": run_id})
            return
        if not as_json:
            click.echo(new)
        if wait:
            finish(new, wait_for(conn, new, timeout, quiet or as_json), as_json)
