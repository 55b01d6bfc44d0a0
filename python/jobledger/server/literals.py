"""The SQL literal that stands for one bound value, produced and checked on its own.

Forms, by declared type (``x`` the value)::

    untyped string    'x'                  E'x' when x holds a backslash
    untyped number    42   1.50   (-3)     (negative ones parenthesised, so
                                           that ``{n}^2`` or ``{n}::text``
                                           keep the sign with the number)
    untyped boolean   TRUE / FALSE
    untyped null      NULL
    text              CAST('x' AS TEXT)
    integer           CAST(42 AS INT)      CAST(-42 AS INT)
    bigint            CAST(42 AS BIGINT)
    numeric           CAST(123456789012345678901234567890.123456789 AS DECIMAL)
    boolean           CAST(TRUE AS BOOLEAN)
    date              CAST('2026-11-01' AS DATE)
    timestamptz       CAST('2026-11-01 09:30:00+00:00' AS TIMESTAMPTZ)
    uuid              CAST('0b5d...' AS UUID)
    jsonb             CAST('{"a": 1}' AS JSONB)
    T[]               CAST(ARRAY[1, -2] AS BIGINT[])   CAST(ARRAY[] AS DATE[])
    typed null        CAST(NULL AS DATE)

Typed values are CASTs so that their type never depends on where the
placeholder stands; arrays are ``CAST(ARRAY[...] AS T[])`` so that their
elements follow the same quoting rules as every other constant.  Type names
are keywords or names of pg_catalog, which job queries search first.
Numbers are written positionally with every digit.

Strings: a quote is doubled.  A string holding a backslash is an ``E'...'``
escape string with each backslash doubled; every other string is a plain
``'...'`` one.  PostgreSQL reads both the same whatever
``standard_conforming_strings`` says (the setting only changes how plain
strings treat backslashes, and plain ones never hold one here).

Every literal is checked on its own before it is used: ``decode`` reads the
text back by the lexer's rules for exactly these forms and must give the
value's own text.  The checked text of small values is kept for the
session: jobs are often submitted with the same values.

Imported on ``submit_job``'s path: pure Python, standard library only.
"""

from __future__ import annotations

import datetime
import decimal
import re

from jobledger.server import params

# SQL type written in the CAST of each declared base type.
CAST_TYPES = {
    "text": "TEXT",
    "integer": "INT",
    "bigint": "BIGINT",
    "numeric": "DECIMAL",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timestamptz": "TIMESTAMPTZ",
    "uuid": "UUID",
    "jsonb": "JSONB",
}


def sql_type(param_type: params.ParamType) -> str:
    """The type name in a typed value's CAST, e.g. ``BIGINT[]``."""
    return CAST_TYPES[param_type.base] + ("[]" if param_type.is_array else "")


def literal(bound: params.BoundValue) -> str:
    """The checked SQL text of a bound value's literal."""
    key = _cache_key(bound)
    text = _checked.get(key) if key is not None else None
    if text is not None:
        return text
    text = write(bound)
    problem = check(bound, text)
    if problem is not None:
        raise RuntimeError(f"the literal for {{{bound.name}}} failed its check: {problem}")
    if key is not None:
        if len(_checked) >= _KEPT:
            _checked.clear()
        _checked[key] = text
    return text


_checked: dict[tuple[str | None, str], str] = {}
_KEPT = 4096
_KEY_MAX = 256


def _cache_key(bound: params.BoundValue) -> tuple[str | None, str] | None:
    """What a literal's text depends on: the declared type and the value's
    exact form (repr: 1.0 and 1.00 are equal Decimals written differently,
    True equals 1).  None for values too large to keep."""
    form = repr(bound.value)
    if len(form) > _KEY_MAX:
        return None
    return (bound.type.name if bound.type is not None else None, form)


# --- writing ----------------------------------------------------------------


def write(bound: params.BoundValue) -> str:
    """The literal's text, unchecked (see ``literal``)."""
    if bound.type is None:
        return _untyped(bound.value)
    cast = sql_type(bound.type)
    if bound.value is None:
        return f"CAST(NULL AS {cast})"
    if bound.type.is_array:
        elements = ", ".join(_element(bound.type.base, item) for item in bound.value)
        return f"CAST(ARRAY[{elements}] AS {cast})"
    return f"CAST({_element(bound.type.base, bound.value)} AS {cast})"


def _untyped(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, str):
        return string(value)
    text = params.decimal_text(decimal.Decimal(value))
    return f"({text})" if text.startswith("-") else text


