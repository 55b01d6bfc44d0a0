"""schedules, backfill (and submit --range): docs/schedules.md."""

from __future__ import annotations

import json
from typing import Any

import click
import psycopg

from jobledger.cli.commands import common

# Schedules and backfill() came with 0.5.0.
NEED = (0, 5, 0)


def parse_range(text: str) -> tuple[str, str, str]:
    """``name=FIRST..LAST`` as (name, first, last)."""
    name, sep, span = text.partition("=")
    first, dots, last = span.partition("..")
    if not (sep and name and dots and first and last):
        raise common.CliError("invalid_argument", f"--range {text!r}: write name=FIRST..LAST, e.g. day=2026-11-01..2026-11-30")
    return name, first, last


def backfill(conn: psycopg.Connection, job: str, span: str, step: str | None, values: dict[str, Any], priority: int,
             as_json: bool) -> None:
    """Submit one run per value of the range (jobledger.backfill); print them."""
    name, first, last = parse_range(span)
    values = {k: v for k, v in values.items() if k != name}
    runs = conn.execute(common.query("backfill"), {
        "job": job, "param": name, "first": first, "last": last, "step": step, "params": json.dumps(values),
        "priority": priority}).fetchall()
    if as_json:
        common.print_json([{"run": r["run"], "job": job, "parameters": {**values, name: r["value"]}} for r in runs])
        return
    for r in runs:
        click.echo(f"{r['run']}  {name}={r['value']}")


@click.command("schedules")
@common.json_option
@common.dsn_option
def schedules(as_json: bool, dsn: str | None) -> None:
    """The schedules you may see: when each ticks next, its last tick and the
    last run it submitted."""
    with common.connect(dsn, need=NEED) as conn:
        found = conn.execute(common.query("schedules")).fetchall()
    if as_json:
        common.print_json(found)
        return
    common.table(None, ["schedule", "owner", "job", "cron", "params", "active", "next tick", "last tick",
                        "tick status", "last run", "run status"], [
        [s["name"], s["owner"], s["job"], s["cron"], json.dumps(s["params"]), s["active"], s["next_tick"],
         s["last_tick_at"], s["last_tick_status"], common.short(s["last_run"]) if s["last_run"] else None,
         s["last_run_status"]] for s in found])


@click.command("backfill")
@click.argument("job")
@click.argument("span", metavar="NAME=FIRST..LAST")
@click.option("--step", help="Between values: an interval for dates and timestamps (default 1 day), "
                             "an integer for integers (default 1).")
@click.option("-p", "--param", "pairs", multiple=True, metavar="NAME=VALUE", help="The other parameters, as for submit.")
@click.option("--params", "params_json", metavar="JSON", help="The other parameters as one JSON object.")
@click.option("--priority", type=int, default=0, show_default=True, help="Higher runs first.")
@common.json_option
@common.dsn_option
def backfill_command(job: str, span: str, step: str | None, pairs: tuple[str, ...], params_json: str | None,
                     priority: int, as_json: bool, dsn: str | None) -> None:
    """Submit JOB once per value of NAME from FIRST to LAST (inclusive), e.g.
    day=2026-11-01..2026-11-30; running it again submits nothing new (each
    run's idempotency key is 'backfill NAME=VALUE')."""
    from jobledger.cli.commands import runs

    with common.connect(dsn, need=NEED) as conn:
        backfill(conn, job, span, step, runs.parse_params(conn, job, pairs, params_json), priority, as_json)
