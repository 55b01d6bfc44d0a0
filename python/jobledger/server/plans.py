"""Prepared plans kept for the session, so hot paths do not re-plan their queries.

PL/Python's ``plpy.prepare`` plans are saved for the life of the session;
keeping them per query text in this module (imported once per session)
makes every later call of the same query skip parsing and planning.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is slow to import: submit_job's first call pays for every import
if TYPE_CHECKING:
    from typing import Any

_plans: dict[tuple[str, tuple[str, ...]], Any] = {}


def plan(plpy: Any, query: str, types: list[str] | tuple[str, ...] = ()) -> Any:
    """The session's prepared plan of ``query`` with argument ``types``."""
    key = (query, tuple(types))
    found = _plans.get(key)
    if found is None:
        found = _plans[key] = plpy.prepare(query, list(types))
    return found
