"""A dump of an older release restored onto this one (issue 13, item 5).

The database is made by release 0.4.0 itself: its frozen install script and
its frozen Python package (`make install RELEASES=...`; `make test` installs
every release), jobs defined, granted and submitted through 0.4.0's own API.
It is dumped with the server's pg_dump and restored into a new database
with the very commands of the section "Restoring a dump of an older
version" of docs/upgrading-and-backups.md (read from that page, only `make
install` left out, which `make test` did).  Every row comes back, the update does to it what an in-place
upgrade does (version checks, privileges moved with the functions), and jobs
run there.  A restore that fails leaves nothing behind.
"""

from __future__ import annotations

import pathlib
import re
import subprocess
import uuid
from typing import Any, Iterator

import psycopg
import pytest
from psycopg import rows, sql

import assemble
import dbtools
import runnertools

ROOT = pathlib.Path(__file__).resolve().parents[2]
OLD = "0.4.0"
MARK = "# restore-older-dump"

# The rows 0.4.0 wrote, by the columns 0.4.0 had (the update adds others).
COMPARED = {
    "jobledger.job": ("name", "name, owner, description, current_version, created_at"),
    "jobledger.job_version": ("job, version", "job, version, query, params, destination, mode, timeout,"
                                              " max_attempts, created_by, created_at"),
    "jobledger.job_grant": ("job, grantee", "job, grantee, granted_by, granted_at"),
    "jobledger.run": ("id", "id, job, job_version, parameters, rendered_sql, status, attempt, submitted_by,"
                            " idempotency_key, created_at"),
}


def readme_sequences() -> dict[str, str]:
    """The restore sequences of docs/upgrading-and-backups.md by kind (archive, plain)."""
    text = (ROOT / "docs" / "upgrading-and-backups.md").read_text()
    found = {}
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        first = block.splitlines()[0]
        if first.startswith(MARK):
            kind = "plain" if "(plain)" in first else "archive"
            found[kind] = block
    return found


def _contents(conn: psycopg.Connection) -> dict[str, list[Any]]:
    found = {}
    for table, (order, columns) in COMPARED.items():
        query = sql.SQL("SELECT to_jsonb(t) AS r FROM (SELECT {} FROM {} ORDER BY {}) AS t").format(
            sql.SQL(columns), sql.SQL(table), sql.SQL(order))
        found[table] = [row["r"] for row in conn.execute(query)]
    return found


@pytest.fixture
def old_dump(empty_db: psycopg.Connection, make_role: Any, tmp_path: pathlib.Path) -> Iterator[dict[str, Any]]:
    """A database made, filled and dumped by jobledger 0.4.0."""
    conn = empty_db
    conn.execute(sql.SQL("CREATE EXTENSION jobledger VERSION {} CASCADE").format(sql.Literal(OLD)))
    # The release's own package is installed and runs.
    assert conn.execute("SELECT jobledger.version() AS v").fetchone() == {"v": OLD}
    owner, submitter, runner_role = make_role("owner"), make_role("submitter"), make_role("runner")
    conn.execute("CREATE TABLE public.landed (n integer, note text)")
    conn.execute(sql.SQL("GRANT SELECT, INSERT ON public.landed TO {}").format(sql.Identifier(owner)))
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(owner)))
    runnertools.define(conn, "land", "SELECT {n}::integer AS n, {note}::text AS note", "public.landed",
                       params={"n": {"type": "integer"}, "note": {"type": "text"}})
    conn.execute("SELECT jobledger.grant_job('land', %s)", (submitter,))
    conn.execute("RESET ROLE")
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(submitter)))
    pending = runnertools.submit(conn, "land", {"n": 1, "note": "it's 0.4.0's"}, idempotency_key="one")
    cancelled = runnertools.submit(conn, "land", {"n": 2, "note": "never"})
    conn.execute("SELECT jobledger.cancel_run(%s)", (cancelled,))
    conn.execute("RESET ROLE")
    # A DBA's grant on a runner transition, where 0.4.0 kept it.
    conn.execute(sql.SQL("GRANT EXECUTE ON FUNCTION jobledger.claim_runs(text, integer) TO {}").format(
        sql.Identifier(runner_role)))
    dumps = {}
    for kind, fmt in (("archive", "c"), ("plain", "p")):
        dumps[kind] = tmp_path / f"mydb.{'dump' if fmt == 'c' else 'sql'}"
        runnertools.pg_tool(conn, runnertools.pg_bin("pg_dump"), "-F", fmt, "-f", str(dumps[kind]),
                            conn.info.dbname)
    yield {"conn": conn, "dumps": dumps, "before": _contents(conn), "owner": owner, "submitter": submitter,
           "runner_role": runner_role, "pending": pending, "cancelled": cancelled}
    conn.execute(sql.SQL("DROP OWNED BY {}, {}, {}").format(
        sql.Identifier(owner), sql.Identifier(submitter), sql.Identifier(runner_role)))


def _restore(old_dump: dict[str, Any], kind: str, newdb: str, old: str = OLD) -> subprocess.CompletedProcess[str]:
    """Run the documented sequence (without its make install) in the dump's directory."""
    block = readme_sequences()[kind]
    assert re.search(r"^make install RELEASES=\$OLD\b", block, re.M), block
    script = "\n".join(line for line in block.splitlines() if not line.startswith("make install"))
    script = re.sub(r"^OLD=\S+", f"OLD={old}", script, flags=re.M).replace("newdb", newdb)
    workdir = old_dump["dumps"][kind].parent
    return subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=workdir,
                          env=runnertools.pg_tool_env(old_dump["conn"]), capture_output=True, text=True)


