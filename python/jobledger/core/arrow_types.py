"""The PostgreSQL → Arrow type mapping, and the comparison of Arrow schemas.

Pure Python on purpose: the server-side preflight (PL/Python, which has only
sqlglot) imports it to check a job's query against an existing dataset at
submit time, and the client side (``arrow_schema``, ``arrow_batches``,
``parquet_dataset``) uses the same table, so the two can never disagree.

Arrow types are written as short strings, the *description* form, which is
also what a dataset manifest stores::

    bool int16 int32 int64 float32 float64 decimal128(p,s) decimal256(p,s)
    string binary date32 timestamp[us] timestamp[us, tz=UTC] time64[us]
    month_day_nano uuid json list<T>
    struct<months:int32,days:int32,nanoseconds:int64>   (Parquet's interval)

PostgreSQL types are ``format_type()`` text, as ``preflight.query_columns``
and the runner's result description give them.  The mapping (``MAPPING_TABLE``
has it in words, for docs/destinations.md) is the same for every Arrow
destination; Parquet, which has no month-day-nano interval, stores that one
type as a struct of its three fields (``parquet_description``; Lance, whose
schema has no such interval either, the same: ``lance_description``):

* integers, floats, boolean, text types, bytea, date, timestamp(tz) and time
  map to their Arrow counterparts.  ``timestamptz`` is the instant in UTC,
  whatever the session's TimeZone.  ±infinity and years after 294246 fail
  the run (``value_not_representable``), and so does ``time '24:00:00'``
  (Arrow's time64 ends before midnight).
* ``numeric(p,s)`` keeps its precision and scale: ``decimal128(p,s)`` up to
  38 digits, ``decimal256(p,s)`` up to 76; NaN and ±Infinity fail the run.
* plain ``numeric`` (what ``sum()`` and ``avg()`` return), and ``numeric(p,s)``
  with more than 76 digits or a scale outside 0..p, map to ``string``: the
  exact decimal text PostgreSQL writes (``numeric_out``), every digit, and
  ``NaN``, ``Infinity``, ``-Infinity`` as written.  No fixed decimal type
  can hold every value of an unconstrained numeric, and a scale guessed
  from the data would change the schema from run to run; a reader who
  wants a decimal column casts in the query, ``CAST(sum(x) AS
  numeric(20,2))``, and gets ``decimal128(20,2)``.
* ``interval`` → ``month_day_nano``: months, days and nanoseconds, each kept
  apart as PostgreSQL keeps them (never "1 month = 30 days").  A time part
  beyond ±292 years (int64 nanoseconds) fails the run.
* ``uuid`` → Arrow's canonical ``arrow.uuid`` extension type (16 bytes; Parquet
  UUID), ``json``/``jsonb`` → the canonical ``arrow.json`` extension type (the
  JSON text; Parquet JSON).  Readers without the extensions see
  ``fixed_size_binary(16)`` and ``string``.
* one-dimensional arrays → ``list<T>`` of the element's mapping; a value with
  more dimensions fails the run, and lower bounds other than 1 are dropped.
* every other type (money, tsvector, tsquery, jsonpath, xml, pg_lsn, bit,
  network and geometric types, ranges and multiranges, enums, composite
  types and records, ``time with time zone``, ``"char"``, reg* types ...)
  → ``string``: the value's text output (the type's output function, in
  the runner's pinned settings), which PostgreSQL's input function reads
  back to the same value.  Nothing is refused by type.  A domain maps as
  its base type (PostgreSQL describes a domain-typed result column by it).
"""

from __future__ import annotations

import collections
import collections.abc
import dataclasses
import re

from jobledger.core import errors, schema_diff

DECIMAL128_MAX_PRECISION = 38
DECIMAL256_MAX_PRECISION = 76

