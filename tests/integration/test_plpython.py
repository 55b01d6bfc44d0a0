"""The PL/Python plumbing: the versioned package directory and the version checks."""

from __future__ import annotations

import pathlib

import psycopg
import pytest

import assemble
import dbtools

VERSION = assemble.current_version()


def _pkglibdir() -> pathlib.Path:
    return pathlib.Path(dbtools.pg_config("--pkglibdir"))


def test_version_is_the_package_and_extension_version(db: psycopg.Connection) -> None:
    row = db.execute("SELECT jobledger.version() AS v, extversion FROM pg_extension"
                     " WHERE extname = 'jobledger'").fetchone()
    assert row == {"v": VERSION, "extversion": VERSION}


def test_package_and_its_dependencies_load_from_the_versioned_directory(db: psycopg.Connection) -> None:
    db.execute("SELECT jobledger.version()")
    db.execute(
        """CREATE FUNCTION public.jl_module_files() RETURNS text[] LANGUAGE plpython3u AS $$
import sys, sqlglot
return [sys.modules["jobledger"].__file__, sqlglot.__file__]
$$"""
    )
    files = db.execute("SELECT public.jl_module_files() AS f").fetchone()["f"]
    versioned = _pkglibdir() / "jobledger" / VERSION
    for path in files:
        assert pathlib.Path(path).is_relative_to(versioned), path


def test_version_fails_clearly_when_the_extension_version_differs(db: psycopg.Connection) -> None:
    # As if the catalog had moved on (an ALTER EXTENSION UPDATE this package
    # does not match): a new session must refuse, not run mismatched code.
    db.execute("UPDATE pg_extension SET extversion = '9.9.9' WHERE extname = 'jobledger'")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as caught:
        db.execute("SELECT jobledger.version()")
    assert dbtools.category(caught.value) == "version_mismatch"
    assert VERSION in str(caught.value) and "9.9.9" in str(caught.value)


def test_a_session_that_loaded_another_version_must_reconnect(db: psycopg.Connection,
                                                               connect) -> None:
    conn = connect()
    conn.execute("DO LANGUAGE plpython3u $$ GD['jobledger.version'] = '0.0.9' $$")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as caught:
        conn.execute("SELECT jobledger.version()")
    assert dbtools.category(caught.value) == "version_mismatch"
    assert "Reconnect" in (caught.value.diag.message_hint or "")
    # A new session is fine.
    assert connect().execute("SELECT jobledger.version() AS v").fetchone() == {"v": VERSION}
