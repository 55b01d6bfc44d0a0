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


class Renderer:
    """Renders one template many times without re-writing or re-reading the whole query.

    ``render`` writes the whole tree and reads it all back for every call.
    A job is rendered on every submit, so this does that work once per
    template instead: the template is written once with a marker at each
    placeholder and cut into the fixed text between them (the skeleton), and
    each call writes and checks only the values.

    Why that is the same guarantee: rendered SQL is skeleton text plus one
    literal's SQL per placeholder.  On construction, for every literal shape
    ``literal_node`` can build (``template.probe_literals``), the skeleton
    joined with the probe's SQL is checked to equal what writing the whole
    substituted tree gives, and ``parse_template`` already proved that SQL
    reads back as the substituted tree.  On each call, every literal's SQL
    must read back, alone, as exactly its node, and hold no plain string with
    a backslash.  A literal that reads back as itself alone is whole tokens
    that begin and end where the node does, so in the skeleton it can only be
    that node again.  A template whose skeleton does not match for some shape
    keeps the full check (``fast`` is False).
    """

    def __init__(self, template: jobledger.template.Template) -> None:
        self.template = template
        self._segments, self._slots = _skeleton(template.expression)
        self.fast = all(
            self._join({name: jobledger.template.to_sql(probe) for name in template.placeholders})
            == jobledger.template.to_sql(
                jobledger.template.substitute(
                    template.expression, {name: probe for name in template.placeholders}
                )
            )
            for probe in jobledger.template.probe_literals()
        )

    def render(self, bound: collections.abc.Mapping[str, jobledger.params.BoundValue]) -> str:
        """What ``render(template, bound)`` returns, checked value by value."""
        if not self.fast:
            return render(self.template, bound)
        missing = sorted(self.template.placeholders - set(bound))
        if missing:
            raise RuntimeError(f"no bound value for placeholders: {', '.join(missing)}")
        return self._join({name: literal_sql(bound[name]) for name in self.template.placeholders})

    def _join(self, texts: collections.abc.Mapping[str, str]) -> str:
        parts = [self._segments[0]]
        for name, segment in zip(self._slots, self._segments[1:]):
            parts.append(texts[name])
            parts.append(segment)
        return "".join(parts)


def literal_sql(bound: jobledger.params.BoundValue) -> str:
    """The SQL of a bound value's literal, checked to read back, alone, as exactly its node.

    A literal depends only on the value's type and exact form, so the checked
    text of small values is kept for the session (``_literals``): jobs are
    often submitted with the same values (today's date, a tenant id).
    """
    key = _literal_key(bound)
    text = _literals.get(key) if key is not None else None
    if text is not None:
        return text
    node = literal_node(bound)
    text = jobledger.template.to_sql(node)
    problem = jobledger.template.round_trip_problem(node, text)
    if problem is not None:
        raise RuntimeError(f"the value of {{{bound.name}}} failed its check: {problem}")
    if key is not None:
        if len(_literals) >= _LITERALS_KEPT:
            _literals.clear()
        _literals[key] = text
    return text


# Checked literal SQL by _literal_key; cleared when full.
_literals: dict[tuple[str | None, str], str] = {}
_LITERALS_KEPT = 4096
_LITERAL_KEY_MAX = 256


def _literal_key(bound: jobledger.params.BoundValue) -> tuple[str | None, str] | None:
    """What a literal's text depends on: the declared type and the value's exact
    form.  repr, not the value: 1.0 and 1.00 are equal Decimals written
    differently, True equals 1.  None for values too large to keep."""
    form = repr(bound.value)
    if len(form) > _LITERAL_KEY_MAX:
        return None
    return (bound.type.name if bound.type is not None else None, form)


# NUL cannot occur in PostgreSQL text, so it cannot occur in a template's SQL
# either: it marks the placeholders of a skeleton unambiguously.
_SLOT_MARK = "\0"


class _SkeletonDialect(jobledger.template.JobledgerPostgres):
    """Writes a placeholder as NUL, name, NUL: the cut points of a skeleton."""

    class Generator(jobledger.template.JobledgerPostgres.Generator):
        def placeholder_sql(self, expression: exp.Placeholder) -> str:
            return f"{_SLOT_MARK}{expression.this}{_SLOT_MARK}"


_SKELETON_DIALECT = _SkeletonDialect()


def _skeleton(tree: exp.Expr) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(text between placeholders, placeholder names in order) of a template tree."""
    marked = _SKELETON_DIALECT.generate(tree, copy=True, comments=False)
    pieces = marked.split(_SLOT_MARK)
    segments, slots = tuple(pieces[0::2]), tuple(pieces[1::2])
    if len(slots) != sum(1 for _ in tree.find_all(exp.Placeholder)):
        raise RuntimeError("the template's skeleton does not hold each placeholder once")
    return segments, slots


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
