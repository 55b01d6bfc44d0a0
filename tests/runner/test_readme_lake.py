"""The README's "Lake tables" section, run as written against moto's S3:
its SQL defines the two jobs (as a role granted the prefix), a real runner
writes them, and its Python reads each table back as the run left it with
deltalake, Polars and lance.  Only names are substituted: the bucket, the
role, the versions (the runs' snapshot_ids) and the S3 settings."""

from __future__ import annotations

import pathlib
import re

import psycopg
from psycopg import rows

import runnertools
from s3server import bucket, s3_server  # noqa: F401 (fixtures)

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def _blocks(language: str, section: str) -> list[str]:
    text = README.read_text()
    start = text.index(section)
    body = text[start:text.index("\n## ", start + 1)]
    return re.findall(rf"```{language}\n(.*?)```", body, re.S)


def test_the_readme_lake_section_runs_as_written(db, s3_server, bucket, make_role, connect,  # noqa: F811
                                                 start_runner) -> None:
    tour = _blocks("sql", "## A tour in psql")[0]
    db.execute(tour.replace("timestamptz '2026-11-01'", "timestamptz '2026-11-01 00:00+00'"))
    etl = make_role("etl")
    db.execute(f'GRANT SELECT ON public.events TO "{etl}"')
    define, versions = _blocks("sql", "## Lake tables")
    with connect() as conn:
        conn.execute("SET timezone = 'UTC'")
        script = define.replace("s3://lake/", f"s3://{bucket}/").replace("'etl'", f"'{etl}'")
        script = script.replace("SET ROLE etl;", f'SET ROLE "{etl}";')
        conn.execute(script)
        conn.execute("SELECT jobledger.submit_job('daily_counts_lake', '{\"day\": \"2026-11-01\"}')")
        conn.execute("SELECT jobledger.submit_job('kinds_lance')")
        conn.execute("SELECT jobledger.submit_job('daily_counts_lake', '{\"day\": \"2026-11-02\"}')")
    runner = start_runner("--drain")
    assert runner.wait() == 0, runner.log()
    with psycopg.connect(runnertools.dsn(db), row_factory=rows.dict_row) as conn:
        found = conn.execute(versions).fetchall()
        states = conn.execute("SELECT job, status, attempt, snapshot_id, error FROM jobledger.runs").fetchall()
        owners = conn.execute("SELECT DISTINCT owner FROM jobledger.job WHERE name <> 'daily_counts'").fetchall()
    assert owners == [{"owner": etl}]
    assert all(r["snapshot_id"] is not None for r in found), "\n".join(str(r["error"]) for r in states)
    delta_versions = sorted(int(r["snapshot_id"]) for r in found if r["job"] == "daily_counts_lake")
    lance_version = [int(r["snapshot_id"]) for r in found if r["job"] == "kinds_lance"]
    assert (delta_versions, lance_version) == ([0, 1], [1]), found
    delta_version = delta_versions[-1]

    [reading] = _blocks("python", "## Lake tables")
    code = (reading.replace("s3://lake/", f"s3://{bucket}/")
            .replace('{"AWS_REGION": "eu-west-1"}', repr(dict(s3_server)))
            .replace("counts_version = 3", f"counts_version = {delta_version}")
            .replace("kinds_version = 2", f"kinds_version = {lance_version[0]}"))
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - the README's own example
    counts = sorted(scope["counts"].to_pylist(), key=lambda r: (str(r["day"]), r["kind"]))
    assert [(str(r["day"]), r["kind"], r["n"]) for r in counts] == [
        ("2026-11-01", "buy", 480), ("2026-11-01", "view", 960),
        ("2026-11-02", "buy", 480), ("2026-11-02", "view", 960)]
    assert scope["frame"].height == 4
    assert sorted((r["kind"], r["n"]) for r in scope["kinds"].to_pylist()) == [("buy", 960), ("view", 1920)]
