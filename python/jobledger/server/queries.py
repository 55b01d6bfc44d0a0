"""The server's SQL: the named blocks of queries.sql beside this module.

Read once per session, on the first ``get`` (jobledger.core.named_sql).
"""

from __future__ import annotations

from jobledger.core import named_sql

_FILE = named_sql.beside(__file__, "queries.sql")


def get(name: str) -> str:
    """The statement named ``name``; KeyError for a typo."""
    return _FILE.get(name)
