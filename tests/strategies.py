"""Hypothesis strategies for job parameter values, shared by unit and database tests.

Every strategy produces values as decoded JSON (``str``, ``decimal.Decimal``,
``bool``, ``None``, lists, dicts), the form ``jobledger.server.params`` works with;
``submitted(name, value)`` writes the JSON object a run would submit.  The
strings lean towards what breaks SQL quoting: quotes, backslashes, comment
and dollar-quote markers, braces, control characters, non-ASCII, and long runs.
"""

from __future__ import annotations

import datetime
import decimal

import hypothesis.strategies as st

from jobledger.server import params

INT4_MIN, INT4_MAX = params.INT4_RANGE
INT8_MIN, INT8_MAX = params.INT8_RANGE

# Pieces of text that mean something to SQL, to PostgreSQL's string syntaxes
# or to the template syntax.
NASTY_PIECES = (
    "'",
    "''",
    '"',
    "\\",
    "\\'",
    "\\\\",
    "\\x41",
    "\\v",
    "\\u0041",
    "--",
    "/*",
    "*/",
    "$$",
    "$tag$",
    "{x}",
    "{",
    "}",
    ";",
    "E'",
    "U&'",
    "%(x)s",
    "?",
    ":x",
    "$1",
    "\n",
    "\r\n",
    "\t",
    "\x0b",
    "\x01",
    "\x1b",
    "\x7f",
    "é",
    "€",
    "😀",
    "\u2028",
    "\ufeff",
    "'; DROP TABLE t; --",
)

# Characters PostgreSQL text can hold: any code point but U+0000 and the
# surrogates.
_TEXT_CHARACTERS = st.characters(
    blacklist_categories=("Cs",), blacklist_characters="\x00"
)


def text_values(max_pieces: int = 12, long_runs: bool = True) -> st.SearchStrategy[str]:
    """Strings PostgreSQL text can hold, built from nasty pieces and arbitrary text,
    and (with ``long_runs``) pieces repeated up to 5000 times."""
    piece = st.one_of(st.sampled_from(NASTY_PIECES), st.text(_TEXT_CHARACTERS, max_size=8))
    mixed = st.lists(piece, max_size=max_pieces).map("".join)
    if not long_runs:
        return st.one_of(mixed, st.text(_TEXT_CHARACTERS, max_size=20))
    runs = st.builds(
        lambda text, times: text * times,
        st.sampled_from(NASTY_PIECES),
        st.integers(min_value=1, max_value=5000),
    )
    return st.one_of(mixed, st.text(_TEXT_CHARACTERS), runs)


def integers(low: int, high: int) -> st.SearchStrategy[decimal.Decimal]:
    """Integers in [low, high], often at or next to the bounds."""
    edges = [low, low + 1, -1, 0, 1, high - 1, high]
    return st.one_of(
        st.sampled_from([e for e in edges if low <= e <= high]),
        st.integers(min_value=low, max_value=high),
    ).map(decimal.Decimal)


def int4_values() -> st.SearchStrategy[decimal.Decimal]:
    return integers(INT4_MIN, INT4_MAX)


def int8_values() -> st.SearchStrategy[decimal.Decimal]:
    return integers(INT8_MIN, INT8_MAX)


def numeric_values(
    max_digits: int = 60, max_exponent: int = 450
) -> st.SearchStrategy[decimal.Decimal]:
    """Exact decimals with many digits, negative, tiny and huge (1E+400 and beyond)."""
    built = st.builds(
        lambda negative, digits, exponent: decimal.Decimal(
            (1 if negative else 0, tuple(int(d) for d in digits), exponent)
        ),
        st.booleans(),
        st.text("0123456789", min_size=1, max_size=max_digits),
        st.integers(min_value=-max_exponent, max_value=max_exponent),
    )
    known = st.sampled_from(
        [
            decimal.Decimal("123456789012345678901234567890.123456789"),
            decimal.Decimal("-123456789012345678901234567890.123456789"),
            decimal.Decimal("1E+400"),
            decimal.Decimal("-1E+400"),
            decimal.Decimal("1E-400"),
            decimal.Decimal("0.00"),
            decimal.Decimal("-0"),
            decimal.Decimal("1.50"),
        ]
    )
    return st.one_of(known, built)


def date_values() -> st.SearchStrategy[str]:
    """Dates as submitted: ``YYYY-MM-DD`` strings, years 0001-9999."""
    return st.dates().map(lambda day: day.isoformat())


def offsets() -> st.SearchStrategy[datetime.timezone]:
    minutes = st.integers(min_value=-(15 * 60 + 59), max_value=15 * 60 + 59)
    return minutes.map(lambda m: datetime.timezone(datetime.timedelta(minutes=m)))


def timestamptz_values() -> st.SearchStrategy[str]:
    """Timestamps as submitted: ISO 8601 with an explicit offset (or Z), years 2-9998."""
    moments = st.datetimes(
        min_value=datetime.datetime(2, 1, 1), max_value=datetime.datetime(9998, 12, 31)
    )
    return st.builds(
        lambda moment, zone, zulu: (
            moment.replace(tzinfo=datetime.timezone.utc).isoformat().replace("+00:00", "Z")
            if zulu
            else moment.replace(tzinfo=zone).isoformat()
        ),
        moments,
        offsets(),
        st.booleans(),
    )


def uuid_values() -> st.SearchStrategy[str]:
    """UUIDs as submitted, in either case."""
    return st.builds(
        lambda value, upper: str(value).upper() if upper else str(value),
        st.uuids(),
        st.booleans(),
    )


def json_values(max_leaves: int = 20) -> st.SearchStrategy[object]:
    """Any JSON value jsonb can hold (exact numbers, no U+0000)."""
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        numeric_values(max_digits=30, max_exponent=60),
        text_values(max_pieces=4, long_runs=False),
    )
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(text_values(max_pieces=3, long_runs=False), children, max_size=4),
        ),
        max_leaves=max_leaves,
    )


def untyped_values() -> st.SearchStrategy[object]:
    """What an untyped placeholder accepts: a string, number, boolean or null."""
    return st.one_of(
        text_values(),
        numeric_values(),
        int8_values(),
        st.booleans(),
        st.none(),
    )


# Values for each declared scalar type, as submitted.
SCALAR_VALUES = {
    "text": text_values,
    "integer": int4_values,
    "bigint": int8_values,
    "numeric": numeric_values,
    "boolean": st.booleans,
    "date": date_values,
    "timestamptz": timestamptz_values,
    "uuid": uuid_values,
    "jsonb": lambda: json_values().filter(lambda value: value is not None),
}


def typed_values(type_name: str) -> st.SearchStrategy[object]:
    """Valid submitted values for a declared type such as ``bigint`` or ``date[]``."""
    if type_name.endswith("[]"):
        return st.lists(SCALAR_VALUES[type_name[:-2]](), max_size=5)
    return SCALAR_VALUES[type_name]()


def submitted(name: str, value: object) -> str:
    """The JSON object a run submits to give ``value`` to parameter ``name``."""
    return params.canonical_json({name: value})
