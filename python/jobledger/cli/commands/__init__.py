"""The ``jobledger`` commands besides ``runner`` (client side).

* ``common``: connecting (``--dsn``, ``DATABASE_URL``, ``PG*``), errors as one
  line with their category, exit codes, output (rich tables or ``--json``);
* ``runs``: submit, runs, show, cancel, retry;
* ``jobs``: jobs list, jobs show, jobs apply (YAML job files, ``jobfile``);
* ``admin``: prune, status;
* ``schedules``: schedules, backfill (and submit --range).

Their SQL is in queries.sql (named blocks).
"""

from __future__ import annotations

import click


def register(main: click.Group) -> None:
    from jobledger.cli.commands import admin, jobs, runs, schedules

    for command in (runs.submit, runs.runs, runs.show, runs.cancel, runs.retry, jobs.jobs, admin.prune,
                    admin.status, schedules.schedules, schedules.backfill_command):
        main.add_command(command)