# format_type() family (as schema_diff.parse_type normalises it) -> description.
_SIMPLE: dict[str, str] = {
    "smallint": "int16",
    "integer": "int32",
    "bigint": "int64",
    "real": "float32",
    "double precision": "float64",
    "text": "string",
    "character varying": "string",
    "character": "string",
    "name": "string",
    "boolean": "bool",
    "date": "date32",
    "timestamp without time zone": "timestamp[us]",
    "timestamp with time zone": "timestamp[us, tz=UTC]",
    "time without time zone": "time64[us]",
    "interval": "month_day_nano",
    "uuid": "uuid",
    "json": "json",
    "jsonb": "json",
    "bytea": "binary",
}
# Families whose values arrive as text natively (no output function needed).
_NATIVE_STRINGS = frozenset({"text", "character varying", "character", "name"})
# interval with a field restriction ("interval day to second") is an interval.
_INTERVAL_FIELDS = re.compile(r"interval (year|month|day|hour|minute|second)( to (month|hour|minute|second))?")

STRING = "string"
MONTH_DAY_NANO = "month_day_nano"
# Parquet has no month-day-nano interval: the same three fields as a struct.
INTERVAL_STRUCT = "struct<months:int32,days:int32,nanoseconds:int64>"

# The mapping in words: (PostgreSQL, Arrow, note), for docs/destinations.md and the report.
MAPPING_TABLE: tuple[tuple[str, str, str], ...] = (
    ("smallint", "int16", ""),
    ("integer", "int32", ""),
    ("bigint", "int64", ""),
    ("real", "float32", "NaN and ±Infinity kept"),
    ("double precision", "float64", "NaN and ±Infinity kept"),
    ("numeric(p,s), p <= 38", "decimal128(p,s)", "exact; NaN/±Infinity fail the run"),
    ("numeric(p,s), 38 < p <= 76", "decimal256(p,s)", "exact; NaN/±Infinity fail the run"),
    ("numeric (no typmod, e.g. sum(), avg()); numeric(p,s) with p > 76, s < 0 or s > p", "string",
     "the exact decimal text (every digit; NaN, Infinity, -Infinity kept); "
     "cast to numeric(p,s) in the query for a decimal column"),
    ("text, character varying(n), character(n), name", "string", "character(n) keeps its blanks"),
    ("boolean", "bool", ""),
    ("date", "date32", "±infinity fails the run"),
    ("timestamp(p)", "timestamp[us]", "±infinity and years after 294246 fail the run"),
    ("timestamp(p) with time zone", "timestamp[us, tz=UTC]",
     "the instant, whatever the session's TimeZone; ±infinity and years after 294246 fail the run"),
    ("time(p)", "time64[us]", "24:00:00 fails the run"),
    ("interval, interval(p), interval <fields>", "month_day_nano",
     "months, days, nanoseconds as PostgreSQL keeps them; Parquet: struct<months: int32, days: int32, "
     "nanoseconds: int64>; a time part beyond ±292 years fails the run"),
    ("uuid", "uuid", "arrow.uuid extension, fixed_size_binary(16) storage"),
    ("json, jsonb", "json", "arrow.json extension, string storage: the JSON text"),
    ("bytea", "binary", ""),
    ("T[] (one dimension)", "list<T>", "element NULLs kept; multi-dimensional values fail the run"),
    ("every other type: money, tsvector, tsquery, jsonpath, xml, pg_lsn, txid_snapshot, pg_snapshot, bit, "
     "varbit, inet, cidr, macaddr, geometric types, ranges, multiranges, enums, composite types, records, "
     "time with time zone, \"char\", oid and reg* types ... (a domain maps as its base type)", "string",
     "the value's text output in the runner's pinned settings (PostgreSQL's input function reads it back); "
     "arrays of them are list<string>"),
)

_DECIMAL_RE = re.compile(r"decimal(?P<bits>128|256)\((?P<p>[0-9]+),(?P<s>-?[0-9]+)\)")
_SCALARS = frozenset({*_SIMPLE.values(), INTERVAL_STRUCT})


@dataclasses.dataclass(frozen=True)
class MappedColumn:
    """A result column: its name, its PostgreSQL type and its Arrow type (description form)."""

    name: str
    pg_type: str
    arrow: str
    # True when the values are carried as the type's text output (``string``
    # or ``list<string>`` for a type that is not text itself).
    text_form: bool = False


@dataclasses.dataclass(frozen=True)
class ArrowType:
    """A description taken apart: ``kind`` (``int64``, ``decimal128``, ``list`` ...),
    precision and scale for decimals, the element for lists."""

    kind: str
    precision: int | None = None
    scale: int | None = None
    element: ArrowType | None = None


