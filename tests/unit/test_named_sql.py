"""The one reader of the package's .sql files (jobledger.core.named_sql), and
every .sql file of the package read with it."""

from __future__ import annotations

import pathlib
import re

import pytest

import assemble
import dbtools
from jobledger.core import named_sql

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "python" / "jobledger"


def test_a_block_is_its_statement_with_the_comments_inside_it() -> None:
    text = ("-- The file's notes.\n\n"
            "-- name: first\n-- why the first\nSELECT 1\n  -- inside\n  FROM t -- trailing\n\n-- after\n"
            "-- name: second_2\nSELECT 2\n"
            "-- name: fragment\n-- a piece of another statement\n, {name} => {value}\n-- more notes\n")
    assert named_sql.parse(text) == {
        "first": "SELECT 1\n  -- inside\n  FROM t -- trailing",
        "second_2": "SELECT 2",
        "fragment": ", {name} => {value}",
    }


@pytest.mark.parametrize(("text", "message"), [
    ("-- name: a\nSELECT 1\n-- name: a\nSELECT 2\n", "x.sql:3: block 'a' is defined twice"),
    ("-- name: Bad\nSELECT 1\n", "x.sql:1: 'Bad' is not a block name"),
    ("-- name: 1st\nSELECT 1\n", "'1st' is not a block name"),
    ("-- name:\nSELECT 1\n", "'' is not a block name"),
    ("-- name: a b\nSELECT 1\n", "'a b' is not a block name"),
    ("-- name: empty\n-- only a comment\n\n-- name: b\nSELECT 1\n", "x.sql: block 'empty' has no statement"),
    ("-- name: last\n", "block 'last' has no statement"),
    ("SELECT 0\n-- name: a\nSELECT 1\n", "x.sql:1: a statement before the first"),
])
def test_malformed_files_are_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        named_sql.parse(text, "x.sql")


def test_a_file_is_read_once_and_a_missing_name_names_the_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "some.sql"
    path.write_text("-- name: one\nSELECT 1\n")
    found = named_sql.beside(str(tmp_path / "module.py"), "some.sql")
    assert found.get("one") == "SELECT 1"
    path.write_text("-- name: one\nSELECT 2\n")
    assert found.get("one") == "SELECT 1"
    with pytest.raises(KeyError, match="some.sql has no block named 'two'"):
        found.get("two")


def test_fill_replaces_each_placeholder_once_and_never_rescans_a_part() -> None:
    template = "EXPLAIN SELECT * FROM pg_temp.{view} AS {view}"
    assert named_sql.fill(template, view='"v{view}"') == 'EXPLAIN SELECT * FROM pg_temp."v{view}" AS "v{view}"'
    with pytest.raises(ValueError, match="placeholder {other} has no part"):
        named_sql.fill("SELECT {other}", view="v")
    with pytest.raises(ValueError, match="no placeholder for extra"):
        named_sql.fill("SELECT {view}", view="v", extra="x")
    with pytest.raises(ValueError, match="placeholder {query} stands in a comment"):
        named_sql.fill("-- {query} goes here\nSELECT {query}", query="1\n; DROP TABLE t")


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.sql")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_sql_file_of_the_package_parses(path: pathlib.Path) -> None:
    blocks = named_sql.parse(path.read_text(encoding="utf-8"), str(path))
    assert blocks


def test_the_installed_package_has_every_sql_file() -> None:
    """make install (pip --target of the wheel) copies the .sql files with the modules that read them."""
    installed = (pathlib.Path(dbtools.pg_config("--pkglibdir")) / "jobledger" / assemble.current_version()).resolve()
    sources = sorted(p.relative_to(PACKAGE.parent).as_posix() for p in PACKAGE.rglob("*.sql"))
    assert sources, PACKAGE
    assert {"jobledger/server/queries.sql", "jobledger/client.sql"} <= set(sources)
    for name in sources:
        assert (installed / name).read_text(encoding="utf-8") == (PACKAGE.parent / name).read_text(encoding="utf-8"), name
