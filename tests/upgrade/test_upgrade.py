"""DBA upgrades: every update path ends where a fresh install does, and
released SQL is never edited."""

from __future__ import annotations

import pathlib
import shutil

import psycopg
import pytest

import assemble
import dbtools

ROOT = pathlib.Path(__file__).resolve().parents[2]


CURRENT = assemble.current_version()
OLDER = [v for v in assemble.released_versions() if assemble.version_key(v) < assemble.version_key(CURRENT)]


def test_released_sql_is_unchanged() -> None:
    assert assemble.frozen_problems() == []


def test_current_version_is_released_or_the_next_one() -> None:
    """Either the control file names a released (frozen) version, or the
    version in development: newer than every released one, with its own
    migrations.  The session that resolves its issue freezes it
    (`python3 sql/assemble.py --freeze`); from then on it never changes."""
    released = assemble.released_versions()
    assert released, "nothing released: 0.1.0 is frozen in sql/released/"
    if CURRENT not in released:
        assert assemble.version_key(CURRENT) > assemble.version_key(released[-1])
        assert (ROOT / "sql" / "migrations" / CURRENT).is_dir()


@pytest.fixture
def sources(tmp_path: pathlib.Path) -> pathlib.Path:
    for part in ("sql", "plpython"):
        shutil.copytree(ROOT / part, tmp_path / part)
    return tmp_path


def test_editing_a_released_migration_is_caught(sources: pathlib.Path) -> None:
    migration = next((sources / "sql" / "migrations" / "0.1.0").glob("*.sql"))
    migration.write_text(migration.read_text() + "\n-- an innocent comment\n")
    problems = assemble.frozen_problems(sources)
    assert any(f"0.1.0/{migration.stem} of released 0.1.0 was edited" in p for p in problems)


def test_changing_released_sql_without_a_new_version_is_caught(sources: pathlib.Path) -> None:
    # Released: the copy's current version is frozen, as when its issue landed.
    version = assemble.current_version(sources)
    (sources / "sql" / "released" / f"jobledger--{version}.sql").write_text(assemble.install_script(sources))
    assert assemble.frozen_problems(sources) == []
    view = sources / "sql" / "objects" / "40_views.sql"
    view.write_text(view.read_text().replace("r.rows_written,", "r.rows_written, r.metrics,"))
    problems = assemble.frozen_problems(sources)
    assert any("bump default_version" in p for p in problems)


def test_installed_scripts_are_the_assembled_ones() -> None:
    """`make install` ran with these sources (a stale install fails here)."""
    sharedir = pathlib.Path(dbtools.pg_config("--sharedir")) / "extension"
    libdir = dbtools.pg_config("--pkglibdir") + "/jobledger"
    for name, text in assemble.scripts().items():
        assert (sharedir / name).read_text() == text.replace(assemble.LIBDIR_MARK, libdir), name


def test_update_paths_reach_the_current_version(empty_db: psycopg.Connection) -> None:
    paths = empty_db.execute(
        "SELECT source FROM pg_extension_update_paths('jobledger') WHERE target = %s AND path IS NOT NULL",
        (CURRENT,),
    ).fetchall()
    assert sorted(r["source"] for r in paths) == sorted(OLDER)


@pytest.fixture(scope="module")
def fresh_snapshot(jobledger_server) -> dict:
    with dbtools.scratch_database(jobledger_server) as conn:
        conn.execute("CREATE EXTENSION jobledger CASCADE")
        return dbtools.catalog_snapshot(conn)


@pytest.mark.parametrize("old", OLDER)
def test_upgrade_equals_fresh_install(jobledger_server, fresh_snapshot: dict, old: str) -> None:
    with dbtools.scratch_database(jobledger_server) as conn:
        conn.execute("CREATE EXTENSION jobledger VERSION %s CASCADE" % psycopg.sql.quote(old))
        conn.execute("ALTER EXTENSION jobledger UPDATE")
        assert dbtools.snapshot_differences(dbtools.catalog_snapshot(conn), fresh_snapshot) == []
        assert conn.execute("SELECT jobledger.version() AS v").fetchone() == {"v": CURRENT}


