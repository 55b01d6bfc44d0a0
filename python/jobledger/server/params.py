"""Parameter declarations of a job, and binding of the values a run submits.

A job declares its parameters when it is defined (the ``params`` jsonb)::

    {"day":   {"type": "date"},
     "ids":   {"type": "bigint[]"},
     "limit": {"type": "integer", "default": 100},
     "note":  {"type": "text", "nullable": true}}

or declares none (``params`` is NULL), in which case every placeholder is an
untyped scalar: a JSON string, number, boolean or null, rendered as a plain
SQL constant whose type PostgreSQL infers from where it stands.

Binding turns the JSON object a run submits into one ``BoundValue`` per
parameter: checked against its declaration and normalised, so that rendering
is a pure function of the bound values.  Every rejection a user can cause is a
``JobledgerError``: ``missing_parameters``, ``unknown_parameters`` (names
listed), ``invalid_parameter`` (each bad parameter named, with the reason) or
``invalid_argument`` (the values are not a JSON object at all).

What each type accepts (JSON ``null`` is SQL NULL, allowed only when the
declaration says ``"nullable": true``; a default may be given instead):

=============  ==============================================================
text           a string
integer        an integral number in PostgreSQL's int4 range (5.0 is 5)
bigint         an integral number in the int8 range
numeric        a number PostgreSQL's numeric can hold: at most 131072 digits
               before the decimal point and 16383 after; precision is kept
boolean        true or false
date           a string ``YYYY-MM-DD`` (years 0001-9999)
timestamptz    a string ``YYYY-MM-DDTHH:MM[:SS[.ffffff]]`` followed by ``Z`` or
               an offset ``±HH[:MM]`` (``T`` may be a space); normalised to UTC.
               A timestamp without an offset is refused: its meaning would
               depend on the TimeZone setting of whoever runs the job
uuid           a string ``xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`` (hex, any
               case); normalised to lower case
jsonb          any JSON value other than null (a top-level null is SQL NULL)
T[]            a JSON array whose elements are valid T values; elements may
               not be null
=============  ==============================================================

Everywhere: strings may not contain U+0000 (PostgreSQL text cannot hold it)
nor lone UTF-16 surrogates; NaN and Infinity are refused; numbers are never
strings and booleans are never numbers; one value, written as canonical JSON
text, may take at most ``MAX_VALUE_BYTES`` bytes of UTF-8.
"""

from __future__ import annotations

import collections
import collections.abc
import datetime
import decimal
import json
import re
import sys

from jobledger.core import errors

# Largest accepted value, in bytes of UTF-8 of the value written as canonical
# JSON (``canonical_json``): 1 MiB.  The rendered SQL of one value is about as
# long, so a run's SQL stays a few MiB at most however many parameters it has.
MAX_VALUE_BYTES = 1024 * 1024

SCALAR_TYPES = (
    "text",
    "integer",
    "bigint",
    "numeric",
    "boolean",
    "date",
    "timestamptz",
    "uuid",
    "jsonb",
)

# Keys a declaration may have.
DECLARATION_KEYS = frozenset({"type", "default", "nullable", "description"})

INT4_RANGE = (-(2**31), 2**31 - 1)
INT8_RANGE = (-(2**63), 2**63 - 1)
# PostgreSQL's numeric: digits before and after the decimal point.
NUMERIC_MAX_INTEGER_DIGITS = 131072
NUMERIC_MAX_SCALE = 16383

_DATE_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_TIMESTAMP_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2})"
    r"(?::([0-9]{2})(?:\.([0-9]+))?)?"
    r"(?:(?P<z>[Zz])|(?P<sign>[+-])(?P<oh>[0-9]{2})(?::?(?P<om>[0-9]{2}))?)?"
)
_UUID_RE = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)


