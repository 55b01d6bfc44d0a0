"""jobs list, jobs show, jobs apply: jobs and their versions, job files."""

from __future__ import annotations

import difflib
import json
import pathlib
from typing import Any

import click
import psycopg

from jobledger.cli.commands import common, jobfile


@click.group(cls=common.Group)
def jobs() -> None:
    """Jobs: list them, show one with its versions, apply job files."""


@jobs.command("list")
@common.json_option
@common.dsn_option
def list_jobs(as_json: bool, dsn: str | None) -> None:
    """The jobs you may see, with their run counts."""
    with common.connect(dsn, need=(0, 2, 0)) as conn:
        found = conn.execute(common.query("jobs")).fetchall()
    if as_json:
        common.print_json(found)
        return
    common.table(None, ["job", "owner", "v", "mode", "destination", "runs", "pending", "running", "max running",
                        "paused since", "ok", "failed", "last success", "p50", "description"], [
        [j["name"], j["owner"], j["current_version"], j["mode"], j["destination"], j["runs"], j["pending"],
         j["running"], j["max_running"], j["paused_at"], j["succeeded"], j["failed"], j["last_success"],
         j["p50_duration"], j["description"]]
        for j in found])


@jobs.command("pause")
@click.argument("name")
@common.dsn_option
def pause(name: str, dsn: str | None) -> None:
    """Pause job NAME: its pending runs are not claimed (running ones
    finish) and new submits still queue, until `jobs resume`."""
    with common.connect(dsn, need=(0, 6, 0)) as conn:
        changed = conn.execute(common.query("pause"), {"name": name}).fetchone()["changed"]
    click.echo(f"paused {name}" if changed else f"{name} was paused already")


@jobs.command("resume")
@click.argument("name")
@common.dsn_option
def resume(name: str, dsn: str | None) -> None:
    """Resume job NAME: its pending runs are claimed again."""
    with common.connect(dsn, need=(0, 6, 0)) as conn:
        changed = conn.execute(common.query("resume"), {"name": name}).fetchone()["changed"]
    click.echo(f"resumed {name}" if changed else f"{name} was not paused")


@jobs.command("max-running")
@click.argument("name")
@click.argument("limit", metavar="N|none")
@common.dsn_option
def max_running(name: str, limit: str, dsn: str | None) -> None:
    """At most N runs of job NAME running at once, across every runner
    (`none`: no limit)."""
    if limit.lower() == "none":
        value = None
    elif limit.isdigit() and int(limit) >= 1:
        value = int(limit)
    else:
        raise click.BadParameter(f"{limit!r} is not a positive whole number nor none", param_hint="N")
    with common.connect(dsn, need=(0, 6, 0)) as conn:
        conn.execute(common.query("set_max_running"), {"name": name, "max_running": value})
    click.echo(f"{name}: at most {value} running" if value else f"{name}: no limit")


def _version_definition(job: dict[str, Any], version: dict[str, Any]) -> dict[str, Any]:
    return jobfile.definition(name=job["name"], description=job["description"], query=version["query"],
                              destination=version["destination"], mode=version["mode"], params=version["params"],
                              timeout=version["timeout"], max_attempts=version["max_attempts"])


def diff_text(old: str, new: str, old_label: str, new_label: str) -> list[str]:
    return [line.rstrip("\n") for line in difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), old_label, new_label, n=2)]


def print_diff(lines: list[str]) -> None:
    out = common.console()
    from rich.markup import escape

    for line in lines:
        style = "green" if line.startswith("+") else "red" if line.startswith("-") else "cyan" if line.startswith("@@") else ""
        out.print(f"[{style}]{escape(line)}[/]" if style else escape(line))


@jobs.command("show")
@click.argument("name")
@common.json_option
@common.dsn_option
def show_job(name: str, as_json: bool, dsn: str | None) -> None:
    """Job NAME: its definition as a job file, its versions and what changed
    from each to the next."""
    with common.connect(dsn, need=(0, 2, 0)) as conn:
        job = conn.execute(common.query("job"), {"name": name}).fetchone()
        if job is None:
            raise common.CliError("unknown_job", f'there is no job "{name}" (or you may not see it)')
        versions = conn.execute(common.query("job_versions"), {"name": name}).fetchall()
    texts = [jobfile.dump(_version_definition(job, v)) for v in versions]
    diffs = {v["version"]: diff_text(texts[i - 1], texts[i], f"version {versions[i - 1]['version']}",
                                     f"version {v['version']}")
             for i, v in enumerate(versions) if i > 0}
    if as_json:
        common.print_json({**job, "versions": [{**v, "diff": diffs.get(v["version"])} for v in versions]})
        return
    out = common.console()
    out.print(f"[bold]job {job['name']}[/], owner {job['owner']}, current version {job['current_version']}")
    out.print(f"[bold]# version {job['current_version']} as a job file[/]")
    current = next((t for v, t in zip(versions, texts) if v["version"] == job["current_version"]), "")
    click.echo(current, nl=False)
    common.table("versions", ["version", "created", "by", "mode", "destination"], [
        [v["version"], v["created_at"], v["created_by"], v["mode"], v["destination"]] for v in versions])
    for version, lines in diffs.items():
        out.print(f"[bold]# changes in version {version}[/]")
        print_diff(lines)