def _element(base: str, value: object) -> str:
    if base == "boolean":
        return "TRUE" if value else "FALSE"
    if base in ("integer", "bigint", "numeric"):
        return params.decimal_text(decimal.Decimal(value))
    return string(text_of(value))


def text_of(value: object) -> str:
    """The input text PostgreSQL reads back as the value, whatever DateStyle or TimeZone."""
    if isinstance(value, datetime.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, datetime.date) or params.is_uuid(value):
        return str(value)
    if isinstance(value, str):
        return value
    raise TypeError(f"no text form for {type(value).__name__}")


def string(text: str) -> str:
    """A string constant read as ``text`` under either standard_conforming_strings."""
    quoted = text.replace("'", "''")
    if "\\" in text:
        return "E'" + quoted.replace("\\", "\\\\") + "'"
    return "'" + quoted + "'"


# --- checking ---------------------------------------------------------------

# One scalar constant of the forms above, matched where it starts: a number,
# a plain string (no backslash; quotes doubled) or an escape string
# (backslashes and quotes doubled).
_SCALAR = re.compile(r"-?[0-9]+(?:\.[0-9]+)?|'(?:[^'\\]|'')*'|E'(?:[^'\\]|''|\\\\)*'|TRUE|FALSE")


def check(bound: params.BoundValue, text: str) -> str | None:
    """Why ``text`` is not exactly the literal of ``bound``, or None.

    Reads the text back by the lexer's rules for the forms above (a plain
    string ends at a quote that is not doubled, an escape string reads
    ``\\\\`` as one backslash) and compares what it reads with the value.
    Anything else in the text, or a form the type does not take, is a
    problem.
    """
    if bound.type is None:
        read = _read_untyped(text)
        return None if read == _untyped_expected(bound.value) else f"{text[:60]!r} reads back as {read!r}"
    cast = " AS " + sql_type(bound.type) + ")"
    if not (text.startswith("CAST(") and text.endswith(cast)):
        return f"{text[:60]!r} is not a CAST to {sql_type(bound.type)}"
    inner = text[len("CAST(") : -len(cast)]
    if bound.value is None:
        return None if inner == "NULL" else f"{text[:60]!r} is not NULL"
    if bound.type.is_array:
        if not (inner.startswith("ARRAY[") and inner.endswith("]")):
            return f"{text[:60]!r} is not an ARRAY"
        found = _read_list(inner[len("ARRAY[") : -1])
        wanted = [_element_expected(bound.type.base, v) for v in bound.value]
        return None if found == wanted else "the array reads back differently"
    read = _read_scalar(inner)
    return None if read == _element_expected(bound.type.base, bound.value) else f"reads back as {read!r}"


def _untyped_expected(value: object) -> object:
    if value is None:
        return ("null", None)
    if isinstance(value, bool):
        return ("boolean", value)
    if isinstance(value, str):
        return ("string", value)
    return ("number", params.decimal_text(decimal.Decimal(value)))


def _element_expected(base: str, value: object) -> object:
    if base == "boolean":
        return ("boolean", value)
    if base in ("integer", "bigint", "numeric"):
        return ("number", params.decimal_text(decimal.Decimal(value)))
    return ("string", text_of(value))


def _read_untyped(text: str) -> object:
    if text == "NULL":
        return ("null", None)
    if text.startswith("(-") and text.endswith(")"):
        inner = _read_scalar(text[1:-1])
        return inner if inner and inner[0] == "number" and inner[1].startswith("-") else None
    read = _read_scalar(text)
    if read and read[0] == "number" and read[1].startswith("-"):
        return None  # a bare negative number would read differently after an operator
    return read


def _read_list(text: str) -> list[object] | None:
    """The scalars of ``a, b, c`` (each of the forms above), or None."""
    found: list[object] = []
    position = 0
    while position < len(text):
        if found:
            if not text.startswith(", ", position):
                return None
            position += 2
        match = _SCALAR.match(text, position)
        if match is None:
            return None
        found.append(_read_scalar(match.group(0)))
        position = match.end()
    return found


def _read_scalar(text: str) -> object:
    """What one scalar constant of the forms above reads as, or None."""
    match = _SCALAR.fullmatch(text)
    if match is None:
        return None
    if text in ("TRUE", "FALSE"):
        return ("boolean", text == "TRUE")
    if text.startswith("'"):
        return ("string", text[1:-1].replace("''", "'"))
    if text.startswith("E'"):
        body = text[2:-1]
        out, index = [], 0
        while index < len(body):
            char = body[index]
            out.append(char)
            index += 2 if char in "\\'" else 1  # each comes doubled in this form
        return ("string", "".join(out))
    return ("number", text)
