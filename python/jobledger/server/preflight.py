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

from jobledger.core import errors, schema_diff
from jobledger.core.search_path import TEMPLATE_SEARCH_PATH
from jobledger.server import plans, single_statement

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
        rows = plpy.execute(plans.plan(plpy, _DESTINATION, ["text", "name", "text"]),
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
    """The Destination a ``destination_query`` row describes, or the error it shows."""
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


# One row describing a destination table, for ``destination_of_row``.  The
# name ($1) is read as SQL reads it (parse_ident: quotes, case folding); an
# unqualified one is in public.  ``dest_parts`` is NULL when the name has not
# one or two parts, ``dest_qualified`` when there is no such table.  $2 is the
# owner, $3 the privileges the mode needs.
_DESTINATION = """
SELECT CASE WHEN dn.p IS NOT NULL THEN pg_catalog.format('%I.%I', dn.p[1], dn.p[2]) END AS dest_parts,
       CASE WHEN dc.oid IS NOT NULL THEN pg_catalog.format('%I.%I', dns.nspname, dc.relname) END AS dest_qualified,
       pg_catalog.has_schema_privilege($2, dns.oid, 'USAGE') AS dest_usage,
       -- Each privilege: given a list, has_table_privilege() wants any one of them.
       NOT EXISTS (SELECT 1 FROM pg_catalog.unnest(pg_catalog.string_to_array($3, ',')) AS need
                    WHERE NOT pg_catalog.has_table_privilege($2, dc.oid, need)) AS dest_allowed,
       EXISTS (SELECT 1 FROM pg_catalog.pg_index di WHERE di.indrelid = dc.oid AND di.indisprimary) AS dest_has_pk,
       cols.names AS dest_names, cols.types AS dest_types, cols.not_null AS dest_not_null,
       cols.has_default AS dest_has_default, cols.generated AS dest_generated
  FROM (SELECT CASE pg_catalog.array_length(p, 1) WHEN 1 THEN ARRAY['public', p[1]] WHEN 2 THEN p END AS p
          FROM pg_catalog.parse_ident($1) AS p) AS dn
  LEFT JOIN (pg_catalog.pg_namespace dns
             JOIN pg_catalog.pg_class dc ON dns.oid = dc.relnamespace AND dc.relkind IN ('r', 'p'))
    ON dns.nspname = dn.p[1] AND dc.relname = dn.p[2]
  LEFT JOIN LATERAL (
       SELECT pg_catalog.array_agg(a.attname::text ORDER BY a.attnum) AS names,
              pg_catalog.array_agg(pg_catalog.format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum) AS types,
              pg_catalog.array_agg(a.attnotnull ORDER BY a.attnum) AS not_null,
              pg_catalog.array_agg(a.atthasdef OR a.attidentity <> '' ORDER BY a.attnum) AS has_default,
              pg_catalog.array_agg(a.attidentity = 'a' OR a.attgenerated <> '' ORDER BY a.attnum) AS generated
         FROM pg_catalog.pg_attribute a
        WHERE a.attrelid = dc.oid AND a.attnum > 0 AND NOT a.attisdropped) AS cols ON true"""


def version_query(name: str, owner: str, privileges: str) -> str:
    """A SELECT of at most one row that tells whether a destination changed, cheaply.

    For ``current_destination``: submit_job asks it within its own query, so
    ``name``, ``owner`` and ``privileges`` are SQL expressions over that
    query's columns (never values).  ``name`` is a name as stored by
    define_job (qualified and quoted).  A table's column definitions live in
    its pg_attribute rows, and any change to one writes that row anew with a
    newer xmin: the sum of their xmins moves with every change (ALTER TYPE,
    SET NOT NULL, defaults, identity, renames, added and dropped columns).
    A primary key lives in pg_index, so it is asked for; privileges are
    evaluated every time.  Destinations outside the database (``result``,
    ``parquet:...``, see ``destinations``) give no row: to_regclass would
    raise on them.
    """
    return f"""
SELECT dc.oid AS dest_oid,
       (SELECT pg_catalog.sum(a.xmin::text::bigint) FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = dc.oid AND a.attnum > 0)::text AS dest_columns_version,
       EXISTS (SELECT 1 FROM pg_catalog.pg_index di WHERE di.indrelid = dc.oid AND di.indisprimary) AS dest_has_pk,
       pg_catalog.has_schema_privilege({owner}, dc.relnamespace, 'USAGE') AS dest_usage,
       NOT EXISTS (SELECT 1 FROM pg_catalog.unnest(pg_catalog.string_to_array({privileges}, ',')) AS need
                    WHERE NOT pg_catalog.has_table_privilege({owner}, dc.oid, need)) AS dest_allowed
  FROM pg_catalog.pg_class dc
 WHERE dc.oid = CASE WHEN {name} = 'result' OR {name} LIKE 'parquet:%'
                     THEN NULL ELSE pg_catalog.to_regclass({name}) END
   AND dc.relkind IN ('r', 'p')"""


# (name, mode, owner, version_query row) -> the Destination it described.
# A changed table has another row, so entries never go stale.
_destinations: dict[tuple, Destination] = {}


def current_destination(plpy: Any, row: Any, job: str, owner: str, name: str, mode: str) -> Destination:
    """The destination as ``destination`` would return it, from a ``version_query``
    row: looked up in full only when the table changed since this session
    last looked, or when something is wrong with it (then ``destination``
    raises the error)."""
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
    statement = "CREATE TEMPORARY VIEW pg_temp." + view + " AS " + sql  # holds template text: only prepare_one may see it
    try:
        with plpy.subtransaction():
            plpy.execute(plans.plan(plpy, _AS_OWNER, ["name"]), [owner])
            plpy.execute(_SET_TEMPLATE_PATH)
            plpy.execute("SET LOCAL standard_conforming_strings = on")
            try:
                plan = single_statement.prepare_one(plpy, statement, "ViewStmt")
            except single_statement.NotOneStatement as problem:
                raise errors.JobledgerError(
                    "template_not_select", f'the query of job "{job}" is not one SELECT: {problem}'
                ) from None
            plpy.execute(plan)
            plpy.execute("SET LOCAL search_path = pg_catalog, jobledger, pg_temp")
            relation = f"pg_temp.{view}"
            columns = plpy.execute(plans.plan(plpy, _VIEW_COLUMNS, ["text"]), [relation])
            found = plpy.execute(plans.plan(plpy, _DEPENDENCIES, ["text"]), [relation])[0]["dependencies"]
            denied = [r["what"] for r in plpy.execute(plans.plan(plpy, _DENIED, ["name", "text"]), [owner, found])]
            if not denied:
                denied = _denied_when_planned(plpy, relation)
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


_SET_TEMPLATE_PATH = f"SET LOCAL search_path = {TEMPLATE_SEARCH_PATH}"

# What PostgreSQL says of a query whose output no table (or view) can hold:
# duplicate_column ("column "x" specified more than once"),
# invalid_table_definition ("column "x" has pseudo-type record").
_UNSTORABLE = ("42701", "42P16")

# The owner's role for the rest of the subtransaction, when the caller is not
# the owner but a member of it (define_job of an existing job).
_AS_OWNER = """
SELECT CASE WHEN $1 OPERATOR(pg_catalog.<>) CURRENT_USER
            THEN pg_catalog.set_config('role', $1, true) END AS role"""


def _denied_when_planned(plpy: Any, relation: str) -> list[str]:
    """What the executor refuses the current role when it plans the view."""
    try:
        with plpy.subtransaction():
            plpy.execute("EXPLAIN (COSTS OFF) SELECT * FROM " + relation)  # template-free: our view's name
    except plpy.SPIError as exc:
        if getattr(exc, "sqlstate", None) == "42501":  # insufficient_privilege
            return [str(exc.args[0] if exc.args else exc).removeprefix("permission denied for ")]
        raise
    return []

_VIEW_COLUMNS = """
SELECT a.attname AS name, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type
  FROM pg_catalog.pg_attribute a
 WHERE a.attrelid = $1::pg_catalog.regclass AND a.attnum > 0
 ORDER BY a.attnum"""


# Everything the view's rewrite rule ($1) depends on, by name (names, not
# OIDs, survive pg_dump and restore): relations with the column used (NULL
# for a whole-row reference) and functions by signature.  Catalogs are no
# one's dependencies (see _denied_when_planned).
_DEPENDENCIES = """
WITH deps AS (
    SELECT DISTINCT d.refclassid, d.refobjid, d.refobjsubid
      FROM pg_catalog.pg_depend d
      JOIN pg_catalog.pg_rewrite rw ON rw.oid = d.objid AND d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
     WHERE rw.ev_class = $1::pg_catalog.regclass
       AND d.refobjid <> $1::pg_catalog.regclass
)
SELECT coalesce(pg_catalog.jsonb_agg(dep ORDER BY dep::text), '[]')::text AS dependencies
  FROM (SELECT pg_catalog.jsonb_build_object('schema', n.nspname, 'relation', c.relname, 'column', a.attname) AS dep
          FROM deps
          JOIN pg_catalog.pg_class c ON deps.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
                                    AND c.oid = deps.refobjid
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = deps.refobjsubid
                                             AND deps.refobjsubid > 0
        UNION
        -- regprocedure's text reads back with to_regprocedure under the
        -- search_path submit_job pins (this one): qualified when not on it.
        SELECT pg_catalog.jsonb_build_object('function', p.oid::pg_catalog.regprocedure::pg_catalog.text)
          FROM deps
          JOIN pg_catalog.pg_proc p ON deps.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass
                                   AND p.oid = deps.refobjid) AS all_deps
"""

# What of those the owner ($1) may not use: the one rule, shared with submit_job.
_DENIED = "SELECT what FROM jobledger_internal.denied_dependencies($1, $2::jsonb)"