def test_snapshot_sees_what_an_upgrade_could_miss(jobledger_server, fresh_snapshot: dict) -> None:
    """The comparison above is only as good as the snapshot: it must notice
    a changed column, function, index, comment, grant and enum order."""
    changes = [
        "ALTER TABLE jobledger.run ALTER COLUMN priority SET DEFAULT 1",
        "CREATE OR REPLACE FUNCTION jobledger_internal.job_version_immutable() RETURNS trigger LANGUAGE plpgsql"
        " SET search_path = pg_catalog, jobledger, pg_temp AS $$ BEGIN RETURN NEW; END $$",
        "DROP INDEX jobledger.run_claim_idx",
        "COMMENT ON TABLE jobledger.job IS 'changed'",
        "GRANT INSERT ON jobledger.run TO PUBLIC",
        "ALTER POLICY run_visible ON jobledger.run USING (true)",
        "ALTER TYPE jobledger.run_status ADD VALUE 'paused' BEFORE 'running'",
    ]
    with dbtools.scratch_database(jobledger_server) as conn:
        conn.execute("CREATE EXTENSION jobledger CASCADE")
        assert dbtools.snapshot_differences(dbtools.catalog_snapshot(conn), fresh_snapshot) == []
        for change in changes:
            before = dbtools.catalog_snapshot(conn)
            conn.execute(change)
            assert dbtools.snapshot_differences(dbtools.catalog_snapshot(conn), before), change


@pytest.mark.parametrize("old", [v for v in OLDER if assemble.version_key(v) >= (0, 5, 0)])
def test_upgrade_gives_the_completion_grants_again(jobledger_server, make_role, old: str) -> None:
    """0.6.0 adds a metrics parameter to complete_run and complete_attached_run
    (a new signature) and claim_runs with affinity: whoever a DBA let execute
    the old forms may execute the new ones after the update, and nobody else."""
    table_runner, lake_runner, owners, other = (make_role(n) for n in ("tables", "lakes", "owners", "other"))
    with dbtools.scratch_database(jobledger_server) as conn:
        conn.execute("CREATE EXTENSION jobledger VERSION %s CASCADE" % psycopg.sql.quote(old))
        conn.execute(f"GRANT EXECUTE ON FUNCTION jobledger_internal.complete_run(uuid, integer, text, bigint)"
                     f" TO {table_runner}")
        conn.execute(f"GRANT EXECUTE ON FUNCTION jobledger_internal.complete_run(uuid, integer, text, bigint, text)"
                     f" TO {lake_runner} WITH GRANT OPTION")
        conn.execute("GRANT EXECUTE ON FUNCTION"
                     f" jobledger_internal.complete_attached_run(uuid, integer, text, bigint, text) TO {owners}")
        conn.execute(f"GRANT EXECUTE ON FUNCTION jobledger_internal.claim_runs(text, integer) TO {table_runner}")
        conn.execute("ALTER EXTENSION jobledger UPDATE")

        def may(role: str, fn: str, privilege: str = "EXECUTE") -> bool:
            return conn.execute("SELECT has_function_privilege(%s, %s, %s) AS ok",
                                (role, f"jobledger_internal.{fn}", privilege)).fetchone()["ok"]

        new_run = "complete_run(uuid, integer, text, bigint, text, jsonb)"
        new_attached = "complete_attached_run(uuid, integer, text, bigint, text, jsonb)"
        assert may(table_runner, new_run) and may(table_runner, "complete_run(uuid, integer, text, bigint)")
        assert may(lake_runner, new_run) and may(lake_runner, new_run, "EXECUTE WITH GRANT OPTION")
        assert not may(table_runner, new_run, "EXECUTE WITH GRANT OPTION")
        assert may(owners, new_attached) and not may(owners, new_run)
        assert not any(may(other, fn) for fn in (new_run, new_attached))
        assert not any(may("public", fn) for fn in (new_run, new_attached))
        # claim_runs with affinity (new in 0.6.0) for whoever could claim.
        affinity = "claim_runs(text, integer, text)"
        assert may(table_runner, affinity) and not may(table_runner, affinity, "EXECUTE WITH GRANT OPTION")
        assert not any(may(role, affinity) for role in (lake_runner, owners, other, "public"))
        for gone in ("complete_run(uuid, integer, text, bigint, text)",
                     "complete_attached_run(uuid, integer, text, bigint, text)"):
            assert conn.execute("SELECT to_regprocedure(%s) AS fn", (f"jobledger_internal.{gone}",)).fetchone() == {
                "fn": None}
