"""submit_job: validate the values, render, preflight, and record a pending run.

Runs inside a SECURITY DEFINER PL/Python function (the ledger is written by
the extension's owner; nobody has DML on it).  The role that called it is
the session's current role (``jobledger_internal.calling_role()``), whose rights to
submit the job are checked here.  No template text reaches the server here:
what needs PostgreSQL to analyse the query was worked out when the version
was defined, with the owner's rights, and stored with it
(``jobledger.job_version_check``); this only splices literals into the
stored text (``render``), checks the result with PostgreSQL's grammar, and
compares the stored output columns with the destination as it is now.
Nothing here imports sqlglot.
"""

from __future__ import annotations

import collections
import datetime
import decimal
import json
TYPE_CHECKING = False  # typing is slow to import: submit_job's first call pays for every import
if TYPE_CHECKING:
    from typing import Any

from jobledger.core import destinations, errors
from jobledger.server import literals, params, plans, preflight, queries, render, shapes

MODES = tuple(preflight.MODE_PRIVILEGES)
NOTIFY_CHANNEL = "jobledger_runs"


class CompiledVersion(collections.namedtuple("CompiledVersion", "declarations renderer shapes")):
    """A job version ready to render, built once per session (``_compiled``):
    its Declarations, its render.Renderer, and its shapes (shape key ->
    output columns, or {"error": why values of those kinds do not fit})."""

    __slots__ = ()


# (job, version, query, params, placeholders) -> CompiledVersion.  Versions
# never change, and a job dropped and defined again has other text, so
# entries never go stale; a session holds at most the versions it submitted.
_compiled: dict[tuple[str, int, str, str | None, str], CompiledVersion] = {}
# (that key, shape key, destination) triples that passed the schema check.  A
# changed destination table is a different Destination, so it is checked again.
_fits: set[tuple[tuple, str, Any]] = set()


def _compile(context: Any) -> CompiledVersion:
    if context["check_problem"] is not None or context["placeholders"] is None:
        raise errors.JobledgerError(
            "template_parse_error",
            f'version {context["version"]} of job "{context["job"]}" cannot be submitted: '
            + (context["check_problem"] or "it was not checked by this version of jobledger"),
            hint="Its owner defines the job again (jobledger.define_job) to make a checked version.",
        )
    declared = context["params"]
    spans = [render.Span(start, end, name) for start, end, name in json.loads(context["placeholders"])]
    names = frozenset(span.name for span in spans)
    declarations = params.parse_declarations(params.loads_json(declared) if declared is not None else None, names)
    analysed = json.loads(context["shapes"] or "{}")
    return CompiledVersion(
        declarations=declarations,
        renderer=render.Renderer(context["query"], spans, context["query_end"]),
        shapes={key: columns if isinstance(columns, dict) else [tuple(c) for c in columns]
                for key, columns in analysed.items()},
    )


