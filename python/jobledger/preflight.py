"""What the database says about a job's query and destination, before any run.

Runs in the server (PL/Python, inside SECURITY DEFINER entry points), so every
check about the job's owner is explicit: the code runs as the extension's
owner and must never tell a caller about objects the job's owner could not
see.  The answers here are what the owner would get running the query:

* ``query_columns``: the names and types the query produces, learned by
  creating a temporary view of it (parsed and planned by PostgreSQL, never
  executed), together with every relation, column and function the view
  depends on, each checked against the owner's privileges;
* ``destination``: the destination table's columns and whether the owner may
  write it in the job's mode.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

from jobledger import errors, schema_diff

# Job queries resolve unqualified names in public, after the catalogs, at
# define time, at submit time and in the runner alike.
TEMPLATE_SEARCH_PATH = "pg_catalog, public"

# Privileges the owner needs on the destination, by mode.
MODE_PRIVILEGES = {
    "append": ("INSERT",),
    "overwrite": ("INSERT", "DELETE"),
    "merge": ("INSERT", "UPDATE"),
}

_view_names = itertools.count()


@dataclasses.dataclass(frozen=True)
class Destination:
    """A destination table as its job's owner may use it."""

    qualified_name: str
    columns: tuple[schema_diff.DestinationColumn, ...]
    has_primary_key: bool


def split_name(destination: str) -> tuple[str, str]:
    """(schema, table) of a destination; an unqualified name is in public."""
    parts = [p.strip() for p in destination.split(".")]
    if len(parts) == 1 and parts[0]:
        return "public", parts[0]
    if len(parts) == 2 and all(parts):
        return parts[0], parts[1]
    raise errors.JobledgerError(
        "invalid_argument", f'destination "{destination}" is not a table name (schema.table or table)'
    )


def destination(plpy: Any, job: str, owner: str, name: str, mode: str) -> Destination:
    """The destination table, or destination_missing / permission_denied."""
    schema, table = split_name(name)
    rows = plpy.execute(
        plpy.prepare(
            """SELECT c.oid, pg_catalog.format('%I.%I', n.nspname, c.relname) AS qualified,
                      pg_catalog.has_schema_privilege($3, n.oid, 'USAGE') AS usage,
                      EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                               WHERE i.indrelid = c.oid AND i.indisprimary) AS has_pk
                 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')""",
            ["text", "text", "name"],
        ),
        [schema, table, owner],
    )
    # A table in a schema the owner cannot use is, for the owner, not there.
    if not rows or not rows[0]["usage"]:
        raise errors.JobledgerError(
            "destination_missing",
            f'the destination table "{schema}.{table}" of job "{job}" does not exist',
            hint="Create the table first; unqualified names are looked up in schema public.",
        )
    row = rows[0]
    privileges = ",".join(MODE_PRIVILEGES[mode])
    allowed = plpy.execute(
        plpy.prepare("SELECT pg_catalog.has_table_privilege($1, $2::pg_catalog.oid, $3) AS ok",
                     ["name", "oid", "text"]),
        [owner, row["oid"], privileges],
    )[0]["ok"]
    if not allowed:
        raise errors.JobledgerError(
            "permission_denied",
            f'job "{job}": its owner {owner} may not {mode} into table {row["qualified"]} '
            f"(needs {privileges.replace(',', ' and ')})",
        )
    columns = plpy.execute(
        plpy.prepare(
            """SELECT a.attname AS name, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type,
                      a.attnotnull AS not_null, (a.atthasdef OR a.attidentity <> '') AS has_default,
                      (a.attidentity = 'a' OR a.attgenerated <> '') AS generated
                 FROM pg_catalog.pg_attribute a
                WHERE a.attrelid = $1::pg_catalog.oid AND a.attnum > 0 AND NOT a.attisdropped
                ORDER BY a.attnum""",
            ["oid"],
        ),
        [row["oid"]],
    )
    return Destination(
        qualified_name=row["qualified"],
        columns=tuple(schema_diff.DestinationColumn(**dict(c)) for c in columns),
        has_primary_key=row["has_pk"],
    )


