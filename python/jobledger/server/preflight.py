"""What the database says about a job's query and destination, before any run.

Runs in the server (PL/Python).  The answers here are what the owner would
get running the query:

* ``query_columns``: the names and types the query produces, learned by
  creating a temporary view of it (parsed and analysed by PostgreSQL, never
  executed), together with every relation, column and function the view
  depends on, each checked against the owner's privileges.  Only define_job
  calls it, which runs with its caller's rights (the job's owner, or a
  member of it): template text never reaches the server inside a function
  that runs with more rights, and only through ``single_statement``;
* ``destination``: the destination table's columns and whether the owner may
  write it in the job's mode (catalog lookups only: submit_job, which runs
  as the extension's owner, asks this about the job's owner explicitly and
  never tells a caller about objects the owner could not see).
"""

from __future__ import annotations

import collections
import itertools
import json
TYPE_CHECKING = False  # typing is slow to import: submit_job's first call pays for every import
if TYPE_CHECKING:
    from typing import Any

from jobledger.core import errors, named_sql, schema_diff
from jobledger.core.search_path import TEMPLATE_SEARCH_PATH
from jobledger.server import plans, queries, single_statement

# Privileges the owner needs on the destination, by mode.
MODE_PRIVILEGES = {
    "append": ("INSERT",),
    "overwrite": ("INSERT", "DELETE"),
    "merge": ("INSERT", "UPDATE"),
}

_view_names = itertools.count()


class Destination(collections.namedtuple("Destination", "qualified_name columns has_primary_key")):
    """A destination table as its job's owner may use it (``columns``: a
    tuple of schema_diff.DestinationColumn)."""

    __slots__ = ()


def destination(plpy: Any, job: str, owner: str, name: str, mode: str) -> Destination:
    """The destination table, or invalid_argument / destination_missing / permission_denied."""
    try:
        rows = plpy.execute(plans.plan(plpy, queries.get("destination"), ["text", "name", "text"]),
                            [name, owner, mode_privileges(mode)])
    except plpy.SPIError as exc:
        if getattr(exc, "sqlstate", None) != "22023":  # parse_ident: not a name at all
            raise
        rows = []
    return destination_of_row(rows[0] if rows else None, job, owner, name, mode)


def check_fit(job: str, columns: list[tuple[str, str]], dest: Destination, mode: str) -> None:
    """The query's columns against the destination table's, and merge's key."""
    schema_diff.check(job, columns, dest.columns)
    if mode == "merge" and not dest.has_primary_key:
        raise errors.JobledgerError(
            "schema_mismatch",
            f'job "{job}" merges into {dest.qualified_name}, which has no primary key',
            hint="merge upserts on the primary key: add one, or use append or overwrite.",
        )


def mode_privileges(mode: str) -> str:
    """The privileges ``mode`` needs, every one of them: e.g. ``INSERT,DELETE``."""
    return ",".join(MODE_PRIVILEGES[mode])


def destination_of_row(row: Any, job: str, owner: str, name: str, mode: str) -> Destination:
    """The Destination a row of the ``destination`` query (queries.sql) describes, or the error it shows."""
    if row is None or row["dest_parts"] is None:
        raise errors.JobledgerError(
            "invalid_argument",
            f'destination "{name}" of job "{job}" is not a table name (schema.table or table)',
        )
    # A table in a schema the owner cannot use is, for the owner, not there.
    if row["dest_qualified"] is None or not row["dest_usage"]:
        raise errors.JobledgerError(
            "destination_missing",
            f'the destination table {row["dest_parts"]} of job "{job}" does not exist',
            hint="Create the table first; unqualified names are looked up in schema public.",
        )
    if not row["dest_allowed"]:
        raise errors.JobledgerError(
            "permission_denied",
            f'job "{job}": its owner {owner} may not {mode} into table {row["dest_qualified"]} '
            f"(needs {' and '.join(MODE_PRIVILEGES[mode])})",
        )
    return Destination(
        qualified_name=row["dest_qualified"],
        columns=tuple(
            schema_diff.DestinationColumn(name=n, type=t, not_null=nn, has_default=d, generated=g)
            for n, t, nn, d, g in zip(row["dest_names"], row["dest_types"], row["dest_not_null"],
                                      row["dest_has_default"], row["dest_generated"])
        ),
        has_primary_key=row["dest_has_pk"],
    )


# (name, mode, owner, submit_context row) -> the Destination it described.
# A changed table has another row, so entries never go stale.
_destinations: dict[tuple, Destination] = {}