def unsupported_reason(pg_type: str) -> str | None:
    """Why ``pg_type`` has no Arrow mapping, in words; None when it has one."""
    return _map(pg_type)[1]


def text_form(pg_type: str) -> bool:
    """True when values of ``pg_type`` are carried as their text output."""
    return _map(pg_type)[2]


def _map(pg_type: str) -> tuple[str | None, str | None, bool]:
    """(description, why refused, carried as text) of a format_type() text."""
    parsed = schema_diff.parse_type(pg_type)
    if parsed.dimensions > 1:
        return None, "only one-dimensional arrays are supported", False
    element, as_text = _map_scalar(parsed)
    if parsed.dimensions == 0:
        return element, None, as_text
    return f"list<{element}>", None, as_text


def _map_scalar(parsed: schema_diff.PgType) -> tuple[str, bool]:
    if parsed.family == "numeric":
        decimal = _map_numeric(parsed.modifiers)
        return (decimal, False) if decimal is not None else (STRING, True)
    if _INTERVAL_FIELDS.fullmatch(parsed.family):
        return MONTH_DAY_NANO, False
    simple = _SIMPLE.get(parsed.family)
    if simple is None:
        return STRING, True
    return simple, False


def _map_numeric(modifiers: tuple[int, ...]) -> str | None:
    """The decimal type of numeric(p,s); None when there is none (no typmod, too wide, odd scale)."""
    if not modifiers:
        return None
    precision = modifiers[0]
    scale = modifiers[1] if len(modifiers) > 1 else 0
    if scale < 0 or scale > precision:
        return None  # Parquet's DECIMAL cannot store them
    if precision <= DECIMAL128_MAX_PRECISION:
        return f"decimal128({precision},{scale})"
    if precision <= DECIMAL256_MAX_PRECISION:
        return f"decimal256({precision},{scale})"
    return None


def parquet_description(description: str) -> str:
    """How a Parquet dataset stores a description: the same, but ``month_day_nano``
    (which Parquet lacks) as ``INTERVAL_STRUCT``, also inside lists."""
    parsed = parse(description)
    if parsed.kind == "list":
        assert parsed.element is not None
        return f"list<{parquet_description(describe(parsed.element))}>"
    return INTERVAL_STRUCT if parsed.kind == MONTH_DAY_NANO else description


# Delta Lake has no decimal256, time, uuid or json type and no month-day-nano
# interval: a delta: table stores these columns in these forms.
_DELTA_FORMS = {"decimal256": STRING, "time64[us]": STRING, "uuid": STRING, "json": STRING,
                MONTH_DAY_NANO: INTERVAL_STRUCT}


def delta_description(description: str) -> str:
    """How a Delta table stores a description: the same, but the types Delta
    lacks in ``_DELTA_FORMS``' forms (decimal256, time64[us], uuid and json as
    their text, month_day_nano as ``INTERVAL_STRUCT``), also inside lists."""
    parsed = parse(description)
    if parsed.kind == "list":
        assert parsed.element is not None
        return f"list<{delta_description(describe(parsed.element))}>"
    return _DELTA_FORMS.get(parsed.kind, description)


# Lance stores every type of the mapping as it is (decimal128/256, time64,
# the uuid and json extension types, lists) except Arrow's month-day-nano
# interval, which its schema refuses ("Unsupported data type:
# Interval(MonthDayNano)", pylance 14): a lance: dataset stores intervals as
# INTERVAL_STRUCT, the three fields kept apart, exactly as a Parquet dataset
# (and a Delta table) does.  tests/runner/test_lance.py holds Lance to this.
def lance_description(description: str) -> str:
    """How a Lance dataset stores a description: the same, but ``month_day_nano``
    as ``INTERVAL_STRUCT``, also inside lists (``parquet_description``'s rule)."""
    return parquet_description(description)


def describe(parsed: ArrowType) -> str:
    """The description of a parsed description (``parse`` undone)."""
    if parsed.kind == "list":
        assert parsed.element is not None
        return f"list<{describe(parsed.element)}>"
    if parsed.kind.startswith("decimal"):
        return f"{parsed.kind}({parsed.precision},{parsed.scale})"
    return parsed.kind