class NonFinite:
    """A NaN or Infinity token met while decoding JSON, kept so the error can
    name the parameter that holds it.  Not a tuple: values that are tuples
    are arrays."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NonFinite) and other.text == self.text

    def __hash__(self) -> int:
        return hash(("NonFinite", self.text))

    def __repr__(self) -> str:
        return f"NonFinite({self.text!r})"


class ParamType(collections.namedtuple("ParamType", "base is_array", defaults=(False,))):
    """A declared type: one of ``SCALAR_TYPES``, or an array of one."""

    __slots__ = ()

    @property
    def name(self) -> str:
        return self.base + "[]" if self.is_array else self.base

    def __str__(self) -> str:
        return self.name


class Declaration(collections.namedtuple("Declaration", "name type nullable has_default default description",
                                         defaults=(False, False, None, None))):
    """One parameter: name, type (None for an untyped scalar, when the job
    declares none), nullable, has_default, default, description.

    ``default`` holds the normalised default (as ``BoundValue.value``) and is
    meaningful only when ``has_default``; a default may be None (SQL NULL).
    """

    __slots__ = ()


class Declarations(collections.namedtuple("Declarations", "typed items")):
    """All parameters of a job (``items``, sorted by name).  ``typed`` is False
    when the job declared none and every placeholder is an untyped scalar."""

    __slots__ = ()

    @property
    def names(self) -> frozenset[str]:
        return frozenset(item.name for item in self.items)

    def get(self, name: str) -> Declaration | None:
        for item in self.items:
            if item.name == name:
                return item
        return None


class BoundValue(collections.namedtuple("BoundValue", "name type value")):
    """A checked, normalised value for one parameter: name, type (a
    ParamType, or None for an untyped one), value.

    ``value`` by type: text → str; integer, bigint → int; numeric → Decimal;
    boolean → bool; date → datetime.date; timestamptz → datetime.datetime in
    UTC; uuid → uuid.UUID; jsonb → str, the value as canonical JSON text;
    arrays → tuple of such elements; SQL NULL → None.  Untyped (``type`` None):
    str, Decimal, bool or None.
    """

    __slots__ = ()


class _Invalid(Exception):
    """Why a value does not fit its declaration; becomes part of an invalid_parameter error."""


# --- JSON -------------------------------------------------------------------


def loads_json(text: str) -> object:
    """Decode JSON keeping every number exact (as Decimal) and marking NaN/Infinity.

    Python's json module accepts the non-standard NaN, Infinity and -Infinity
    tokens; they are decoded to ``NonFinite`` so that validation can refuse
    them by parameter name.  Raises ValueError on malformed JSON.
    """
    return json.loads(
        text,
        parse_float=decimal.Decimal,
        parse_int=decimal.Decimal,
        parse_constant=NonFinite,
    )


def canonical_json(value: object) -> str:
    """Write a decoded, validated JSON value as text, exactly.

    Numbers are written in positional notation (never with an exponent, which
    PostgreSQL releases disagree on how far they accept) with all their
    digits; strings keep non-ASCII characters as they are; separators are
    those of PostgreSQL's jsonb output, ``", "`` and ``": "``.
    """
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (decimal.Decimal, int)):
        return decimal_text(decimal.Decimal(value))
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(canonical_json(item) for item in value) + "]"
    if isinstance(value, dict):
        return (
            "{"
            + ", ".join(
                json.dumps(key, ensure_ascii=False) + ": " + canonical_json(item)
                for key, item in value.items()
            )
            + "}"
        )
    if isinstance(value, datetime.date) or is_uuid(value):
        return json.dumps(str(value))
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def is_uuid(value: object) -> bool:
    """Whether ``value`` is a uuid.UUID, without importing uuid (slow to import,
    and needed only once a uuid value was submitted: none exists before)."""
    module = sys.modules.get("uuid")
    return module is not None and isinstance(value, module.UUID)


def decimal_text(number: decimal.Decimal) -> str:
    """A finite Decimal in positional notation with every digit, e.g. -1.50, 1000.

    Uses only exact Decimal operations (copy_abs, formatting), never the
    context, which would round to 28 digits.  Negative zero is written 0.
    """
    text = format(number.copy_abs(), "f")
    return "-" + text if number.is_signed() and not number.is_zero() else text


# --- declarations -----------------------------------------------------------


def parse_declarations(
    declared: collections.abc.Mapping[str, object] | None, used: frozenset[str]
) -> Declarations:
    """Check a job's parameter declarations against the placeholders its query uses.

    ``declared`` is the ``params`` jsonb decoded (``loads_json`` keeps default
    numbers exact; plain ints and floats are accepted too), or None for an
    untyped job.  The declared names and the used names must be the same set.
    """
    if declared is None:
        items = tuple(Declaration(name, None, nullable=True) for name in sorted(used))
        return Declarations(typed=False, items=items)
    if not isinstance(declared, collections.abc.Mapping):
        raise errors.JobledgerError(
            "invalid_argument",
            f"parameter declarations must be a JSON object, not {_json_kind(declared)}",
        )
    _check_same_names(set(declared), set(used))
    items = tuple(_declaration(name, declared[name]) for name in sorted(declared))
    return Declarations(typed=True, items=items)


def _check_same_names(declared: set[str], used: set[str]) -> None:
    undeclared = sorted(used - declared)
    unused = sorted(declared - used)
    if undeclared:
        hint = f"declared but not used: {', '.join(unused)}" if unused else None
        raise errors.JobledgerError(
            "missing_parameters",
            f"the query uses undeclared parameters: {', '.join(undeclared)}",
            hint=hint,
        )
    if unused:
        raise errors.JobledgerError(
            "unknown_parameters",
            f"declared parameters are not used by the query: {', '.join(unused)}",
        )


def _declaration(name: str, spec: object) -> Declaration:
    """One declaration, checked; invalid_parameter names the parameter."""

    def refuse(reason: str) -> errors.JobledgerError:
        return errors.JobledgerError(
            "invalid_parameter", f'invalid declaration of parameter "{name}": {reason}'
        )

    if not isinstance(spec, collections.abc.Mapping):
        raise refuse(f"it must be an object, not {_json_kind(spec)}")
    extra = sorted(set(spec) - DECLARATION_KEYS)
    if extra:
        raise refuse(
            f"unknown keys {', '.join(extra)} (allowed: {', '.join(sorted(DECLARATION_KEYS))})"
        )
    if "type" not in spec:
        raise refuse('"type" is required')
    param_type = parse_type(spec["type"])
    if param_type is None:
        raise refuse(
            f'unknown type {spec["type"]!r}; types are {", ".join(SCALAR_TYPES)}, '
            "and arrays of them written T[]"
        )
    nullable = spec.get("nullable", False)
    if not isinstance(nullable, bool):
        raise refuse('"nullable" must be true or false')
    description = spec.get("description")
    if description is not None and not isinstance(description, str):
        raise refuse('"description" must be a string')
    declaration = Declaration(name, param_type, nullable=nullable, description=description)
    if "default" not in spec:
        return declaration
    try:
        default = _check_value(declaration, spec["default"])
    except _Invalid as problem:
        raise refuse(f"its default is not valid: {problem}") from None
    return declaration._replace(has_default=True, default=default)


def parse_type(text: object) -> ParamType | None:
    """The ParamType a declaration's ``"type"`` names (case-insensitive), or None."""
    if not isinstance(text, str):
        return None
    name = text.strip().lower()
    is_array = name.endswith("[]")
    base = name[:-2].rstrip() if is_array else name
    return ParamType(base, is_array) if base in SCALAR_TYPES else None


