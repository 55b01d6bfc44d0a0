"""Entry points of the extension's PL/Python functions.

Each PL/Python function body is a shim: the prelude, then one call into this
module, passing ``plpy``.  Entry points turn ``errors.JobledgerError`` into a
PostgreSQL error with the category's SQLSTATE and the category in DETAIL.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

import jobledger
from jobledger import errors

F = TypeVar("F", bound=Callable[..., Any])


def entry_point(fn: F) -> F:
    """Report a JobledgerError as a PostgreSQL error a client can match on."""

    @functools.wraps(fn)
    def wrapper(plpy: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(plpy, *args, **kwargs)
        except errors.JobledgerError as exc:
            extra = {"hint": exc.hint} if exc.hint else {}
            plpy.error(exc.message, detail=exc.full_detail, sqlstate=exc.sqlstate, **extra)

    return wrapper  # type: ignore[return-value]


@entry_point
def version(plpy: Any) -> str:
    """The package version, after checking it is the installed extension's.

    The prelude already checked the package against the SQL that called it;
    this also catches a session whose SQL and package agree with each other
    but not with pg_extension (an update the session has not seen yet).
    """
    rows = plpy.execute(
        "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'jobledger'"
    )
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
    """jobledger.define_job: see jobledger.jobs.define_job."""
    import jobledger.jobs

    return jobledger.jobs.define_job(plpy, *args)


@entry_point
def submit_job(plpy: Any, *args: Any) -> str:
    """jobledger.submit_job: see jobledger.jobs.submit_job."""
    import jobledger.jobs

    return jobledger.jobs.submit_job(plpy, *args)