@jobs.command("apply")
@click.argument("path", type=click.Path(exists=True, path_type=pathlib.Path))
@click.option("--dry-run", is_flag=True, help="Only print what would change.")
@common.json_option
@common.dsn_option
def apply(path: pathlib.Path, dry_run: bool, as_json: bool, dsn: str | None) -> None:
    """Define the jobs of YAML job files: PATH is one file, or a directory
    whose *.yaml / *.yml files each hold one job.  Prints what changes
    against the database first; --dry-run stops there."""
    files = jobfile.files(path)
    definitions = [jobfile.load(f) for f in files]  # every file is checked before anything is applied
    names = [d["name"] for d in definitions]
    twice = {n for n in names if names.count(n) > 1}
    if twice:
        raise common.CliError("job_file_invalid", f"job {sorted(twice)[0]} is defined by more than one file")
    plans = []
    with common.connect(dsn, need=(0, 2, 0)) as conn:
        for source, wanted in zip(files, definitions):
            plans.append(_plan(conn, source, wanted))
        if not as_json:
            for plan in plans:
                _print_plan(plan)
        if not dry_run:
            for plan in plans:
                if plan["action"] == "unchanged":
                    continue
                d = plan["definition"]
                try:
                    plan["version"] = conn.execute(common.query("define"), {
                        **d, "params": None if d["params"] is None else json.dumps(d["params"])}).fetchone()["version"]
                except psycopg.Error as exc:
                    error = common.from_database_error(exc)
                    raise common.CliError(error.category, f"{plan['file']}: job {d['name']}: {error.message}") from None
                if not as_json:
                    click.echo(f"applied {d['name']}: version {plan['version']}")
    if as_json:
        common.print_json([{k: v for k, v in p.items() if k not in ("definition",)} | {"applied": not dry_run}
                           for p in plans])
    elif dry_run:
        changed = sum(p["action"] != "unchanged" for p in plans)
        click.echo(f"dry run: {changed} of {len(plans)} job(s) would change; nothing applied")


def _plan(conn: psycopg.Connection, source: pathlib.Path, wanted: dict[str, Any]) -> dict[str, Any]:
    """What applying ``wanted`` changes, compared as define_job compares."""
    normal = conn.execute(common.query("normalise_job_file"), {
        "destination": wanted["destination"],
        "params": None if wanted["params"] is None else json.dumps(wanted["params"]),
        "timeout": wanted["timeout"]}).fetchone()
    job = conn.execute(common.query("job"), {"name": wanted["name"]}).fetchone()
    current = None
    if job is not None and job["current_version"] is not None:
        current = next((v for v in conn.execute(common.query("job_versions"), {"name": wanted["name"]})
                        if v["version"] == job["current_version"]), None)
    new_text = jobfile.dump(jobfile.definition(**{**wanted, "destination": normal["destination"],
                                                  "params": normal["params"], "timeout": normal["timeout"]}))
    plan: dict[str, Any] = {"file": str(source), "job": wanted["name"], "definition": wanted}
    if current is None:
        plan.update(action="create", diff=diff_text("", new_text, "(none)", str(source)))
        return plan
    # define_job keeps the description when a file has none.
    old_text = jobfile.dump(_version_definition(
        {**job, "description": job["description"] if wanted["description"] is not None else None}, current))
    if wanted["description"] is None:
        new_text = jobfile.dump(jobfile.definition(**{**wanted, "destination": normal["destination"],
                                                      "params": normal["params"], "timeout": normal["timeout"],
                                                      "description": None}))
    versioned = any(current[k] != v for k, v in (
        ("query", wanted["query"]), ("destination", normal["destination"]), ("mode", wanted["mode"]),
        ("params", normal["params"]), ("timeout", normal["timeout"]), ("max_attempts", wanted["max_attempts"])))
    if versioned:
        action = "new version"
    elif wanted["description"] is not None and wanted["description"] != job["description"]:
        action = "update description"
    else:
        action = "unchanged"
    plan.update(action=action, current_version=job["current_version"],
                diff=diff_text(old_text, new_text, f"{wanted['name']} version {job['current_version']}", str(source))
                if action != "unchanged" else [])
    return plan


def _print_plan(plan: dict[str, Any]) -> None:
    out = common.console()
    if plan["action"] == "unchanged":
        out.print(f"= {plan['job']}: unchanged (version {plan['current_version']})")
        return
    what = {"create": "new job", "new version": f"new version after {plan.get('current_version')}",
            "update description": "description only (no new version)"}[plan["action"]]
    out.print(f"[bold]~ {plan['job']}: {what}[/] ({plan['file']})")
    print_diff(plan["diff"])
