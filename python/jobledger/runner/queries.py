"""The runner's SQL, read from queries.sql and operations.sql (named blocks,
as procrastinate does; jobledger.core.named_sql reads them).

Keeping the statements in a .sql file keeps them reviewable as SQL and out of
string formatting: values are bound parameters, identifiers go through
``psycopg.sql.Identifier`` in the blocks written as psycopg.sql templates.
"""

from __future__ import annotations

import dataclasses
import functools
import re

from jobledger.core import named_sql

_PLACEHOLDER = re.compile(r"%\((\w+)\)s")
_QUERIES = named_sql.beside(__file__, "queries.sql")
_OPERATIONS = named_sql.beside(__file__, "operations.sql")

# The one parser of named blocks (jobledger.core.named_sql).
parse = named_sql.parse


def load() -> dict[str, str]:
    """{name: statement} of queries.sql."""
    return _QUERIES.blocks()


def parse_file(name: str) -> dict[str, str]:
    """The named blocks of another .sql file of this package."""
    return named_sql.beside(__file__, name).blocks()


def operation(name: str) -> str:
    """A block of operations.sql: presence, metrics and retention."""
    return _OPERATIONS.get(name)


QUERIES = load()


def get(name: str) -> str:
    """The statement named ``name``; a typo fails loudly at the call site."""
    return _QUERIES.get(name)


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