def submit_job(plpy: Any, job: str, values: str | None, idempotency_key: str | None, priority: int,
               run_after: Any, max_attempts: int | None) -> str:
    """Validate, render, preflight and record a pending run; its id.

    The hot path is two queries with plans kept for the session (the job,
    its checked version, the caller's right to submit it and whether the
    destination changed; the insert), plus literals for the values.
    """
    check_arguments(job, idempotency_key, priority, run_after)
    context = plpy.execute(plans.plan(plpy, queries.get("submit_context"), ["text", "text"]),
                           [job, _PRIVILEGES_JSON])[0]
    role = context["role"]
    if context["version"] is None:
        raise errors.JobledgerError("unknown_job", f'there is no job "{job}"')
    if not context["may_submit"]:
        raise errors.JobledgerError(
            "permission_denied", f'{role} may not submit job "{job}"',
            hint=f"The job's owner grants it with jobledger.grant_job({sql_string(job)}, {sql_string(quote_ident(role))}).",
        )
    if max_attempts is not None and not 1 <= max_attempts <= 100:
        raise errors.JobledgerError("invalid_argument", "max_attempts must be between 1 and 100")

    if context["denied"]:
        denied = context["denied"].split("\n")
        raise errors.JobledgerError(
            "permission_denied",
            f'job "{job}": its owner {context["owner"]} may no longer use {denied[0]}',
            detail="\n".join(denied),
            hint="The job's owner needs those privileges again, or defines the job again without them.",
        )
    # A job dropped and defined again restarts at version 1: the text is part of the key.
    key = (job, context["version"], context["query"], context["params"], context["placeholders"])
    compiled = _compiled.get(key)
    if compiled is None:
        compiled = _compiled[key] = _compile(context)
    bound = params.bind(compiled.declarations, values if values is not None else "{}")
    sql = compiled.renderer.render({name: literals.literal(b) for name, b in bound.items()})

    shape = shapes.key(bound)
    columns = compiled.shapes.get(shape)
    if columns is None:
        raise errors.JobledgerError(
            "template_parse_error",
            f'job "{job}" has no analysis of its output for values of these kinds ({shape})',
            hint="Its owner defines the job again (jobledger.define_job).",
        )
    if isinstance(columns, dict):
        raise errors.JobledgerError(
            "invalid_parameter",
            f'job "{job}" cannot run with values of these kinds ({shape}): {columns["error"]}',
            hint="Submit values of the kinds the query takes (e.g. a number, not a string).",
        )
    if context["destination_kind"] != destinations.Table.kind:
        # result / parquet: the mapping to Arrow, and for parquet the owner's
        # right to write datasets and the dataset's current schema (read
        # from its manifest on every submit: other jobs may write it too).
        target = destinations.parse(context["destination"])
        if isinstance(target, (destinations.Parquet, destinations.Delta, destinations.Lance)) \
                or (key, shape, target) not in _fits:
            from jobledger.server import lake_preflight  # its Arrow mapping and manifests only for these

            lake_preflight.check(plpy, job, context["owner"], target, columns)
            _fits.add((key, shape, target))
    else:
        dest = preflight.current_destination(plpy, context, job, context["owner"], context["destination"],
                                             context["mode"])
        if (key, shape, dest) not in _fits:
            preflight.check_fit(job, columns, dest, context["mode"])
            _fits.add((key, shape, dest))

    parameters = params.canonical_json({b.name: _json_value(b) for b in sorted(bound.values(), key=lambda b: b.name)})
    if idempotency_key is not None:
        found = _run_with_key(plpy, job, role, idempotency_key, parameters)
        if found:
            return found
    inserted = plpy.execute(
        plans.plan(plpy, queries.get("insert_run"), ["text", "int4", "text", "text", "int4", "text", "int4", "text", "name", "text"]),
        [job, context["version"], parameters, sql, priority, None if run_after is None else str(run_after),
         max_attempts if max_attempts is not None else context["max_attempts"], idempotency_key, role,
         NOTIFY_CHANNEL],
    )
    if not inserted:  # a concurrent submit with the same key won
        return _run_with_key(plpy, job, role, idempotency_key, parameters)
    return inserted[0]["id"]


# $2 of submit_context (queries.sql): the privileges each mode needs, from the one table of them.
_PRIVILEGES_JSON = json.dumps({mode: preflight.mode_privileges(mode) for mode in MODES})


def _run_with_key(plpy: Any, job: str, role: str, key: str, parameters: str) -> str | None:
    """The run this role already submitted with ``key`` (keys belong to their
    submitter), or None; idempotency_conflict if it had other parameters."""
    rows = plpy.execute(plans.plan(plpy, queries.get("run_with_key"), ["text", "name", "text", "text"]),
                        [job, role, key, parameters])
    if not rows:
        return None
    if not rows[0]["same"]:
        raise errors.JobledgerError(
            "idempotency_conflict",
            f'idempotency key {key[:80]!r} was already used for job "{job}" with other parameters',
            detail=f"run {rows[0]['id']}",
            hint="Use a new key for other parameters, or the same parameters to get that run.",
        )
    return rows[0]["id"]


# Longest idempotency key: keys are compared and indexed, not documents.
MAX_KEY_LENGTH = 1000


def check_arguments(job: str | None, idempotency_key: str | None, priority: int | None, run_after: Any) -> None:
    """Refuse arguments no run can have, before anything is looked up."""
    if job is None:
        raise errors.JobledgerError("invalid_argument", "submit_job needs a job name")
    if priority is None:
        raise errors.JobledgerError("invalid_argument", "priority must be a number (the default is 0), not NULL")
    if idempotency_key is not None and len(idempotency_key) > MAX_KEY_LENGTH:
        raise errors.JobledgerError(
            "invalid_argument", f"idempotency_key has {len(idempotency_key)} characters; at most {MAX_KEY_LENGTH}"
        )
    if run_after is not None and str(run_after) in ("infinity", "-infinity"):
        raise errors.JobledgerError("invalid_argument", f"run_after must be a point in time, not {run_after}")


def quote_ident(name: str) -> str:
    """A role name as SQL reads it back (regrole input): quoted unless plain."""
    if name and name[0].isalpha() and name.islower() and all(c.isalnum() or c == "_" for c in name) \
            and name.isascii():
        return name
    return '"' + name.replace('"', '""') + '"'


def sql_string(text: str) -> str:
    """A SQL string constant of ``text``, for hints that show a call."""
    return "'" + text.replace("'", "''") + "'"


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
