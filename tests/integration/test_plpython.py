"""The PL/Python plumbing: the versioned package directory and the version checks."""

from __future__ import annotations

import pathlib
import shutil
import uuid

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
    # The version's symlink leads to the complete install the session loaded.
    versioned = (_pkglibdir() / "jobledger" / VERSION).resolve()
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


_MODULES = """CREATE FUNCTION public.jl_modules(root text) RETURNS jsonb LANGUAGE plpython3u AS $$
import json, sys
under = [name for name, m in list(sys.modules.items())
         if (getattr(m, "__file__", None) or "").startswith(root + "/")]
return json.dumps({"under": under, "on_path": [p for p in sys.path if p.startswith(root)],
                   "files": {name: getattr(sys.modules.get(name), "__file__", None)
                             for name in ("jobledger", "sqlglot", "pglast", "pglast.parser")},
                   "version": getattr(sys.modules.get("jobledger"), "__version__", None)})
$$"""


def test_a_session_that_loaded_another_version_loads_this_one(db: psycopg.Connection, connect) -> None:
    """A pooled session that loaded another version's package (as one that
    called jobledger before ALTER EXTENSION UPDATE did) switches to this one
    at its next call, without reconnecting: the old modules, the old
    package's dependencies (sqlglot, pglast and its C extension) included,
    leave sys.modules, the old directory leaves sys.path, and everything is
    loaded again from this version's install.  The other version is a copy
    of this package with another version number in a directory of its own,
    put on sys.path the way the 0.4.0 prelude did."""
    old = _pkglibdir() / "jobledger" / f"0.0.9-test-{uuid.uuid4().hex[:8]}"  # where the server may read
    shutil.copytree((_pkglibdir() / "jobledger" / VERSION).resolve(), old, symlinks=True)
    try:
        _switch_versions(db, connect, old)
    finally:
        shutil.rmtree(old)


def _switch_versions(db: psycopg.Connection, connect, old: pathlib.Path) -> None:
    (old / "jobledger" / "_version.py").write_text("__version__ = VERSION = '0.0.9'\n")
    db.execute(_MODULES)
    conn = connect()
    conn.execute("""DO LANGUAGE plpython3u $$
import sys
sys.path.insert(0, %s)
import jobledger, jobledger.server, jobledger.server.template, sqlglot, pglast, pglast.parser
assert jobledger.__version__ == "0.0.9", jobledger.__file__
GD["jobledger.version"] = "0.0.9"
$$""".replace("%s", repr(str(old))))
    loaded = conn.execute("SELECT public.jl_modules(%s) AS m", (str(old),)).fetchone()["m"]
    assert loaded["version"] == "0.0.9" and "pglast.parser" in loaded["under"] and loaded["on_path"], loaded

    assert conn.execute("SELECT jobledger.version() AS v").fetchone() == {"v": VERSION}
    after = conn.execute("SELECT public.jl_modules(%s) AS m", (str(old),)).fetchone()["m"]
    assert after["under"] == [] and after["on_path"] == [] and after["version"] == VERSION, after
    current = (_pkglibdir() / "jobledger" / VERSION).resolve()
    for name, path in after["files"].items():
        assert path is None or pathlib.Path(path).is_relative_to(current), (name, path)
    # And it works: a definition (sqlglot, pglast) and a submission.
    conn.execute("CREATE TABLE public.landed (n integer)")
    conn.execute("""SELECT jobledger.define_job('land', 'SELECT {n}::integer AS n', 'public.landed',
                                                params => '{"n": {"type": "integer"}}')""")
    assert conn.execute("SELECT jobledger.submit_job('land', '{\"n\": 1}') AS id").fetchone()["id"]
    after = conn.execute("SELECT public.jl_modules(%s) AS m", (str(old),)).fetchone()["m"]
    assert after["under"] == [] and pathlib.Path(after["files"]["pglast.parser"]).is_relative_to(current), after


def test_a_session_marked_with_another_version_switches(db: psycopg.Connection, connect) -> None:
    conn = connect()
    conn.execute("DO LANGUAGE plpython3u $$ GD['jobledger.version'] = '0.0.9' $$")
    # This version's package is still the one installed: the session switches.
    assert conn.execute("SELECT jobledger.version() AS v").fetchone() == {"v": VERSION}
    # A new session is fine too.
    assert connect().execute("SELECT jobledger.version() AS v").fetchone() == {"v": VERSION}
