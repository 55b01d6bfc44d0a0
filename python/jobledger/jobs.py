"""define_job and submit_job: everything that can be refused is refused here,
before a row is written.

Both run inside SECURITY DEFINER PL/Python functions.  The role that called
them is the session's current role (``caller``), which a SECURITY DEFINER
function does not change: the extension checks that role's rights itself.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import json
import re
from typing import Any

from jobledger import destinations, errors, lake_preflight, params, plans, preflight, render, schema_diff, template

MODES = tuple(preflight.MODE_PRIVILEGES)
JOB_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,127}")
NOTIFY_CHANNEL = "jobledger_runs"


@dataclasses.dataclass(frozen=True)
class CompiledVersion:
    """A job version ready to render: parsed once per session (``_compiled``)."""

    template: template.Template
    declarations: params.Declarations
    renderer: render.Renderer


# (job, version, query, params) -> CompiledVersion.  Versions never change,
# and a job dropped and defined again has other text, so entries never go
# stale; a session holds at most the versions it submitted.
_compiled: dict[tuple[str, int, str, str | None], CompiledVersion] = {}
# That key plus the parameters' literal types -> the query's output columns.
_columns: dict[tuple[str, int, tuple], list[tuple[str, str]]] = {}
# (that key, destination) pairs that passed the schema check.  A changed
# destination table is a different Destination, so it is checked again.
_fits: set[tuple[tuple, Any]] = set()


def caller(plpy: Any) -> str:
    """The role that called the API (see jobledger.calling_role())."""
    return plpy.execute("SELECT jobledger.calling_role() AS role")[0]["role"]


def _is_member(plpy: Any, role: str, of: str) -> bool:
    return plpy.execute(
        plpy.prepare(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $2)"
            " AND pg_catalog.pg_has_role($1, $2, 'MEMBER') AS ok",
            ["name", "name"],
        ),
        [role, of],
    )[0]["ok"]


def _compile(job: str, query: str, declared: str | None) -> CompiledVersion:
    parsed = template.parse_template(query)
    declarations = params.parse_declarations(
        params.loads_json(declared) if declared is not None else None, parsed.placeholders
    )
    return CompiledVersion(parsed, declarations, render.Renderer(parsed))


def _probe_sql(compiled: CompiledVersion) -> str:
    """The template with a typed NULL (or plain NULL) for every parameter:
    the output's names and types without any value."""
    nulls = {
        d.name: params.BoundValue(d.name, d.type, None) for d in compiled.declarations.items
    }
    return render.render(compiled.template, nulls)


def _check_fit(plpy: Any, job: str, owner: str, sql: str, dest: preflight.Destination,
               mode: str, columns: list[tuple[str, str]] | None = None) -> None:
    produced = columns if columns is not None else preflight.query_columns(plpy, job, owner, sql)
    schema_diff.check(job, produced, dest.columns)
    if mode == "merge" and not dest.has_primary_key:
        raise errors.JobledgerError(
            "schema_mismatch",
            f'job "{job}" merges into {dest.qualified_name}, which has no primary key',
            hint="merge upserts on the primary key: add one, or use append or overwrite.",
        )


