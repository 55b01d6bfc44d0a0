"""The shapes of a job's values that decide its query's output types.

A typed parameter is always a CAST to its declared type, so its value never
changes the query's output types.  An untyped one is a plain constant whose
type PostgreSQL infers from its kind: a string or NULL is of unknown type,
TRUE/FALSE boolean, and a number integer, bigint or numeric depending on its
value (1, 3000000000, 1.5).  define_job analyses the query once for every
combination of those kinds (``all_shapes``) and stores the output columns
of each under its ``key``; submit_job looks up the key of the values it got.
"""

from __future__ import annotations

import collections.abc
import decimal
import itertools

from jobledger.core import errors
from jobledger.server import params

# Kind -> a value of that kind for the analysis.  NULL stands for strings:
# both are constants of unknown type, and NULL converts to any type, so the
# analysis never depends on a string's text.
KINDS: dict[str, object] = {
    "unknown": None,
    "boolean": True,
    "integer": decimal.Decimal(1),
    "bigint": decimal.Decimal(3000000000),
    "numeric": decimal.Decimal("1.5"),
}

# Untyped parameters a job may have: each multiplies the shapes to analyse by 5.
MAX_UNTYPED = 3


def kind(bound: params.BoundValue) -> str:
    """The kind of an untyped bound value (see the module doc)."""
    value = bound.value
    if value is None or isinstance(value, str):
        return "unknown"
    if isinstance(value, bool):
        return "boolean"
    number = decimal.Decimal(value)
    if number == number.to_integral_value() and "." not in params.decimal_text(number):
        if -2**31 <= number < 2**31:
            return "integer"
        if -2**63 <= number < 2**63:
            return "bigint"
    return "numeric"


def key(bound: collections.abc.Mapping[str, params.BoundValue]) -> str:
    """The shape key of a run's values: the kinds of its untyped values, by name."""
    return ",".join(kind(bound[name]) for name in sorted(bound) if bound[name].type is None)


def all_shapes(declarations: params.Declarations,
               used: frozenset[str]) -> list[tuple[str, dict[str, params.BoundValue]]]:
    """(key, values to analyse with) for every shape a run of the job can have.

    Typed values are their type's NULL (a CAST, like any value of the type).
    """
    untyped = sorted(d.name for d in declarations.items if d.type is None and d.name in used)
    if len(untyped) > MAX_UNTYPED:
        raise errors.JobledgerError(
            "invalid_parameter",
            f"the query has {len(untyped)} untyped parameters ({', '.join(untyped)}); "
            f"at most {MAX_UNTYPED} may be untyped",
            hint='Declare the parameters\' types with params, e.g. {"day": {"type": "date"}}.',
        )
    typed = {d.name: params.BoundValue(d.name, d.type, None) for d in declarations.items if d.type is not None}
    shapes = []
    for kinds in itertools.product(KINDS, repeat=len(untyped)):
        values = dict(typed)
        values.update({name: params.BoundValue(name, None, KINDS[k]) for name, k in zip(untyped, kinds)})
        shapes.append((",".join(kinds), values))
    return shapes