def _drop(conn: psycopg.Connection, name: str) -> None:
    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_the_readme_has_both_sequences_and_every_release_its_package() -> None:
    assert set(readme_sequences()) == {"archive", "plain"}
    for version in assemble.chosen_releases("all"):
        assert assemble.released_package(version).is_file(), version


@pytest.mark.parametrize("kind", ["archive", "plain"])
def test_an_older_dump_restores_at_the_current_version_and_runs(old_dump: dict[str, Any], kind: str) -> None:
    conn = old_dump["conn"]
    newdb = f"jl_newdb_{uuid.uuid4().hex[:10]}"
    try:
        done = _restore(old_dump, kind, newdb)
        assert done.returncode == 0, done.stderr
        assert "ERROR" not in done.stderr, done.stderr
        params = {**dbtools.conninfo(conn), "dbname": newdb}
        with psycopg.connect(**params, autocommit=True, row_factory=rows.dict_row) as new:
            assert new.execute("SELECT extversion FROM pg_extension WHERE extname = 'jobledger'"
                               ).fetchone() == {"extversion": assemble.current_version()}
            assert _contents(new) == old_dump["before"]
            # What the update adds to an upgraded database, it added here.
            checks = new.execute("SELECT job, version, problem FROM jobledger.job_version_check").fetchall()
            assert checks == [{"job": "land", "version": 1, "problem": None}]
            granted = new.execute(
                "SELECT has_function_privilege(%s, 'jobledger_internal.claim_runs(text, integer)', 'EXECUTE') AS g",
                (old_dump["runner_role"],)).fetchone()
            assert granted == {"g": True}
            # The pending run runs; the cancelled one stays cancelled; the
            # grant and the idempotency key still hold for the submitter.
            with psycopg.connect(**{**params, "user": old_dump["submitter"]}, autocommit=True,
                                 row_factory=rows.dict_row) as sub:
                again = runnertools.submit(sub, "land", {"n": 1, "note": "it's 0.4.0's"}, idempotency_key="one")
                assert again == old_dump["pending"]
                fresh = runnertools.submit(sub, "land", {"n": 3, "note": "new"})
            runnertools.drain(new, f"restored-{kind}")
            states = {r["id"]: r["status"] for r in new.execute("SELECT id, status::text FROM jobledger.run")}
            assert states == {old_dump["pending"]: "succeeded", fresh: "succeeded",
                              old_dump["cancelled"]: "cancelled"}
            landed = new.execute("SELECT n, note FROM public.landed ORDER BY n").fetchall()
            assert landed == [{"n": 1, "note": "it's 0.4.0's"}, {"n": 3, "note": "new"}]
    finally:
        _drop(conn, newdb)


def test_a_restore_that_fails_leaves_nothing(old_dump: dict[str, Any]) -> None:
    """Naming another release than the dump's fails in a COPY (0.3.0 has no
    jobledger.output); the one transaction leaves the new database empty."""
    conn = old_dump["conn"]
    newdb = f"jl_newdb_{uuid.uuid4().hex[:10]}"
    try:
        done = _restore(old_dump, "archive", newdb, old="0.3.0")
        assert done.returncode != 0
        assert "ERROR" in done.stderr, done.stderr
        params = {**dbtools.conninfo(conn), "dbname": newdb}
        with psycopg.connect(**params, autocommit=True, row_factory=rows.dict_row) as new:
            left = new.execute(
                "SELECT (SELECT count(*) FROM pg_extension WHERE extname = 'jobledger') AS ext,"
                "       (SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'jobledger%%') AS schemas,"
                "       (SELECT count(*) FROM pg_class WHERE relname = 'landed') AS tables").fetchone()
            assert left == {"ext": 0, "schemas": 0, "tables": 0}
    finally:
        _drop(conn, newdb)


def test_make_install_offers_no_older_release_unless_asked() -> None:
    listed = subprocess.run(["python3", str(ROOT / "sql" / "assemble.py"), "--list"], check=True,
                            capture_output=True, text=True).stdout.split()
    names = {pathlib.Path(p).name for p in listed}
    current = assemble.current_version()
    older = assemble.chosen_releases("all")
    assert names == {f"jobledger--{current}.sql"} | {f"jobledger--{v}--{current}.sql" for v in older}
    asked = subprocess.run(["python3", str(ROOT / "sql" / "assemble.py"), "--list", "--releases", OLD],
                           check=True, capture_output=True, text=True).stdout.split()
    assert {pathlib.Path(p).name for p in asked} == names | {f"jobledger--{OLD}.sql"}
    wrong = subprocess.run(["python3", str(ROOT / "sql" / "assemble.py"), "--list", "--releases", "9.9.9"],
                           capture_output=True, text=True)
    assert wrong.returncode != 0 and "no older release 9.9.9" in wrong.stderr


def test_each_frozen_package_is_its_release() -> None:
    """Each archive holds python/ and the control file as they were at the
    commit that froze that release's install script."""
    if subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--git-dir"], capture_output=True).returncode:
        pytest.skip("not a git checkout: the archives cannot be compared with the history")
    for version in assemble.chosen_releases("all"):
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "log", "-1", "--format=%H", "--", f"sql/released/jobledger--{version}.sql"],
            check=True, capture_output=True, text=True).stdout.strip()
        expected = subprocess.run(
            ["git", "-C", str(ROOT), "archive", "--format=tar", f"--prefix=jobledger-{version}/", commit,
             "python", "sql/jobledger.control"], check=True, capture_output=True).stdout
        actual = subprocess.run(["gzip", "-dc", str(assemble.released_package(version))], check=True,
                                capture_output=True).stdout
        assert actual == expected, version
        assert f"default_version = '{version}'" in actual.decode("utf-8", "replace"), version
