"""define_job: check a template once, work out its output, record a version.

Runs with the rights of its caller (the SQL function and this PL/Python
function are SECURITY INVOKER): the caller is the job's owner or a member
of it, so whatever PostgreSQL works out from the query (its output columns
and types, what it depends on) is worked out with rights the author has.
Only the ledger write runs with more: ``jobledger_internal.record_job_version``, a
narrow SECURITY DEFINER function that takes these values, locks the job
name, checks the owner there, and checks the template again itself (it
trusts no caller: anyone may call it).  What it stores from here without
checking is the output analysis (``shapes``), which only decides what
submit_job refuses early: runs execute as the owner whatever it says.
"""

from __future__ import annotations

import datetime
import json
import re
from typing import Any

from jobledger.core import destinations, errors
from jobledger.server import lake_preflight, literals, params, preflight, queries, render, shapes, template

MODES = tuple(preflight.MODE_PRIVILEGES)
JOB_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,127}")


def define_job(plpy: Any, name: str, query: str, destination: str, mode: str, declared: str | None,
               timeout: datetime.timedelta | str | None, max_attempts: int,
               description: str | None) -> int:
    """Create the job, or a new version when anything changed; the version."""
    check_arguments(name, query, destination, mode, max_attempts)
    if timeout is not None and plpy.execute(plpy.prepare(queries.get("timeout_out_of_range"), ["text"]),
                                                [str(timeout)])[0]["out"]:
        raise errors.JobledgerError(
            "invalid_argument",
            f"timeout {timeout} is out of range: from 1 millisecond to 24 days 20:31:23.647 (statement_timeout's range)",
        )
    owner = plpy.execute(plpy.prepare(queries.get("job_owner"), ["text"]), [name])[0]["owner"]
    checked = check_template(query, declared)
    analysed = analyse(plpy, name, owner, checked)
    stored = check_destination(plpy, name, owner, destination, mode, analysed)
    try:
        with plpy.subtransaction():  # so that its error can be caught and passed on
            result = plpy.execute(
                plpy.prepare(queries.get("record_job_version"),
                             ["text", "text", "text", "text", "text", "text", "int4", "text", "text"]),
                [name, query, stored, mode, declared, None if timeout is None else str(timeout), max_attempts,
                 description, json.dumps(analysed)],
            )
    except plpy.SPIError as exc:  # record_job_version's refusals: passed on as they are
        # PL/Python keeps DETAIL and HINT in spidata: (code, detail, hint, ...).
        spidata = getattr(exc, "spidata", None) or (None, None, None)
        refusal = errors.from_server(exc.args[0] if exc.args else str(exc), spidata[1], spidata[2])
        if refusal is None:
            raise
        raise refusal from None
    return result[0]["v"]


def check_arguments(name: str, query: str, destination: str, mode: str, max_attempts: int) -> None:
    if name is None or not JOB_NAME.fullmatch(name):
        shown = "NULL" if name is None else repr(name)
        raise errors.JobledgerError(
            "invalid_argument",
            f"job name {shown} is not valid: letters, digits, _ . - (first a letter or _), at most 128",
        )
    if mode not in MODES:
        shown = "NULL" if mode is None else repr(mode)
        raise errors.JobledgerError("invalid_argument", f"mode {shown} is not one of {', '.join(MODES)}")
    if max_attempts is None or not 1 <= max_attempts <= 100:
        raise errors.JobledgerError("invalid_argument", "max_attempts must be between 1 and 100")
    if query is None or destination is None:
        raise errors.JobledgerError("invalid_argument", "define_job needs a query and a destination")


class Checked:
    """A template checked with its declarations (``check_template``)."""

    def __init__(self, parsed: template.Template, declarations: params.Declarations) -> None:
        self.template = parsed
        self.declarations = declarations

    def stored(self) -> dict[str, Any]:
        """What submit_job needs of the check, as stored with the version:
        the spans [[start, end, name], ...] and where the statement ends."""
        return {"placeholders": [[s.start, s.end, s.name] for s in self.template.spans],
                "query_end": self.template.end}


def check_template(query: str, declared: str | None) -> Checked:
    """Everything decided from the text alone (see ``template``); pure, no SQL."""
    parsed = template.parse_template(query)
    try:
        decoded = params.loads_json(declared) if declared is not None else None
    except RecursionError:
        raise errors.JobledgerError("invalid_argument", "the parameter declarations are nested too deeply") from None
    declarations = params.parse_declarations(decoded, parsed.placeholders)
    template.check_rendering(parsed, declarations)
    return Checked(parsed, declarations)


def analyse(plpy: Any, job: str, owner: str, checked: Checked) -> dict[str, Any]:
    """The output columns of every shape a run can have (``shapes``), worked
    out by PostgreSQL with the caller's rights.

    With untyped parameters some kinds of value may not fit the query (a
    boolean where it casts to bigint): such a shape keeps PostgreSQL's
    error, which submit_job reports for values of those kinds.  A query no
    shape fits is refused.
    """
    renderer = render.Renderer(checked.template.query, checked.template.spans, checked.template.end)
    columns: dict[str, Any] = {}
    dependencies: list[dict] = []
    refused = None
    for key, values in shapes.all_shapes(checked.declarations, checked.template.placeholders):
        texts = {name: literals.literal(value) for name, value in values.items()}
        sql = renderer.render(texts)
        try:
            produced, used = preflight.query_columns(plpy, job, owner, sql)
            columns[key] = [list(c) for c in produced]
            dependencies += [d for d in used if d not in dependencies]
        except errors.JobledgerError as error:
            if error.category != "template_parse_error" or not key:
                raise
            refused = refused or error
            columns[key] = {"error": error.message}
    if refused is not None and all(isinstance(c, dict) for c in columns.values()):
        raise refused
    return {**checked.stored(), "shapes": columns, "dependencies": dependencies}


def first_shape(analysed: dict[str, Any]) -> list[tuple[str, str]]:
    """The columns of the first shape that fits (strings or NULL first)."""
    return next([tuple(c) for c in columns] for columns in analysed["shapes"].values()
                if not isinstance(columns, dict))


def check_destination(plpy: Any, job: str, owner: str, destination: str, mode: str,
                      analysed: dict[str, Any]) -> str:
    """Refuse a destination the output does not fit; the destination as stored."""
    target = destinations.parse(destination)
    columns = first_shape(analysed)
    if isinstance(target, destinations.Table):
        dest = preflight.destination(plpy, job, owner, destination, mode)
        preflight.check_fit(job, columns, dest, mode)
        return dest.qualified_name
    destinations.check_mode(target, mode, job)
    lake_preflight.check(plpy, job, owner, target, columns)
    return target.canonical