def define_job(plpy: Any, name: str, query: str, destination: str, mode: str, declared: str | None,
               timeout: datetime.timedelta | str | None, max_attempts: int,
               description: str | None) -> int:
    """Create the job, or a new version when anything changed; the version."""
    if name is None or not JOB_NAME.fullmatch(name):
        raise errors.JobledgerError(
            "invalid_argument",
            f"job name {name!r} is not valid: letters, digits, _ . - (first a letter or _), at most 128",
        )
    if mode not in MODES:
        raise errors.JobledgerError("invalid_argument", f"mode {mode!r} is not one of {', '.join(MODES)}")
    if max_attempts is None or not 1 <= max_attempts <= 100:
        raise errors.JobledgerError("invalid_argument", "max_attempts must be between 1 and 100")
    if query is None or destination is None:
        raise errors.JobledgerError("invalid_argument", "define_job needs a query and a destination")
    owner = caller(plpy)
    existing = plpy.execute(
        plpy.prepare("SELECT owner FROM jobledger.job WHERE name = $1", ["text"]), [name]
    )
    if existing and not _is_member(plpy, owner, existing[0]["owner"]):
        raise errors.JobledgerError(
            "permission_denied", f'job "{name}" belongs to {existing[0]["owner"]}, not {owner}'
        )
    if existing:
        owner = existing[0]["owner"]

    compiled = _compile(name, query, declared)
    target = destinations.parse(destination)
    if isinstance(target, destinations.Table):
        dest = preflight.destination(plpy, name, owner, destination, mode)
        _check_fit(plpy, name, owner, _probe_sql(compiled), dest, mode)
        stored = dest.qualified_name
    else:
        destinations.check_mode(target, mode, name)
        lake_preflight.check(plpy, name, owner, target,
                             preflight.query_columns(plpy, name, owner, _probe_sql(compiled)))
        stored = target.canonical

    result = plpy.execute(
        plpy.prepare(
            "SELECT jobledger.record_job_version($1, $2, $3, $4, $5, $6::jsonb, $7::interval, $8, $9) AS v",
            ["text", "name", "text", "text", "text", "text", "text", "int4", "text"],
        ),
        [name, owner, query, stored, mode, declared,
         None if timeout is None else str(timeout), max_attempts, description],
    )
    return result[0]["v"]


def submit_job(plpy: Any, job: str, values: str | None, idempotency_key: str | None, priority: int,
               run_after: Any, max_attempts: int | None) -> str:
    """Validate, render, preflight and record a pending run; its id.

    The hot path is three queries with plans kept for the session (the job
    and the caller's right to submit it, the destination, the insert), plus
    rendering that writes only the values (``render.Renderer``).  What cannot
    change for a job version is worked out once per session: the parsed
    template, and the query's output columns for each combination of
    parameter types.
    """
    context = plpy.execute(plans.plan(plpy, _SUBMIT_CONTEXT, ["text", "text"]), [job, _PRIVILEGES_JSON])[0]
    role = context["role"]
    if context["version"] is None:
        raise errors.JobledgerError("unknown_job", f'there is no job "{job}"')
    if not context["may_submit"]:
        raise errors.JobledgerError(
            "permission_denied", f'{role} may not submit job "{job}"',
            hint=f"The job's owner grants it with jobledger.grant_job('{job}', '{role}').",
        )
    if max_attempts is not None and not 1 <= max_attempts <= 100:
        raise errors.JobledgerError("invalid_argument", "max_attempts must be between 1 and 100")
    if idempotency_key is not None:
        found = _run_with_key(plpy, job, idempotency_key)
        if found:
            return found

    # A job dropped and defined again restarts at version 1: the text is part of the key.
    key = (job, context["version"], context["query"], context["params"])
    compiled = _compiled.get(key)
    if compiled is None:
        compiled = _compiled[key] = _compile(job, context["query"], context["params"])
    bound = params.bind(compiled.declarations, values if values is not None else "{}")
    sql = compiled.renderer.render(bound)

    # Each value is one typed literal, so the output's types depend on the
    # literals' types only: the query is analysed once per session for each.
    shape = key + (tuple(sorted((b.name, literal_type(b)) for b in bound.values())),)
    if shape not in _columns:
        _columns[shape] = preflight.query_columns(plpy, job, context["owner"], sql)
    if destinations.outside_database(context["destination"]):
        # result / parquet: the mapping to Arrow, and for parquet the owner's
        # right to write datasets and the dataset's current schema (read
        # from its manifest on every submit: other jobs may write it too).
        target = destinations.parse(context["destination"])
        if isinstance(target, destinations.Parquet) or (shape, target) not in _fits:
            lake_preflight.check(plpy, job, context["owner"], target, _columns[shape])
            _fits.add((shape, target))
    else:
        dest = preflight.current_destination(plpy, context, job, context["owner"], context["destination"],
                                             context["mode"])
        if (shape, dest) not in _fits:
            _check_fit(plpy, job, context["owner"], sql, dest, context["mode"], _columns[shape])
            _fits.add((shape, dest))

    parameters = params.canonical_json({b.name: _json_value(b) for b in sorted(bound.values(), key=lambda b: b.name)})
    inserted = plpy.execute(
        plans.plan(plpy, _INSERT_RUN, ["text", "int4", "text", "text", "int4", "text", "int4", "text", "name", "text"]),
        [job, context["version"], parameters, sql, priority, None if run_after is None else str(run_after),
         max_attempts if max_attempts is not None else context["max_attempts"], idempotency_key, role,
         NOTIFY_CHANNEL],
    )
    if not inserted:  # a concurrent submit with the same key won
        return _run_with_key(plpy, job, idempotency_key)
    return inserted[0]["id"]


