"""The ``jobledger`` command (client side: needs the ``client`` extra).

Every command connects with the standard libpq settings: ``--dsn``, else
``DATABASE_URL``, else the ``PG*`` environment variables and their defaults,
exactly as psql would.  Errors are one line on stderr, ``error: <message>
(<category>)``; exit codes in jobledger.cli.commands.common (0 ok, 1 error,
2 usage, 3/4/5 a waited-for run failed / was cancelled / is still going).
``runner`` is here; the other commands live in jobledger.cli.commands.
"""

from __future__ import annotations

import datetime
import logging
import sys

import click

import jobledger
from jobledger.cli import commands
from jobledger.cli.commands import common


@click.group(cls=common.Group)
@click.version_option(jobledger.__version__, prog_name="jobledger")
def main() -> None:
    """jobledger: parameterised SQL jobs with a run ledger in PostgreSQL."""


def _positive(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    if value is not None and value <= 0:
        raise click.BadParameter("must be positive")
    return value


@main.command()
@common.dsn_option
@click.option("--concurrency", "-c", type=click.IntRange(1, 256), default=2, show_default=True,
              help="Runs executed at once; one database connection each (plus one to listen).")
@click.option("--connect-as-owner/--set-role", "connect_as_owner", default=None,
              help="--connect-as-owner (recommended): execute each run on a connection logged in as its job's "
                   "owner (pg_hba.conf/pg_ident.conf map, see docs/runner.md), so nothing a job does reaches "
                   "beyond its owner.  --set-role: on the runner's own connections under SET ROLE, which a "
                   "job's function can undo (RESET ROLE).  Default for now: --set-role, with a warning.")
@click.option("--drain", is_flag=True,
              help="Exit 0 as soon as nothing is runnable (for batch use, tests and the demo).")
@click.option("--worker-id", help="Name recorded on the runs this process claims (default: host:pid).")
@click.option("--poll-interval", type=float, default=1.0, show_default=True, callback=_positive,
              help="Seconds between claims when idle, should a notification be missed.")
@click.option("--lease", type=float, callback=_positive,
              help="Seconds without a heartbeat after which a running run counts as lost "
                   "(default: the database's jobledger.lease setting, else 60).")
@click.option("--grace", type=float, default=30.0, show_default=True,
              help="On SIGTERM/SIGINT, seconds the runs in flight get to finish before they are "
                   "cancelled and released back to pending.")
@click.option("--retry-backoff", type=float, default=1.0, show_default=True, callback=_positive,
              help="Seconds before the first retry of a transient failure; doubles with each attempt.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
              default="info", show_default=True,
              help="info logs one line per run event (claimed, succeeded, failed, retried, cancelled, released).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: one JSON object per line, with the event, run id and job as fields.")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="Serve Prometheus metrics on this port at /metrics (0: off).")
@click.option("--metrics-address", default="0.0.0.0", show_default=True, metavar="ADDRESS",
              help="Address the metrics endpoint listens on (0.0.0.0: every interface).")
@common.duration_option("--prune-every",
                        "Apply the retention rules below this often (e.g. 1h; default: never).")
@common.duration_option("--prune-succeeded",
                        "With --prune-every: delete succeeded runs older than this (e.g. 7d).")
@common.duration_option("--prune-failed",
                        "With --prune-every: delete failed and cancelled runs older than this (e.g. 30d).")
@click.option("--prune-keep-last", type=click.IntRange(0), metavar="N",
              help="With --prune-every: per job, keep only the newest N finished runs.")
@click.option("--webhooks/--no-webhooks", default=True, show_default=True,
              help="Deliver the jobs' webhooks (docs/notifications.md) from this runner.")
@click.option("--webhook-attempts", type=click.IntRange(1, 100), default=10, show_default=True, metavar="N",
              help="Give a webhook delivery up after N failed POSTs (retried after 1 s, 2 s, 4 s ... at most 1 h).")
@click.option("--affinity/--no-affinity", default=True, show_default=True,
              help="An executor takes the next run of the job it just ran first, at equal priority "
                   "(docs/runner.md, \"Affinity\").")
def runner(dsn: str | None, concurrency: int, connect_as_owner: bool | None, drain: bool, worker_id: str | None, poll_interval: float,
           lease: float | None, grace: float, retry_backoff: float, log_level: str, log_format: str,
           metrics_port: int, metrics_address: str, prune_every: datetime.timedelta | None,
           prune_succeeded: datetime.timedelta | None, prune_failed: datetime.timedelta | None,
           prune_keep_last: int | None, webhooks: bool, webhook_attempts: int, affinity: bool) -> None:
    """Claim pending runs and execute them, until stopped (or drained)."""
    from jobledger.runner import allocator, observe, process

    allocator.configure()  # before any thread: malloc settings for the whole process

    if prune_every is not None and prune_every.total_seconds() <= 0:
        raise click.BadParameter("must be positive", param_hint="--prune-every")
    rules = (prune_succeeded, prune_failed, prune_keep_last)
    if prune_every is not None and all(rule is None for rule in rules):
        raise click.UsageError("--prune-every needs --prune-succeeded, --prune-failed and/or --prune-keep-last")
    if prune_every is None and any(rule is not None for rule in rules):
        raise click.UsageError("--prune-succeeded, --prune-failed and --prune-keep-last need --prune-every")
    observe.configure_logging(log_level, log_format)
    if connect_as_owner is None:
        logging.getLogger("jobledger.runner").warning(
            "runs execute with SET ROLE on the runner's connections, which a job can undo (RESET ROLE); "
            "use --connect-as-owner (docs/runner.md), or --set-role to choose this explicitly")
    if log_level.lower() != "debug":
        # psycopg warns once per queued statement when a pipeline's connection
        # dies; the runner reports the lost connection itself.
        logging.getLogger("psycopg").setLevel(logging.ERROR)
    config = process.Config(
        conninfo=common.conninfo(dsn),
        concurrency=concurrency,
        connect_as_owner=bool(connect_as_owner),
        drain=drain,
        worker=worker_id,
        poll_interval=poll_interval,
        lease=lease,
        grace=grace,
        retry_backoff=retry_backoff,
        metrics_port=metrics_port,
        metrics_address=metrics_address,
        prune_every=prune_every.total_seconds() if prune_every is not None else None,
        prune_succeeded=prune_succeeded,
        prune_failed=prune_failed,
        prune_keep_last=prune_keep_last,
        webhooks=webhooks,
        webhook_max_attempts=webhook_attempts,
        affinity=affinity,
    )
    try:
        code = process.Runner(config).run()
    except process.StartupError as exc:
        raise common.CliError(exc.category, str(exc)) from None
    sys.exit(code)


# `jobledger result` (outputs and lake destinations, 0.4.0): in its own module.
from jobledger.cli import result_command  # noqa: E402

main.add_command(result_command.result)
commands.register(main)
