"""jobs apply (job files: create, diff, idempotence, refusals), jobs list, jobs show."""

from __future__ import annotations

import json
import pathlib

import pytest

from clitools import one_line_error

JOB = """\
name: daily
description: events per day
destination: daily
mode: overwrite
timeout: 5 minutes
params:
  since: {type: date}
query: |
  SELECT at AS day, count(*) AS events FROM public.events WHERE at >= {since} GROUP BY at
"""


@pytest.fixture
def tables(db) -> None:
    db.execute("CREATE TABLE public.events (at date NOT NULL)")
    db.execute("CREATE TABLE public.daily (day date, events bigint)")


def _versions(db) -> list[dict]:
    return db.execute("SELECT job, version, mode, destination, timeout::text AS timeout, query"
                      " FROM jobledger.job_version ORDER BY job, version").fetchall()


def test_apply_creates_then_is_idempotent_then_versions_a_change(db, cli, tables, tmp_path) -> None:
    path = tmp_path / "daily.yaml"
    path.write_text(JOB)
    dry = cli("jobs", "apply", str(path), "--dry-run")
    assert dry.code == 0, dry
    assert "+ daily: new job" not in dry.out and "~ daily: new job" in dry.out
    assert "+destination: public.daily" in dry.out and "nothing applied" in dry.out
    assert _versions(db) == []

    applied = cli("jobs", "apply", str(path))
    assert applied.code == 0, applied
    assert "applied daily: version 1" in applied.out
    [v1] = _versions(db)
    assert (v1["mode"], v1["destination"], v1["timeout"]) == ("overwrite", "public.daily", "00:05:00")
    assert db.execute("SELECT description FROM jobledger.job").fetchone() == {"description": "events per day"}

    again = cli("jobs", "apply", str(tmp_path))  # the directory: the same file
    assert again.code == 0, again
    assert again.out.strip() == "= daily: unchanged (version 1)"
    assert len(_versions(db)) == 1

    path.write_text(JOB.replace("mode: overwrite", "mode: append").replace("5 minutes", "300"))
    plan = json.loads(cli("jobs", "apply", str(path), "--dry-run", "--json").out)
    assert [(p["job"], p["action"], p["applied"]) for p in plan] == [("daily", "new version", False)]
    assert "-mode: overwrite" in plan[0]["diff"] and "+mode: append" in plan[0]["diff"]
    assert not any(line[1:].startswith("timeout") for line in plan[0]["diff"] if line[:1] in "+-")  # 300 s = 5 min
    assert " timeout: 00:05:00" in plan[0]["diff"]
    changed = cli("jobs", "apply", str(path))
    assert changed.code == 0 and "applied daily: version 2" in changed.out
    assert [v["mode"] for v in _versions(db)] == ["overwrite", "append"]


def test_a_description_alone_updates_without_a_version(db, cli, tables, tmp_path) -> None:
    path = tmp_path / "daily.yml"
    path.write_text(JOB)
    assert cli("jobs", "apply", str(path)).code == 0
    path.write_text(JOB.replace("events per day", "events, per day"))
    result = cli("jobs", "apply", str(path))
    assert "description only" in result.out
    assert len(_versions(db)) == 1
    assert db.execute("SELECT description FROM jobledger.job").fetchone() == {"description": "events, per day"}


@pytest.mark.parametrize("text, reason", [
    (JOB + "schedule: daily\n", "unknown key(s) schedule"),
    (JOB.replace("mode: overwrite", "mode: replace"), "mode must be one of"),
    ("name: x\nquery: SELECT 1\n", "missing destination"),
    ("- just a list\n", "a job file is a mapping"),
    ("name: [unclosed\n", "not YAML"),
])
def test_invalid_job_files_are_refused_before_anything_is_applied(db, cli, tables, tmp_path, text, reason) -> None:
    (tmp_path / "a_good.yaml").write_text(JOB)
    (tmp_path / "b_bad.yaml").write_text(text)
    line = one_line_error(cli("jobs", "apply", str(tmp_path)), "job_file_invalid")
    assert "b_bad.yaml" in line and reason in line
    assert _versions(db) == []


def test_what_define_job_refuses_names_the_file(db, cli, tables, tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(JOB.replace("destination: daily", "destination: nowhere"))
    line = one_line_error(cli("jobs", "apply", str(path)), "destination_missing")
    assert str(path) in line and "job daily" in line


def test_jobs_list_and_show_with_the_diff_between_versions(db, cli, tables, tmp_path) -> None:
    path = tmp_path / "daily.yaml"
    path.write_text(JOB)
    cli("jobs", "apply", str(path))
    path.write_text(JOB.replace("count(*)", "count(at)"))
    cli("jobs", "apply", str(path))

    listed = cli("jobs", "list")
    assert listed.code == 0, listed
    assert listed.out.splitlines()[1].split()[:5] == ["daily", db.info.user, "2", "overwrite", "public.daily"]
    assert [j["name"] for j in json.loads(cli("jobs", "list", "--json").out)] == ["daily"]

    shown = cli("jobs", "show", "daily")
    assert shown.code == 0, shown
    assert "current version 2" in shown.out and "# changes in version 2" in shown.out
    assert "-  SELECT at AS day, count(*) AS events" in shown.out
    assert "+  SELECT at AS day, count(at) AS events" in shown.out
    data = json.loads(cli("jobs", "show", "daily", "--json").out)
    assert [v["version"] for v in data["versions"]] == [1, 2] and data["versions"][0]["diff"] is None
    one_line_error(cli("jobs", "show", "nope"), "unknown_job")
