"""prune and status."""

from __future__ import annotations

import datetime

import click

import jobledger
from jobledger.cli import durations
from jobledger.cli.commands import common


@click.command()
@common.duration_option("--succeeded", "Delete succeeded runs that finished longer ago than this (e.g. 7d).")
@common.duration_option("--failed", "Delete failed and cancelled runs that finished longer ago than this (e.g. 30d).")
@common.duration_option("--older-than", "Both ages at once (the --succeeded/--failed given win).")
@click.option("--keep-last", type=click.IntRange(0), metavar="N",
              help="Per job, keep only the newest N finished runs.")
@click.option("--job", help="Only this job's runs.")
@common.json_option
@common.dsn_option
def prune(succeeded: datetime.timedelta | None, failed: datetime.timedelta | None,
          older_than: datetime.timedelta | None, keep_last: int | None, job: str | None, as_json: bool,
          dsn: str | None) -> None:
    """Delete finished runs by age and/or per-job count (never pending or
    running ones).  Needs EXECUTE on jobledger.prune."""
    succeeded = succeeded if succeeded is not None else older_than
    failed = failed if failed is not None else older_than
    if succeeded is None and failed is None and keep_last is None:
        raise click.UsageError("say what to prune: --succeeded, --failed, --older-than and/or --keep-last")
    with common.connect(dsn) as conn:
        deleted = conn.execute(common.query("prune"), {
            "succeeded": succeeded, "failed": failed, "keep_last": keep_last, "job": job}).fetchone()["deleted"]
    if as_json:
        common.print_json({"deleted": deleted})
    else:
        click.echo(f"pruned {deleted} run(s)")


@click.command()
@common.json_option
@common.dsn_option
def status(as_json: bool, dsn: str | None) -> None:
    """Versions, runners alive, queue depth by job, the oldest pending run."""
    with common.connect(dsn) as conn:
        server = conn.execute(common.query("server")).fetchone()
        workers = conn.execute(common.query("workers")).fetchall()
        queue = conn.execute(common.query("queue")).fetchall()
        oldest = conn.execute(common.query("oldest_pending")).fetchone()
        paused = conn.execute(common.query("paused_jobs")).fetchall()
    alive = [w for w in workers if w["state"] == "alive"]
    report = {
        "database": server["database"], "server_version": server["server_version"],
        "extension_version": server["extension_version"], "package_version": jobledger.__version__,
        "other_versions_available": server["other_versions_available"],
        "runners_alive": len(alive), "workers": workers, "queue": queue, "oldest_pending": oldest,
        "paused_jobs": paused,
    }
    if as_json:
        common.print_json(report)
        return
    out = common.console()
    mismatch = "" if server["extension_version"] == jobledger.__version__ else "  [yellow](differ)[/]"
    out.print(f"[bold]database[/]          {server['database']} (PostgreSQL {server['server_version']})")
    out.print(f"[bold]extension[/]         jobledger {server['extension_version']}")
    out.print(f"[bold]package[/]           jobledger {jobledger.__version__}{mismatch}")
    out.print(f"[bold]runners alive[/]     {len(alive)}")
    pending = sum(q["ready"] + q["scheduled"] for q in queue)
    out.print(f"[bold]pending runs[/]      {pending} ({sum(q['ready'] for q in queue)} ready)")
    if oldest:
        out.print(f"[bold]oldest pending[/]    {oldest['id']} ({oldest['job']}), waiting "
                  f"{durations.show(oldest['age'])}")
    if paused:
        out.print("[bold]paused jobs[/]       " + ", ".join(
            f"{p['job']} (since {common.cell_text(p['paused_at'])}, by {p['paused_by']})" for p in paused))
    if workers:
        common.table("runners", ["worker", "state", "host", "pid", "version", "executors", "in flight",
                                 "started", "last heartbeat"], [
            [w["worker"], w["state"], w["hostname"], w["pid"], w["version"], w["concurrency"], w["runs_in_flight"],
             w["started_at"], f"{durations.show(w['heartbeat_age'])} ago"] for w in workers])
    if queue:
        common.table("queue", ["job", "ready", "scheduled", "running", "max running", "paused", "oldest pending"], [
            [q["job"], q["ready"], q["scheduled"], q["running"], q["max_running"], "paused" if q["paused"] else "",
             q["oldest_pending"]] for q in queue])
