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
import re
from typing import Any

from jobledger import errors, params, preflight, render, schema_diff, template

MODES = tuple(preflight.MODE_PRIVILEGES)
JOB_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,127}")
NOTIFY_CHANNEL = "jobledger_runs"


@dataclasses.dataclass(frozen=True)
class CompiledVersion:
    """A job version ready to render: parsed once per session (``_compiled``)."""

    template: template.Template
    declarations: params.Declarations


# (job, version) -> CompiledVersion.  Versions never change, so entries never
# go stale; a session holds at most the versions it submitted.
_compiled: dict[tuple[str, int], CompiledVersion] = {}
# (job, version, parameter types) -> the query's output columns.
_columns: dict[tuple[str, int, tuple], list[tuple[str, str]]] = {}


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
    return CompiledVersion(parsed, declarations)


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
    dest = preflight.destination(plpy, name, owner, destination, mode)
    _check_fit(plpy, name, owner, _probe_sql(compiled), dest, mode)

    result = plpy.execute(
        plpy.prepare(
            "SELECT jobledger.record_job_version($1, $2, $3, $4, $5, $6::jsonb, $7::interval, $8, $9) AS v",
            ["text", "name", "text", "text", "text", "text", "text", "int4", "text"],
        ),
        [name, owner, query, dest.qualified_name, mode, declared,
         None if timeout is None else str(timeout), max_attempts, description],
    )
    return result[0]["v"]


def submit_job(plpy: Any, job: str, values: str | None, idempotency_key: str | None, priority: int,
               run_after: Any, max_attempts: int | None) -> str:
    """Validate, render, preflight and record a pending run; its id."""
    role = caller(plpy)
    rows = plpy.execute(
        plpy.prepare(
            """SELECT j.owner, v.version, v.query, v.params::text AS params, v.destination, v.mode,
                      v.max_attempts
                 FROM jobledger.job j
                 JOIN jobledger.job_version v ON v.job = j.name AND v.version = j.current_version
                WHERE j.name = $1""",
            ["text"],
        ),
        [job],
    )
    if not rows:
        raise errors.JobledgerError("unknown_job", f'there is no job "{job}"')
    version = rows[0]
    if not _may_submit(plpy, role, job, version["owner"]):
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

    key = (job, version["version"])
    compiled = _compiled.get(key)
    if compiled is None:
        compiled = _compiled[key] = _compile(job, version["query"], version["params"])
    bound = params.bind(compiled.declarations, values if values is not None else "{}")
    sql = render.render(compiled.template, bound)

    # The output's types depend on the parameters' types only (each value is
    # a typed literal), so the query is analysed once per session for each.
    shape = key + (tuple(sorted((b.name, _shape(b)) for b in bound.values())),)
    if shape not in _columns:
        _columns[shape] = preflight.query_columns(plpy, job, version["owner"], sql)
    dest = preflight.destination(plpy, job, version["owner"], version["destination"], version["mode"])
    _check_fit(plpy, job, version["owner"], sql, dest, version["mode"], _columns[shape])

    parameters = params.canonical_json({b.name: _json_value(b) for b in sorted(bound.values(), key=lambda b: b.name)})
    inserted = plpy.execute(
        plpy.prepare(
            """INSERT INTO jobledger.run (job, job_version, parameters, rendered_sql, priority, run_after,
                                          max_attempts, idempotency_key, submitted_by)
               VALUES ($1, $2, $3::jsonb, $4, $5, coalesce($6::timestamptz, pg_catalog.now()), $7, $8, $9)
               ON CONFLICT (job, idempotency_key) DO NOTHING
               RETURNING id::text AS id""",
            ["text", "int4", "text", "text", "int4", "text", "int4", "text", "name"],
        ),
        [job, version["version"], parameters, sql, priority, None if run_after is None else str(run_after),
         max_attempts if max_attempts is not None else version["max_attempts"], idempotency_key, role],
    )
    if not inserted:  # a concurrent submit with the same key won
        return _run_with_key(plpy, job, idempotency_key)
    plpy.execute(plpy.prepare("SELECT pg_catalog.pg_notify($1, $2)", ["text", "text"]),
                 [NOTIFY_CHANNEL, job])
    return inserted[0]["id"]


def _may_submit(plpy: Any, role: str, job: str, owner: str) -> bool:
    return plpy.execute(
        plpy.prepare(
            """SELECT (EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $2)
                       AND pg_catalog.pg_has_role($1, $2, 'MEMBER'))
                   OR EXISTS (SELECT 1 FROM jobledger.job_grant g JOIN pg_catalog.pg_roles r ON r.rolname = g.grantee
                               WHERE g.job = $3 AND pg_catalog.pg_has_role($1, g.grantee, 'MEMBER')) AS ok""",
            ["name", "name", "text"],
        ),
        [role, owner, job],
    )[0]["ok"]


def _run_with_key(plpy: Any, job: str, key: str) -> str | None:
    rows = plpy.execute(
        plpy.prepare("SELECT id::text AS id FROM jobledger.run WHERE job = $1 AND idempotency_key = $2",
                     ["text", "text"]),
        [job, key],
    )
    return rows[0]["id"] if rows else None


def _shape(bound: params.BoundValue) -> str:
    """What of a value decides the query's output types."""
    if bound.type is not None:
        return bound.type.name
    return type(bound.value).__name__


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