# --- binding ----------------------------------------------------------------


def bind(decls: Declarations, values_json: str) -> dict[str, BoundValue]:
    """Check the values a run submits (jsonb as text) and bind every parameter.

    Returns one BoundValue per declared parameter, defaults filled in.
    """
    values = _decode_values(values_json)
    names = decls.names
    unknown = sorted(set(values) - names)
    if unknown:
        expected = ", ".join(sorted(names)) or "no parameters"
        raise errors.JobledgerError(
            "unknown_parameters",
            f"unknown parameters: {', '.join(unknown)}",
            hint=f"this job takes: {expected}",
        )
    missing = [d.name for d in decls.items if d.name not in values and not d.has_default]
    if missing:
        raise errors.JobledgerError(
            "missing_parameters", f"missing values for parameters: {', '.join(missing)}"
        )
    bound: dict[str, BoundValue] = {}
    problems: list[tuple[str, str]] = []
    for declaration in decls.items:
        if declaration.name not in values:
            bound[declaration.name] = BoundValue(
                declaration.name, declaration.type, declaration.default
            )
            continue
        try:
            value = _check_value(declaration, values[declaration.name])
        except _Invalid as problem:
            problems.append((declaration.name, str(problem)))
            continue
        bound[declaration.name] = BoundValue(declaration.name, declaration.type, value)
    if problems:
        raise _invalid_values(problems)
    return bound


def _decode_values(values_json: str) -> dict[str, object]:
    if not isinstance(values_json, str):
        raise errors.JobledgerError("invalid_argument", "parameter values must be JSON text")
    try:
        values = loads_json(values_json)
    except RecursionError:
        raise errors.JobledgerError("invalid_argument", "parameter values are nested too deeply") from None
    except ValueError as error:
        raise errors.JobledgerError(
            "invalid_argument", f"parameter values are not valid JSON: {error}"
        ) from None
    if not isinstance(values, dict):
        raise errors.JobledgerError(
            "invalid_argument",
            f"parameter values must be a JSON object, not {_json_kind(values)}",
        )
    return values


