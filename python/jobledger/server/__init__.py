"""Entry points of the extension's PL/Python functions.

This package holds everything PL/Python imports: pure Python, sqlglot and
pglast (jobledger.core besides), never the client extra's packages.

Each PL/Python function body is a shim: the prelude, then one call into this
module, passing ``plpy``.  An entry point returns an outcome, the JSON text
``{"value": v}`` or, for an ``errors.JobledgerError``, ``{"error": {message,
sqlstate, detail, hint}}``; the public SQL function raises the error with
``jobledger_internal.outcome_value`` (sql/objects/07_outcome.sql), because an error
raised in PL/Python reaches the client as "plpy.Error: ..." with a Python
traceback.  Anything else (a bug) is raised as is.
"""

from __future__ import annotations

import functools
import json
TYPE_CHECKING = False  # typing is slow to import: submit_job's first call pays for every import
if TYPE_CHECKING:
    from typing import Any, Callable, TypeVar

    F = TypeVar("F", bound=Callable[..., Any])

import jobledger
from jobledger.core import errors


def entry_point(fn: F) -> F:  # noqa: F821 - F exists for type checkers
    """Return the outcome of ``fn``: its value, or the JobledgerError it raised."""

    @functools.wraps(fn)
    def wrapper(plpy: Any, *args: Any, **kwargs: Any) -> str:
        try:
            return json.dumps({"value": fn(plpy, *args, **kwargs)})
        except errors.JobledgerError as exc:
            return error_outcome(exc.message, exc.sqlstate, exc.full_detail, exc.hint)

    return wrapper  # type: ignore[return-value]


def error_outcome(message: str, sqlstate: str, detail: str | None, hint: str | None) -> str:
    """The outcome that makes ``jobledger_internal.outcome_value`` raise this error."""
    return json.dumps({"error": {"message": message, "sqlstate": sqlstate, "detail": detail, "hint": hint}})


@entry_point
def version(plpy: Any) -> str:
    """The package version, after checking it is the installed extension's.

    The prelude already checked the package against the SQL that called it;
    this also catches a session whose SQL and package agree with each other
    but not with pg_extension (an update the session has not seen yet).
    """
    from jobledger.server import queries

    rows = plpy.execute(queries.get("extension_version"))
    installed = rows[0]["extversion"] if rows else None
    if installed != jobledger.__version__:
        raise errors.JobledgerError(
            "version_mismatch",
            f"the jobledger Python package is {jobledger.__version__} "
            f"but the installed extension is {installed}",
            hint="Run make install for that version on the server, then reconnect.",
        )
    return jobledger.__version__


@entry_point
def define_job(plpy: Any, *args: Any) -> int:
    """jobledger.define_job (runs as its caller): see jobledger.server.define.define_job."""
    from jobledger.server import define

    return define.define_job(plpy, *args)


@entry_point
def check_template(plpy: Any, query: str, declared: str | None) -> dict[str, Any]:
    """jobledger_internal.record_job_version's own check of a template: its placeholders
    and where its statement ends.

    Pure Python (PostgreSQL's grammar in process, sqlglot's tokenizer): no
    text reaches the server, so it may run inside a SECURITY DEFINER function.
    """
    from jobledger.server import define

    return define.check_template(query, declared).stored()


@entry_point
def analyse_version(plpy: Any, job: str, query: str, declared: str | None) -> dict[str, Any]:
    """A version recorded by an older jobledger, checked under today's rules
    with its caller's rights (the upgrade runs it as the job's owner)."""
    from jobledger.server import define, queries

    owner = plpy.execute(queries.get("calling_role"))[0]["role"]
    return define.analyse(plpy, job, owner, define.check_template(query, declared))


@entry_point
def submit_job(plpy: Any, *args: Any) -> str:
    """jobledger.submit_job: see jobledger.server.submit.submit_job."""
    from jobledger.server import submit

    return submit.submit_job(plpy, *args)


@entry_point
def next_tick(plpy: Any, schedule: str, after: str, time_zone: str) -> str | None:
    """jobledger_internal.next_tick: when a pg_cron schedule ticks next (ISO 8601, UTC), or None."""
    import datetime

    from jobledger.server import cron

    found = cron.next_tick(schedule, datetime.datetime.fromisoformat(after), time_zone)
    return None if found is None else found.isoformat()


@entry_point
def lake_prefix(plpy: Any, prefix: str | None) -> str:
    """jobledger.allow_lake_prefix's prefix, normalised like lake destinations (invalid_argument otherwise)."""
    from jobledger.core import lake_grants

    return lake_grants.prefix(prefix or "")
