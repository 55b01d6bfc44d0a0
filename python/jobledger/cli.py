"""The ``jobledger`` command (client side: needs the ``client`` extra).

``jobledger runner`` connects with the standard libpq settings: ``--dsn``,
else ``DATABASE_URL``, else the ``PG*`` environment variables and their
defaults, exactly as psql would.
"""

from __future__ import annotations

import logging
import os
import sys

import click

import jobledger


@click.group()
@click.version_option(jobledger.__version__, prog_name="jobledger")
def main() -> None:
    """jobledger: parameterised SQL jobs with a run ledger in PostgreSQL."""


def _positive(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    if value is not None and value <= 0:
        raise click.BadParameter("must be positive")
    return value


@main.command()
@click.option("--dsn", help="libpq connection string or URI (default: DATABASE_URL, else the PG* variables).")
@click.option("--concurrency", "-c", type=click.IntRange(1, 256), default=2, show_default=True,
              help="Runs executed at once; one database connection each (plus one to listen).")
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
              default="info", show_default=True)
def runner(dsn: str | None, concurrency: int, drain: bool, worker_id: str | None, poll_interval: float,
           lease: float | None, grace: float, retry_backoff: float, log_level: str) -> None:
    """Claim pending runs and execute them, until stopped (or drained)."""
    from jobledger.runner import process

    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if log_level.lower() != "debug":
        # psycopg warns once per queued statement when a pipeline's connection
        # dies; the runner reports the lost connection itself.
        logging.getLogger("psycopg").setLevel(logging.ERROR)
    config = process.Config(
        conninfo=dsn if dsn is not None else os.environ.get("DATABASE_URL", ""),
        concurrency=concurrency,
        drain=drain,
        worker=worker_id,
        poll_interval=poll_interval,
        lease=lease,
        grace=grace,
        retry_backoff=retry_backoff,
    )
    try:
        code = process.Runner(config).run()
    except process.StartupError as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(code)


# `jobledger result` (outputs and lake destinations, 0.4.0): in its own module.
from jobledger import result_command  # noqa: E402

main.add_command(result_command.result)
