"""Compare the columns a job's query produces with the columns of its destination table.

A run appends the query's rows to the destination table by column name, so
the check is about names and types, not order:

* every produced column exists in the destination, is not a generated column
  (identity ALWAYS or GENERATED ... STORED), and its type is the destination's
  type or widens to it without loss (``WIDENINGS``);
* every destination column that is NOT NULL, has no default and is not
  generated is produced (otherwise every insert would fail);
* no column name is produced twice.

Types are PostgreSQL's ``format_type()`` text on both sides (``integer``,
``numeric(10,2)``, ``character varying(20)``, ``timestamp(3) with time zone``,
``text[]`` ...).  Types outside the table match only themselves.

Deliberately not widenings:

* ``character(n)`` to anything but ``character(n)``: a cast to text or varchar
  drops its trailing blanks and a cast to a longer ``character(m)`` adds
  more, so the value other types see changes;
* ``bigint`` to ``double precision`` (or ``real``), ``integer`` to ``real``,
  numeric to floating point: digits are lost;
* ``text`` or an unconstrained ``character varying`` to ``character varying(n)``,
  and anything to a shorter or less precise type: values may be cut or rounded;
* ``timestamp with time zone`` to ``timestamp without time zone``, ``jsonb`` to
  ``json``.
"""

from __future__ import annotations

import collections
import collections.abc
import re

from jobledger.core import errors

# Aliases accepted for the names format_type() writes.
_ALIASES = {
    "int2": "smallint",
    "int4": "integer",
    "int": "integer",
    "int8": "bigint",
    "float4": "real",
    "float8": "double precision",
    "decimal": "numeric",
    "varchar": "character varying",
    "char": "character",
    "bpchar": "character",
    "bool": "boolean",
    "timestamp": "timestamp without time zone",
    "timestamptz": "timestamp with time zone",
}

# An unquoted type name with optional modifiers, which format_type() writes
# either after the name ("numeric(10,2)") or inside it
# ("timestamp(3) with time zone").
_TYPE_RE = re.compile(
    r"(?P<head>[a-z_][a-z0-9_]*(?: [a-z_][a-z0-9_]*)*?)"
    r"(?:\s*\((?P<modifiers>-?[0-9]+(?:\s*,\s*-?[0-9]+)*)\))?"
    r"(?P<tail>(?: [a-z_][a-z0-9_]*)*)"
)


class DestinationColumn(collections.namedtuple("DestinationColumn", "name type not_null has_default generated",
                                               defaults=(False, False, False))):
    """One column of the destination table, as the catalog describes it.

    ``generated`` is true for identity ALWAYS and GENERATED ... STORED columns,
    which an INSERT cannot write.
    """

    __slots__ = ()


class PgType(collections.namedtuple("PgType", "family modifiers dimensions", defaults=((), 0))):
    """A format_type() text taken apart: family (``numeric``), modifiers ((10, 2)),
    array dimensions (number of ``[]``)."""

    __slots__ = ()


def parse_type(text: str) -> PgType:
    """Take a format_type() text apart; names it does not know are kept as written."""
    rest = text.strip()
    dimensions = 0
    while rest.endswith("[]"):
        rest, dimensions = rest[:-2].rstrip(), dimensions + 1
    match = _TYPE_RE.fullmatch(rest)
    if match is None:
        return PgType(rest, (), dimensions)
    family = " ".join(f"{match.group('head')}{match.group('tail')}".split())
    family = _ALIASES.get(family, family)
    modifiers = match.group("modifiers")
    numbers = tuple(int(part) for part in modifiers.split(",")) if modifiers else ()
    return PgType(family, numbers, dimensions)


# --- the widening table -----------------------------------------------------


def _always(source: PgType, target: PgType) -> bool:
    return True


def _integer_to_numeric(digits: int) -> collections.abc.Callable[[PgType, PgType], bool]:
    def check(source: PgType, target: PgType) -> bool:
        if not target.modifiers:
            return True
        precision, scale = _numeric_precision_scale(target)
        return scale >= 0 and precision - scale >= digits

    return check


def _numeric_to_numeric(source: PgType, target: PgType) -> bool:
    if not target.modifiers:
        return True
    if not source.modifiers:
        return False
    precision, scale = _numeric_precision_scale(source)
    wider_precision, wider_scale = _numeric_precision_scale(target)
    return wider_scale >= scale and wider_precision - wider_scale >= precision - scale


def _numeric_precision_scale(numeric: PgType) -> tuple[int, int]:
    precision = numeric.modifiers[0]
    scale = numeric.modifiers[1] if len(numeric.modifiers) > 1 else 0
    return precision, scale


def _length_not_shorter(source: PgType, target: PgType) -> bool:
    if not target.modifiers:
        return True
    return bool(source.modifiers) and target.modifiers[0] >= source.modifiers[0]


def _unconstrained_target(source: PgType, target: PgType) -> bool:
    return not target.modifiers


def _precision_not_lower(source: PgType, target: PgType) -> bool:
    # No precision means the maximum, 6 fractional digits.
    source_precision = source.modifiers[0] if source.modifiers else 6
    target_precision = target.modifiers[0] if target.modifiers else 6
    return target_precision >= source_precision