def current_destination(plpy: Any, row: Any, job: str, owner: str, name: str, mode: str) -> Destination:
    """The destination as ``destination`` would return it, from a row of
    ``submit_context`` (queries.sql: whether the table changed): looked up in
    full only when the table changed since this session last looked, or when
    something is wrong with it (then ``destination`` raises the error)."""
    if row["dest_oid"] is None or not row["dest_usage"] or not row["dest_allowed"]:
        return destination(plpy, job, owner, name, mode)
    key = (name, mode, owner, row["dest_oid"], row["dest_columns_version"], row["dest_has_pk"])
    found = _destinations.get(key)
    if found is None:
        if len(_destinations) >= 1024:
            _destinations.clear()
        found = _destinations[key] = destination(plpy, job, owner, name, mode)
    return found




class _Analysed(Exception):
    """Carries the analysis out of its subtransaction, which it rolls back:
    the temporary view and the settings go with it."""

    def __init__(self, columns: list[tuple[str, str]], denied: list[str], dependencies: list[dict]) -> None:
        super().__init__("analysed")
        self.columns = columns
        self.denied = denied
        self.dependencies = dependencies


def query_columns(plpy: Any, job: str, owner: str, sql: str) -> tuple[list[tuple[str, str]], list[dict]]:
    """(name, type) of each column ``sql`` produces, checked as ``owner`` may
    read it; and what it depends on, for submit_job to check again
    (``jobledger_internal.denied_dependencies``: privileges can be revoked).

    A temporary view is parsed and analysed by PostgreSQL but runs nothing;
    its dependencies name every relation, column and function the query
    uses, so the owner's privileges can be checked the way the executor will
    check them when the runner runs the query as the owner.  Catalogs are no
    one's dependencies, so the view is also EXPLAINed (planned, not run):
    the executor checks every relation's privileges at that point, system
    catalogs such as pg_authid included.  Runs with the caller's rights
    (define_job is SECURITY INVOKER), as the owner when the caller is a
    member of it (SET LOCAL ROLE, undone with the subtransaction), and hands
    the text to the server only through ``single_statement.prepare_one``.
    """
    view = f"jobledger_preflight_{next(_view_names)}"
    # Holds template text: only prepare_one may see it.
    statement = named_sql.fill(queries.get("preflight_view"), view=plpy.quote_ident(view), query=sql)
    try:
        with plpy.subtransaction():
            plpy.execute(plans.plan(plpy, queries.get("as_owner"), ["name"]), [owner])
            plpy.execute(plans.plan(plpy, queries.get("set_local_search_path"), ["text"]), [TEMPLATE_SEARCH_PATH])
            plpy.execute(queries.get("standard_conforming_strings"))
            try:
                plan = single_statement.prepare_one(plpy, statement, "ViewStmt")
            except single_statement.NotOneStatement as problem:
                raise errors.JobledgerError(
                    "template_not_select", f'the query of job "{job}" is not one SELECT: {problem}'
                ) from None
            plpy.execute(plan)
            plpy.execute(queries.get("pinned_search_path"))
            relation = f"pg_temp.{view}"
            columns = plpy.execute(plans.plan(plpy, queries.get("view_columns"), ["text"]), [relation])
            found = plpy.execute(plans.plan(plpy, queries.get("dependencies"), ["text"]), [relation])[0]["dependencies"]
            denied = [r["what"] for r in plpy.execute(plans.plan(plpy, queries.get("denied_dependencies"), ["name", "text"]),
                                                      [owner, found])]
            if not denied:
                denied = _denied_when_planned(plpy, view)
            raise _Analysed([(c["name"], c["type"]) for c in columns], denied, json.loads(found))
    except _Analysed as analysed:
        result = analysed
    except plpy.SPIError as exc:
        message = exc.args[0] if exc.args else str(exc)
        if getattr(exc, "sqlstate", None) in _UNSTORABLE:
            raise errors.JobledgerError(
                "schema_mismatch", f'the output of job "{job}" cannot be stored: {message}',
                hint="Give every output column a name of its own (AS ...) and a type a table can hold.",
            ) from None
        raise errors.JobledgerError(
            "template_parse_error", f'the query of job "{job}" is not valid here: {message}'
        ) from None
    if result.denied:
        raise errors.JobledgerError(
            "permission_denied",
            f'job "{job}": its owner {owner} may not use {result.denied[0]}',
            detail="\n".join(result.denied),
        )
    return result.columns, result.dependencies


# What PostgreSQL says of a query whose output no table (or view) can hold:
# duplicate_column ("column "x" specified more than once"),
# invalid_table_definition ("column "x" has pseudo-type record").
_UNSTORABLE = ("42701", "42P16")


def _denied_when_planned(plpy: Any, view: str) -> list[str]:
    """What the executor refuses the current role when it plans the view."""
    try:
        with plpy.subtransaction():
            plpy.execute(named_sql.fill(queries.get("explain_view"), view=plpy.quote_ident(view)))
    except plpy.SPIError as exc:
        if getattr(exc, "sqlstate", None) == "42501":  # insufficient_privilege
            return [str(exc.args[0] if exc.args else exc).removeprefix("permission denied for ")]
        raise
    return []