def _invalid_values(problems: list[tuple[str, str]]) -> errors.JobledgerError:
    detail = "\n".join(f'"{name}": {reason}' for name, reason in problems)
    if len(problems) == 1:
        name, reason = problems[0]
        message = f'invalid value for parameter "{name}": {reason}'
    else:
        listed = ", ".join(f'"{name}"' for name, _ in problems)
        message = f"invalid values for parameters {listed}"
    return errors.JobledgerError("invalid_parameter", message, detail=detail)


# --- checking one value -----------------------------------------------------


def _check_value(declaration: Declaration, value: object) -> object:
    """The normalised value, or _Invalid saying why it does not fit."""
    if value is None:
        if not declaration.nullable:
            raise _Invalid('null is not allowed (declare "nullable": true to allow it)')
        return None
    try:
        if declaration.type is None:
            normalised = _check_untyped(value)
        elif declaration.type.is_array:
            normalised = _check_array(declaration.type.base, value)
        else:
            normalised = _check_scalar(declaration.type.base, value)
    except RecursionError:
        raise _Invalid("the value is nested too deeply") from None
    size = len(canonical_json(normalised).encode("utf-8"))
    if size > MAX_VALUE_BYTES:
        raise _Invalid(f"the value takes {size} bytes; at most {MAX_VALUE_BYTES} are allowed")
    return normalised


def _check_untyped(value: object) -> object:
    if isinstance(value, (list, dict)):
        raise _Invalid(
            f"an untyped parameter takes a string, number, boolean or null, not "
            f"{_json_kind(value)}; declare a type such as jsonb or bigint[]"
        )
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _check_text(value)
    return _check_number(value)


def _check_array(base: str, value: object) -> tuple[object, ...]:
    if not isinstance(value, (list, tuple)):
        raise _Invalid(f"expected an array of {base}, got {_json_kind(value)}")
    elements = []
    for index, element in enumerate(value):
        if element is None:
            raise _Invalid(f"element {index} is null; array elements may not be null")
        try:
            elements.append(_check_scalar(base, element))
        except _Invalid as problem:
            raise _Invalid(f"element {index}: {problem}") from None
    return tuple(elements)


def _check_scalar(base: str, value: object) -> object:
    if isinstance(value, (list, tuple)) and base != "jsonb":
        raise _Invalid(f"expected a single {base} value, got an array")
    return _SCALAR_CHECKS[base](value)


def _check_text(value: object, expected: str = "a string") -> str:
    """A string PostgreSQL text can hold: no U+0000, no lone surrogate."""
    if not isinstance(value, str):
        raise _Invalid(f"expected {expected}, got {_json_kind(value)}")
    if "\x00" in value:
        raise _Invalid("strings may not contain the character U+0000")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _Invalid("the string is not valid Unicode (it holds a lone surrogate)") from None
    return value


def _finite_number(value: object) -> decimal.Decimal:
    """A JSON number as an exact Decimal; refuses NaN, Infinity, booleans and non-numbers."""
    if isinstance(value, NonFinite):
        raise _Invalid(f"{value.text} is not allowed; numbers must be finite")
    if isinstance(value, bool) or not isinstance(value, (decimal.Decimal, int, float)):
        raise _Invalid(f"expected a number, got {_json_kind(value)}")
    number = decimal.Decimal(repr(value)) if isinstance(value, float) else decimal.Decimal(value)
    if not number.is_finite():
        raise _Invalid(f"{number} is not allowed; numbers must be finite")
    return number


def _check_number(value: object) -> decimal.Decimal:
    """A finite number that PostgreSQL's numeric can hold, as an exact Decimal."""
    number = _finite_number(value)
    _, digits, exponent = number.as_tuple()
    integer_digits = len(digits) + exponent
    if not number.is_zero() and integer_digits > NUMERIC_MAX_INTEGER_DIGITS:
        raise _Invalid(
            f"the number has {integer_digits} digits before the decimal point; "
            f"numeric holds at most {NUMERIC_MAX_INTEGER_DIGITS}"
        )
    if -exponent > NUMERIC_MAX_SCALE:
        raise _Invalid(
            f"the number has {-exponent} digits after the decimal point; "
            f"numeric holds at most {NUMERIC_MAX_SCALE}"
        )
    return number