def map_columns(columns: collections.abc.Sequence[tuple[str, str]]) -> list[MappedColumn]:
    """Map (name, format_type) pairs; one ``unsupported_type`` error naming every refused column."""
    mapped: list[MappedColumn] = []
    problems: list[str] = []
    for name, pg_type in columns:
        arrow, reason, as_text = _map(pg_type)
        if arrow is None:
            problems.append(f'column "{name}" is {pg_type}: {reason}')
        else:
            mapped.append(MappedColumn(name, pg_type, arrow, as_text))
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise errors.JobledgerError(
            "unsupported_type",
            f"the query's result cannot be stored in Arrow: {problems[0]}{more}",
            detail="\n".join(problems),
        )
    return mapped


# --- descriptions ------------------------------------------------------------


def parse(description: str) -> ArrowType:
    """Take a description apart; ValueError for anything that is not one."""
    text = description.strip()
    if text.startswith("list<") and text.endswith(">"):
        return ArrowType("list", element=parse(text[5:-1]))
    match = _DECIMAL_RE.fullmatch(text.replace(" ", ""))
    if match:
        return ArrowType(f"decimal{match['bits']}", int(match["p"]), int(match["s"]))
    if text in _SCALARS:
        return ArrowType(text)
    raise ValueError(f"not an Arrow type description: {description!r}")


def widens(source: str, target: str) -> bool:
    """True if values of Arrow type ``source`` convert to ``target`` without loss.

    The same rules as ``schema_diff`` for tables, on the Arrow side: wider
    integers, float32 to float64, decimals with no fewer integer and fraction
    digits, element-wise for lists.  A type always widens to itself.
    """
    return _widens(parse(source), parse(target))


_INTEGER_WIDTH = {"int16": 16, "int32": 32, "int64": 64}


def _widens(source: ArrowType, target: ArrowType) -> bool:
    if source == target:
        return True
    if source.kind == "list" or target.kind == "list":
        return (source.kind == target.kind == "list" and source.element is not None
                and target.element is not None and _widens(source.element, target.element))
    if source.kind in _INTEGER_WIDTH and target.kind in _INTEGER_WIDTH:
        return _INTEGER_WIDTH[source.kind] <= _INTEGER_WIDTH[target.kind]
    if (source.kind, target.kind) == ("float32", "float64"):
        return True
    if source.kind.startswith("decimal") and target.kind.startswith("decimal"):
        assert source.precision is not None and source.scale is not None
        assert target.precision is not None and target.scale is not None
        return target.scale >= source.scale and (
            target.precision - target.scale >= source.precision - source.scale)
    return False


def schema_problems(
    produced: collections.abc.Sequence[tuple[str, str]],
    existing: collections.abc.Sequence[tuple[str, str]],
) -> list[str]:
    """Every difference between a query's Arrow schema and an existing dataset's, in words.

    Both are (name, description) pairs, compared by name.  Empty means every
    batch of the query can be written into the dataset (cast where a type
    widens) and every file of the dataset keeps one schema.  A dataset has no
    defaults, so every one of its columns must be produced.
    """
    problems: list[str] = []
    counts = collections.Counter(name for name, _ in produced)
    for name, count in counts.items():
        if count > 1:
            problems.append(f'column "{name}" is produced {count} times')
    wanted = dict(existing)
    seen: set[str] = set()
    for name, arrow in produced:
        if name in seen:
            continue
        seen.add(name)
        if name not in wanted:
            problems.append(f'column "{name}" ({arrow}) does not exist in the dataset')
        elif not widens(arrow, wanted[name]):
            problems.append(
                f'column "{name}" is {arrow} in the query but {wanted[name]} in the dataset, '
                "which is not the same type or a lossless widening"
            )
    for name, arrow in existing:
        if name not in counts:
            problems.append(f'column "{name}" ({arrow}) of the dataset is not produced by the query')
    return problems


def check_schema(
    what: str,
    produced: collections.abc.Sequence[tuple[str, str]],
    existing: collections.abc.Sequence[tuple[str, str]],
) -> None:
    """Raise one schema_mismatch error listing every difference, if there is any."""
    problems = schema_problems(produced, existing)
    if not problems:
        return
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    raise errors.JobledgerError(
        "schema_mismatch",
        f"the output of {what} does not fit the dataset: {problems[0]}{more}",
        detail="\n".join(problems),
    )