class Widening(collections.namedtuple("Widening", "source target condition check", defaults=(_always,))):
    """One lossless widening: a ``source`` type family converts to ``target`` when ``condition``.

    ``check`` decides the condition from the two parsed types; ``condition``
    says the same in words, for docs/destinations.md.
    """

    __slots__ = ()


# The one table of lossless widenings (besides a type to itself).  Arrays widen
# element-wise by the same rows, with the same number of dimensions.
WIDENINGS: tuple[Widening, ...] = (
    Widening("smallint", "integer", "always"),
    Widening("smallint", "bigint", "always"),
    Widening(
        "smallint",
        "numeric",
        "numeric, or numeric(p,s) with s >= 0 and p - s >= 5",
        _integer_to_numeric(5),
    ),
    Widening("smallint", "double precision", "always"),
    Widening("integer", "bigint", "always"),
    Widening(
        "integer",
        "numeric",
        "numeric, or numeric(p,s) with s >= 0 and p - s >= 10",
        _integer_to_numeric(10),
    ),
    Widening("integer", "double precision", "always"),
    Widening(
        "bigint",
        "numeric",
        "numeric, or numeric(p,s) with s >= 0 and p - s >= 19",
        _integer_to_numeric(19),
    ),
    Widening(
        "numeric",
        "numeric",
        "to numeric; numeric(p,s) to numeric(p2,s2) with s2 >= s and p2 - s2 >= p - s",
        _numeric_to_numeric,
    ),
    Widening("real", "double precision", "always"),
    Widening(
        "character varying",
        "character varying",
        "to character varying; character varying(n) to character varying(m) with m >= n",
        _length_not_shorter,
    ),
    Widening("character varying", "text", "always"),
    Widening(
        "text",
        "character varying",
        "to character varying without a length only",
        _unconstrained_target,
    ),
    Widening("date", "timestamp without time zone", "always"),
    Widening("date", "timestamp with time zone", "always (midnight in the session's TimeZone)"),
    Widening(
        "timestamp without time zone",
        "timestamp without time zone",
        "timestamp(p) to timestamp(q) with q >= p (no precision means 6)",
        _precision_not_lower,
    ),
    Widening(
        "timestamp without time zone",
        "timestamp with time zone",
        "precision not lower; the timestamp is read in the session's TimeZone",
        _precision_not_lower,
    ),
    Widening(
        "timestamp with time zone",
        "timestamp with time zone",
        "timestamptz(p) to timestamptz(q) with q >= p (no precision means 6)",
        _precision_not_lower,
    ),
    Widening(
        "json",
        "jsonb",
        "always (jsonb drops insignificant whitespace, duplicate keys and key order)",
    ),
)


def is_widening(source: str, target: str) -> bool:
    """True if a value of type ``source`` fits a column of type ``target`` without loss."""
    produced, wanted = parse_type(source), parse_type(target)
    if produced.dimensions != wanted.dimensions:
        return False
    if produced == wanted:
        return True
    return any(
        rule.source == produced.family
        and rule.target == wanted.family
        and rule.check(produced, wanted)
        for rule in WIDENINGS
    )


# --- the comparison ---------------------------------------------------------


def diff(
    produced: collections.abc.Sequence[tuple[str, str]],
    destination: collections.abc.Sequence[DestinationColumn],
) -> list[str]:
    """Every difference between the produced columns and the destination, in words.

    Produced columns are (name, format_type text) pairs.  Empty means the
    query's rows can be written to the destination.
    """
    differences: list[str] = []
    counts = collections.Counter(name for name, _ in produced)
    for name, count in counts.items():
        if count > 1:
            differences.append(f'column "{name}" is produced {count} times')
    columns = {column.name: column for column in destination}
    seen: set[str] = set()
    for name, produced_type in produced:
        if name in seen:
            continue
        seen.add(name)
        column = columns.get(name)
        if column is None:
            differences.append(
                f'column "{name}" ({produced_type}) does not exist in the destination'
            )
        elif column.generated:
            differences.append(
                f'column "{name}" is a generated column in the destination and cannot be written'
            )
        elif not is_widening(produced_type, column.type):
            differences.append(
                f'column "{name}" is {produced_type} in the query but {column.type} in the '
                "destination, which is not the same type or a lossless widening"
            )
    for column in destination:
        required = column.not_null and not column.has_default and not column.generated
        if required and column.name not in counts:
            differences.append(
                f'column "{column.name}" is NOT NULL without a default in the destination '
                "but the query does not produce it"
            )
    return differences


def check(
    job: str,
    produced: collections.abc.Sequence[tuple[str, str]],
    destination: collections.abc.Sequence[DestinationColumn],
) -> None:
    """Raise one schema_mismatch error listing every difference, if there is any."""
    differences = diff(produced, destination)
    if not differences:
        return
    more = f" (and {len(differences) - 1} more)" if len(differences) > 1 else ""
    raise errors.JobledgerError(
        "schema_mismatch",
        f'the output of job "{job}" does not fit its destination table: {differences[0]}{more}',
        detail="\n".join(differences),
    )