def _integer_check(
    type_name: str, bounds: tuple[int, int]
) -> collections.abc.Callable[[object], int]:
    """The check for an integer type: finite, in range, integral (5.0 counts as 5)."""

    def check(value: object) -> int:
        number = _finite_number(value)
        low, high = bounds
        if not low <= number <= high:
            raise _Invalid(f"{_short(number)} is out of range for {type_name} ({low} to {high})")
        if number != number.to_integral_value():
            raise _Invalid(f"expected an integral number for {type_name}, got {_short(number)}")
        return int(number)

    return check


def _check_boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"expected true or false, got {_json_kind(value)}")
    return value


def _check_date(value: object) -> datetime.date:
    text = _check_text(value, "a date written YYYY-MM-DD")
    match = _DATE_RE.fullmatch(text)
    if match is None:
        raise _Invalid(f"expected a date written YYYY-MM-DD, got {_short(text)}")
    try:
        return datetime.date(*(int(part) for part in match.groups()))
    except ValueError as error:
        raise _Invalid(f"{_short(text)} is not a valid date: {error}") from None


def _check_timestamptz(value: object) -> datetime.datetime:
    text = _check_text(value, "a timestamp string with a UTC offset")
    match = _TIMESTAMP_RE.fullmatch(text)
    if match is None:
        raise _Invalid(
            f"expected a timestamp written YYYY-MM-DDTHH:MM:SS[.ffffff]+HH:MM (or Z), "
            f"got {_short(text)}"
        )
    year, month, day, hour, minute, second, fraction = match.groups()[:7]
    if not match.group("z") and not match.group("sign"):
        raise _Invalid(
            f"{_short(text)} has no UTC offset; write Z or ±HH:MM, since a timestamp "
            "without one would depend on the TimeZone setting"
        )
    if fraction is not None and len(fraction) > 6:
        raise _Invalid(f"{_short(text)} has more than 6 fractional digits (microseconds)")
    offset = datetime.timedelta(0)
    if match.group("sign"):
        hours, minutes = int(match.group("oh")), int(match.group("om") or 0)
        if hours > 15 or minutes > 59:
            raise _Invalid(f"{_short(text)} has an invalid UTC offset")
        offset = datetime.timedelta(hours=hours, minutes=minutes)
        offset = -offset if match.group("sign") == "-" else offset
    try:
        moment = datetime.datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second or 0),
            int((fraction or "0").ljust(6, "0")),
            tzinfo=datetime.timezone(offset),
        )
        return moment.astimezone(datetime.timezone.utc)
    except (ValueError, OverflowError) as error:
        raise _Invalid(f"{_short(text)} is not a valid timestamp: {error}") from None


def _check_uuid(value: object) -> object:
    text = _check_text(value, "a UUID string")
    if _UUID_RE.fullmatch(text) is None:
        raise _Invalid(
            f"expected a UUID written xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, got {_short(text)}"
        )
    import uuid  # imported when a uuid is submitted: it is slow to import

    return uuid.UUID(text)


def _check_jsonb(value: object) -> str:
    """Any JSON value whose strings and numbers PostgreSQL's jsonb accepts, as canonical text."""
    _check_json_tree(value)
    return canonical_json(value)


def _check_json_tree(value: object) -> None:
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        _check_text(value)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _check_json_tree(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key)
            _check_json_tree(item)
    else:
        _check_number(value)


_SCALAR_CHECKS: dict[str, collections.abc.Callable[[object], object]] = {
    "text": _check_text,
    "integer": _integer_check("integer", INT4_RANGE),
    "bigint": _integer_check("bigint", INT8_RANGE),
    "numeric": _check_number,
    "boolean": _check_boolean,
    "date": _check_date,
    "timestamptz": _check_timestamptz,
    "uuid": _check_uuid,
    "jsonb": _check_jsonb,
}


# --- wording ----------------------------------------------------------------


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, NonFinite):
        return value.text
    if isinstance(value, (decimal.Decimal, int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, collections.abc.Mapping):
        return "an object"
    return type(value).__name__


def _short(value: object, limit: int = 60) -> str:
    """A value for a message, cut short: messages must stay readable and small."""
    text = json.dumps(value) if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