def query_columns(plpy: Any, job: str, owner: str, sql: str) -> list[tuple[str, str]]:
    """(name, type) of each column ``sql`` produces, checked as ``owner`` may read it.

    A temporary view is parsed and analysed by PostgreSQL but runs nothing;
    its dependencies name every relation, column and function the query
    uses, so the owner's privileges can be checked the way the executor will
    check them when the runner runs the query as the owner.
    """
    view = f"jobledger_preflight_{next(_view_names)}"
    try:
        with plpy.subtransaction():
            plpy.execute(f"SET LOCAL search_path = {TEMPLATE_SEARCH_PATH}")
            plpy.execute(f"CREATE TEMPORARY VIEW pg_temp.{view} AS {sql}")
            plpy.execute("SET LOCAL search_path = pg_catalog, jobledger, pg_temp")
            columns = plpy.execute(
                f"""SELECT a.attname AS name, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type
                      FROM pg_catalog.pg_attribute a
                     WHERE a.attrelid = 'pg_temp.{view}'::pg_catalog.regclass AND a.attnum > 0
                     ORDER BY a.attnum"""
            )
            denied = plpy.execute(
                plpy.prepare(_DENIED_DEPENDENCIES.replace("@VIEW@", f"pg_temp.{view}"), ["name"]),
                [owner],
            )
            plpy.execute(f"DROP VIEW pg_temp.{view}")
    except plpy.SPIError as exc:
        raise errors.JobledgerError(
            "template_parse_error",
            f'the query of job "{job}" is not valid here: {exc.args[0] if exc.args else exc}',
        ) from None
    if denied:
        raise errors.JobledgerError(
            "permission_denied",
            f'job "{job}": its owner {owner} may not use {denied[0]["what"]}',
            detail="\n".join(r["what"] for r in denied),
        )
    return [(c["name"], c["type"]) for c in columns]


# Everything the view's rewrite rule depends on that the owner may not use.
# Column references need SELECT on that column (or the table); a whole-table
# reference needs SELECT on some column; functions need EXECUTE; and the
# schema of each needs USAGE, reported first as PostgreSQL would.
_DENIED_DEPENDENCIES = """
WITH deps AS (
    SELECT DISTINCT d.refclassid, d.refobjid, d.refobjsubid
      FROM pg_catalog.pg_depend d
      JOIN pg_catalog.pg_rewrite rw ON rw.oid = d.objid AND d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
     WHERE rw.ev_class = '@VIEW@'::pg_catalog.regclass
       AND d.refobjid <> '@VIEW@'::pg_catalog.regclass
)
SELECT 'schema ' || pg_catalog.quote_ident(n.nspname) AS what
  FROM deps
  JOIN pg_catalog.pg_class c ON deps.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND c.oid = deps.refobjid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE NOT pg_catalog.has_schema_privilege($1, n.oid, 'USAGE')
UNION
SELECT pg_catalog.pg_describe_object(deps.refclassid, deps.refobjid, deps.refobjsubid)
  FROM deps
  JOIN pg_catalog.pg_class c ON deps.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND c.oid = deps.refobjid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE pg_catalog.has_schema_privilege($1, n.oid, 'USAGE')
   AND CASE WHEN deps.refobjsubid > 0
            THEN NOT pg_catalog.has_column_privilege($1, c.oid, deps.refobjsubid::pg_catalog.int2, 'SELECT')
            ELSE NOT pg_catalog.has_any_column_privilege($1, c.oid, 'SELECT') END
UNION
SELECT pg_catalog.pg_describe_object(deps.refclassid, deps.refobjid, 0)
  FROM deps
  JOIN pg_catalog.pg_proc p ON deps.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND p.oid = deps.refobjid
 WHERE NOT pg_catalog.has_function_privilege($1, p.oid, 'EXECUTE')
    OR NOT pg_catalog.has_schema_privilege($1, p.pronamespace, 'USAGE')
 ORDER BY 1
"""
