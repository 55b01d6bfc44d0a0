"""The runner's SQL, read from queries.sql (named blocks, as procrastinate does).

Keeping the statements in a .sql file keeps them reviewable as SQL and out of
string formatting: values are bound parameters, identifiers go through
``psycopg.sql.Identifier`` in the blocks written as psycopg.sql templates.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.resources
import re

_HEADER = re.compile(r"^-- name: ([a-z_]+)\s*$", re.M)
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def parse(text: str) -> dict[str, str]:
    """{name: statement} of every ``-- name: <name>`` block in ``text``."""
    parts = _HEADER.split(text)
    blocks: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2]):
        if name in blocks:
            raise ValueError(f"queries.sql defines {name!r} twice")
        blocks[name] = body.strip()
    return blocks


def load() -> dict[str, str]:
    return parse(importlib.resources.files(__package__).joinpath("queries.sql").read_text(encoding="utf-8"))


def parse_file(name: str) -> dict[str, str]:
    """The named blocks of another .sql file of this package."""
    return parse(importlib.resources.files(__package__).joinpath(name).read_text(encoding="utf-8"))


@functools.lru_cache(maxsize=None)
def _operations() -> dict[str, str]:
    return parse_file("operations.sql")


def operation(name: str) -> str:
    """A block of operations.sql: presence, metrics and retention."""
    return _operations()[name]


QUERIES = load()


def get(name: str) -> str:
    """The statement named ``name``; a typo fails loudly at the call site."""
    return QUERIES[name]


@dataclasses.dataclass(frozen=True)
class Pipelined:
    """A block for libpq directly (runner.wire): ``$n`` placeholders, and the
    parameter name each stands for."""

    text: bytes
    names: tuple[str, ...]


@functools.lru_cache(maxsize=None)
def pipelined(name: str) -> Pipelined:
    """The block ``name`` with its ``%(param)s`` placeholders as ``$1, $2...``."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    text = _PLACEHOLDER.sub(number, get(name))
    if "%" in text:
        raise ValueError(f"block {name!r} has a % that is not a placeholder")
    return Pipelined(text.encode(), tuple(names))