# Everything submit_job needs to know, in one query: the job's current
# version, whether the calling role may submit it (the job's owner, a member
# of that role, or a member of a role the job was granted to; a dropped role
# counts as no one) and whether the destination changed (preflight.version_query).  One row
# always; the job's columns are NULL when there is no such job.
_SUBMIT_CONTEXT = """
WITH me AS (SELECT jobledger.calling_role() AS role)
SELECT me.role, j.owner, v.version, v.query, v.params::text AS params, v.destination, v.mode,
       v.max_attempts,
       me.role = j.owner
       OR coalesce(pg_catalog.pg_has_role(me.role, pg_catalog.to_regrole(pg_catalog.quote_ident(j.owner)),
                                          'MEMBER'), false)
       OR EXISTS (SELECT 1 FROM jobledger.job_grant g
                   WHERE g.job = j.name
                     AND pg_catalog.pg_has_role(me.role, pg_catalog.to_regrole(pg_catalog.quote_ident(g.grantee)),
                                                'MEMBER')) AS may_submit,
       d.*
  FROM me
  LEFT JOIN jobledger.job j ON j.name = $1
  LEFT JOIN jobledger.job_version v ON v.job = j.name AND v.version = j.current_version
  LEFT JOIN LATERAL (""" + preflight.version_query("v.destination", "j.owner", "($2::jsonb ->> v.mode)") + """
  ) AS d ON true
"""
# $2 of _SUBMIT_CONTEXT: the privileges each mode needs, from the one table of them.
_PRIVILEGES_JSON = json.dumps({mode: preflight.mode_privileges(mode) for mode in MODES})

# The pending run, and a wake-up for runners in the same statement.
# ON CONFLICT: a concurrent submit with the same idempotency key won.
_INSERT_RUN = """
WITH run AS (
    INSERT INTO jobledger.run (job, job_version, parameters, rendered_sql, priority, run_after,
                               max_attempts, idempotency_key, submitted_by)
    VALUES ($1, $2, $3::jsonb, $4, $5, coalesce($6::timestamptz, pg_catalog.now()), $7, $8, $9)
    ON CONFLICT (job, idempotency_key) DO NOTHING
    RETURNING id, job
)
SELECT run.id::text AS id, pg_catalog.pg_notify($10, run.job) FROM run
"""


def _run_with_key(plpy: Any, job: str, key: str) -> str | None:
    rows = plpy.execute(
        plans.plan(plpy, "SELECT id::text AS id FROM jobledger.run WHERE job = $1 AND idempotency_key = $2",
                   ["text", "text"]),
        [job, key],
    )
    return rows[0]["id"] if rows else None


def literal_type(bound: params.BoundValue) -> str:
    """The type PostgreSQL gives a bound value's literal: what of a value
    decides the query's output types.

    Typed values are CASTs to their declared type.  An untyped number is an
    integer, bigint or numeric constant depending on its value (1, 3000000000,
    1.5), an untyped string a constant of unknown type, NULL unknown too.
    """
    if bound.type is not None:
        return bound.type.name
    value = bound.value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "unknown"
    number = decimal.Decimal(value)
    if number == number.to_integral_value() and "." not in params.decimal_text(number):
        if -2**31 <= number < 2**31:
            return "integer"
        if -2**63 <= number < 2**63:
            return "bigint"
    return "numeric"


def _json_value(bound: params.BoundValue) -> Any:
    """A bound value as a JSON value for run.parameters; numbers stay exact."""
    value = bound.value
    if bound.type is not None and bound.type.base == "jsonb":
        if bound.type.is_array:
            return [None if v is None else params.loads_json(v) for v in value]
        return None if value is None else params.loads_json(value)
    return _plain(value)


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, str, decimal.Decimal)):
        return value
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return str(value)  # uuid.UUID
