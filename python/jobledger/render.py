"""Render a job's SQL: put each bound value, as one constant, in place of its placeholders.

Values are never spliced into SQL text.  Each value becomes one constant node
in a copy of the template's sqlglot tree, sqlglot writes the tree as SQL, and
the SQL is read back and compared with the tree before it is returned.  A
value can therefore only ever be one constant, whatever its text holds
(quotes, ``--``, ``/*``, ``$$``, braces, backslashes): a value that tried to be
more would read back as a different tree.

The forms written, by declared type (``x`` the value)::

    untyped string    'x'                  e'x' when x holds a backslash
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
    uuid              CAST('0b5d…' AS UUID)
    jsonb             CAST('{"a": 1}' AS JSONB)
    T[]               CAST(ARRAY[1, 2] AS BIGINT[])   CAST(ARRAY[] AS DATE[])
    typed null        CAST(NULL AS DATE)

Typed values are CASTs so that their type never depends on where the
placeholder stands.  Arrays are one ``CAST(ARRAY[...] AS T[])`` rather than a
cast of an array literal string ``'{...}'``: the array-literal syntax has its
own quoting and backslash rules, while ``ARRAY[...]`` holds ordinary
constants, written by the same rules as every other value; an empty array
needs the cast anyway.  Numbers are written in positional notation with every
digit, so ``1E+400`` becomes ``1`` and 400 zeros: exact, and read the same by
every PostgreSQL release.

standard_conforming_strings: with it off, PostgreSQL reads a backslash in a
plain ``'...'`` string as an escape.  A string holding a backslash is
therefore written as an ``E'...'`` escape string (sqlglot's
``exp.ByteString``), in which sqlglot doubles each backslash; escape strings
are read the same way whatever the setting.  Strings without a backslash are
plain ``'...'`` strings, which also read the same either way.  The check after
writing refuses any plain string holding a backslash, and the template's own
strings were made to follow the same rule when it was parsed
(``template.string_node``).
"""

from __future__ import annotations

import collections.abc
import datetime
import decimal
import functools
import uuid

import sqlglot.expressions as exp

import jobledger.params
import jobledger.template


def render(
    template: jobledger.template.Template,
    bound: collections.abc.Mapping[str, jobledger.params.BoundValue],
) -> str:
    """The SQL to run: the template with every placeholder replaced by its bound value.

    Works on a copy of the template's tree, so a cached Template can be
    rendered any number of times.  Raises RuntimeError (a bug, never a user
    error) if a placeholder has no bound value or if the SQL does not read back
    as the rendered tree.
    """
    missing = sorted(template.placeholders - set(bound))
    if missing:
        raise RuntimeError(f"no bound value for placeholders: {', '.join(missing)}")
    values = {name: literal_node(bound[name]) for name in template.placeholders}
    tree = jobledger.template.substitute(template.expression, values)
    sql = jobledger.template.to_sql(tree)
    problem = jobledger.template.round_trip_problem(tree, sql)
    if problem is not None:
        raise RuntimeError(f"rendered job SQL failed its check: {problem}")
    return sql


def literal_node(bound: jobledger.params.BoundValue) -> exp.Expr:
    """The one constant node that stands for a bound value (see the module doc)."""
    if bound.type is None:
        return _untyped_node(bound.value)
    to = _data_type(bound.type.name)
    if bound.value is None:
        return exp.Cast(this=exp.Null(), to=to)
    if bound.type.is_array:
        elements = [_typed_element(bound.type.base, item) for item in bound.value]
        return exp.Cast(this=exp.Array(expressions=elements), to=to)
    return exp.Cast(this=_typed_element(bound.type.base, bound.value), to=to)


def _untyped_node(value: object) -> exp.Expr:
    """A plain constant: PostgreSQL infers its type from where it stands."""
    if value is None:
        return exp.Null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, str):
        return jobledger.template.string_node(value)
    number = _number_node(decimal.Decimal(value))
    return exp.Paren(this=number) if isinstance(number, exp.Neg) else number


def _typed_element(base: str, value: object) -> exp.Expr:
    """The constant inside the CAST for one scalar (or array element) of a declared type."""
    if base == "boolean":
        return exp.Boolean(this=value)
    if base in ("integer", "bigint", "numeric"):
        return _number_node(decimal.Decimal(value))
    return jobledger.template.string_node(_text_of(value))


def _text_of(value: object) -> str:
    """The input text PostgreSQL reads back as the value, whatever DateStyle or TimeZone."""
    if isinstance(value, datetime.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, (datetime.date, uuid.UUID)):
        return str(value)
    if isinstance(value, str):
        return value
    raise TypeError(f"no text form for {type(value).__name__}")


def _number_node(number: decimal.Decimal) -> exp.Expr:
    """A number literal with every digit, negative ones as ``-`` applied to the literal
    (how sqlglot reads ``-5`` back)."""
    text = jobledger.params.decimal_text(number)
    if text.startswith("-"):
        return exp.Neg(this=exp.Literal(this=text[1:], is_string=False))
    return exp.Literal(this=text, is_string=False)


@functools.lru_cache(maxsize=None)
def _cached_data_type(name: str) -> exp.DataType:
    return exp.DataType.build(name, dialect="postgres")


def _data_type(name: str) -> exp.DataType:
    """The sqlglot type for a declared type name such as ``bigint[]`` (a fresh copy)."""
    return _cached_data_type(name).copy()
