"""Rendered job SQL against a live database: every submitted value comes back unchanged.

Only the SQL API is used: jobs are defined with jobledger.define_job, values
are submitted with jobledger.submit_job, and each run's rendered_sql is read
back from jobledger.run.  For every value hypothesis draws (strings full of
quotes, backslashes, comment and dollar-quote markers, braces, control and
astral characters, up to 100 kB; exact numbers up to 131072 digits; dates,
instants, uuids, jsonb, arrays of each; untyped constants) the test checks:

(a) PostgreSQL's grammar (pglast's parse_sql, the AST objects) reads the
    rendered SQL as the job template's tree with exactly one constant at the
    placeholder, and that constant stands for exactly the submitted value;
    outside the placeholder the text is the template's, byte for byte.  The
    tree walk and the literal decoders are the unit property tests'
    (tests/unit/test_render.py, tests/unit/test_literals.py), including their
    decoding of string constants the way PostgreSQL's lexer does under both
    settings of standard_conforming_strings;
(b) running the rendered SQL returns exactly the submitted value (text
    character for character, numbers as exact Decimals with their scale,
    timestamps as the same instant, jsonb as the same JSON, arrays element by
    element).  This runs on two databases: one with the default
    standard_conforming_strings = on, and one where
    ALTER DATABASE ... SET standard_conforming_strings = off was run.  The
    "off" database's connection also submits the runs, so rendering and the
    preflight happen under that setting too.  It must render the same SQL, and
    neither connection may get any notice: with the setting off, a backslash
    in a plain '...' string draws PostgreSQL's "nonstandard use of ... in a
    string literal" warning (escape_string_warning is on by default).

Refused values leave no run.  The two databases are created once per module
and serve every example.
"""

from __future__ import annotations

import collections.abc
import contextlib
import dataclasses
import functools
import datetime
import decimal
import json
import uuid
from typing import Any, Iterator

import hypothesis
import hypothesis.strategies as st
import psycopg
import psycopg.types.json
import pytest
from psycopg import rows
from psycopg import sql as pgsql

import dbtools
from jobledger.server import params, template
from tests import strategies
from tests.unit import test_literals as lits
from tests.unit import test_render as rendering


def live_settings(max_examples: int) -> hypothesis.settings:
    return hypothesis.settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        suppress_health_check=[hypothesis.HealthCheck.too_slow, hypothesis.HealthCheck.data_too_large],
    )


def examples(*cases: dict[str, Any]) -> collections.abc.Callable[[Any], Any]:
    """Apply one hypothesis.example per case (keyword arguments of the test)."""

    def decorate(test: Any) -> Any:
        for case in reversed(cases):
            test = hypothesis.example(**case)(test)
        return test

    return decorate


# --- the jobs ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Job:
    """A job whose query selects the value of ``{v}`` as column ``v``."""

    name: str
    query: str
    type: str | None  # the declared type of {v}; None: the job declares no parameters
    columns: str  # the destination table's columns
    extra: tuple[tuple[str, object], ...] = ()  # the other columns the query returns

    def expected_row(self, v: object) -> dict[str, object]:
        return {"v": v, **dict(self.extra)}


SCALARS = params.SCALAR_TYPES
_CONTEXT_TEXT = "it's /* {v} -- $$"
JOBS = {
    job.name: job
    for job in [
        *(Job(f"s_{t}", "SELECT {v} AS v", t, f"v {t}") for t in SCALARS),
        *(Job(f"a_{t}", "SELECT {v} AS v", f"{t}[]", f"v {t}[]") for t in SCALARS),
        # The value comes before other constants: a quote that escaped the
        # value's literal would pair with the next one.  The braces inside the
        # string constant are text, not a placeholder.
        Job(
            "s_text_ctx",
            "SELECT {v} AS v, 'it''s /* {v} -- $$' AS w, 2 AS n",
            "text",
            "v text, w text, n integer",
            (("w", _CONTEXT_TEXT), ("n", 2)),
        ),
        # Text sqlglot used to rewrite (case, comments, interval) runs as written.
        Job(
            "s_text_verbatim",
            "select /* {v} */ {v}  as V, interval '1 day 12:00' AS i -- {v}\n",
            "text",
            "v text, i interval",
            (("i", datetime.timedelta(days=1, hours=12)),),
        ),
        # Untyped placeholders render as bare constants whose type PostgreSQL
        # infers.  define_job probes with NULL, so each job fixes the output
        # type with its context.
        Job("u_text", "SELECT {v} AS v", None, "v text"),
        Job("u_number", "SELECT coalesce({v}, 0.0) AS v", None, "v numeric"),
        Job("u_boolean", "SELECT coalesce({v}, FALSE) AS v", None, "v boolean"),
    ]
}


# --- the two databases ----------------------------------------------------------


def exact_json(text: str | bytes) -> object:
    """JSON with every number as an exact Decimal (psycopg's default gives floats)."""
    return json.loads(text, parse_float=decimal.Decimal, parse_int=decimal.Decimal)


@dataclasses.dataclass
class Side:
    """One database and the connection that submits runs and executes their SQL there."""

    setting: str  # its standard_conforming_strings: "on" or "off"
    conn: psycopg.Connection
    notices: list[str] = dataclasses.field(default_factory=list)

    def runs(self) -> int:
        return self.conn.execute("SELECT count(*) AS n FROM jobledger.run").fetchone()["n"]


@pytest.fixture(scope="module")
def sides(jobledger_server: Any) -> Iterator[tuple[Side, Side]]:
    """Two databases with jobledger and every job of JOBS, one of them with
    standard_conforming_strings = off set on the database."""
    with contextlib.ExitStack() as stack:
        found = []
        for setting in ("on", "off"):
            admin = stack.enter_context(dbtools.scratch_database(jobledger_server))
            if setting == "off":
                admin.execute(
                    pgsql.SQL("ALTER DATABASE {} SET standard_conforming_strings = off").format(
                        pgsql.Identifier(admin.info.dbname)
                    )
                )
            # A new connection picks up the database's setting.
            conn = stack.enter_context(
                psycopg.connect(**dbtools.conninfo(admin), autocommit=True, row_factory=rows.dict_row)
            )
            side = Side(setting, conn)
            conn.add_notice_handler(
                lambda notice, side=side: side.notices.append(f"{notice.severity}: {notice.message_primary}")
            )
            psycopg.types.json.set_json_loads(exact_json, conn)
            shown = conn.execute("SHOW standard_conforming_strings").fetchone()
            assert shown == {"standard_conforming_strings": setting}
            assert conn.execute("SHOW escape_string_warning").fetchone() == {"escape_string_warning": "on"}
            conn.execute("CREATE EXTENSION jobledger CASCADE")
            for job in JOBS.values():
                conn.execute(
                    pgsql.SQL("CREATE TABLE public.{} ({})").format(
                        pgsql.Identifier(job.name), pgsql.SQL(job.columns)
                    )
                )
                declared = None if job.type is None else json.dumps({"v": {"type": job.type}})
                version = conn.execute(
                    "SELECT jobledger.define_job(%s, %s, %s, params => %s) AS v",
                    (job.name, job.query, f"public.{job.name}", declared),
                ).fetchone()["v"]
                assert version == 1
            side.notices.clear()
            found.append(side)
        yield found[0], found[1]


# --- submitted JSON, written here with exact numbers ----------------------------


def json_text(value: object, exponent: bool = False, ascii_only: bool = False) -> str:
    """The JSON text of a decoded value; numbers written from the Decimal exactly,
    positional (``format 'f'``) or as Python writes a Decimal (``1.5E+400``)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, decimal.Decimal):
        return str(value) if exponent else format(value, "f")
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=ascii_only)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(json_text(v, exponent, ascii_only) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(
            json.dumps(k, ensure_ascii=ascii_only) + ": " + json_text(v, exponent, ascii_only)
            for k, v in value.items()
        ) + "}"
    raise TypeError(type(value).__name__)


def submission(value: object, exponent: bool = False, ascii_only: bool = False) -> str:
    return '{"v": ' + json_text(value, exponent, ascii_only) + "}"


# --- what comes back --------------------------------------------------------------


def expected(type_name: str | None, value: object) -> object:
    """The Python value psycopg should give for ``value`` submitted as ``type_name``."""
    if value is None or type_name is None or type_name in ("text", "numeric", "boolean", "jsonb"):
        return value
    if type_name.endswith("[]"):
        return [expected(type_name[:-2], item) for item in value]
    convert = {
        "integer": int,
        "bigint": int,
        "date": datetime.date.fromisoformat,
        "timestamptz": instant,
        "uuid": uuid.UUID,
    }[type_name]
    return convert(value)


def instant(text: str) -> datetime.datetime:
    """An ISO 8601 timestamp with an offset (or Z) as an aware datetime."""
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def same(got: object, want: object) -> bool:
    """Equal and of the same kind: True is not 1, 1.50 is not 1.5, dates are not datetimes."""
    if isinstance(want, decimal.Decimal):
        return type(got) is decimal.Decimal and lits.same_number(got, want)
    if type(got) is not type(want):
        return False
    if isinstance(want, (list, tuple)):
        return len(got) == len(want) and all(map(same, got, want))
    if isinstance(want, dict):
        return got.keys() == want.keys() and all(same(got[k], want[k]) for k in want)
    return got == want


# --- (a): the rendered SQL is the template's tree with exactly that constant ----


@functools.lru_cache(maxsize=None)
def checked_template(query: str) -> template.Template:
    return template.parse_template(query)


def assert_is_the_template_with(job: Job, sql: str, value: object) -> None:
    """PostgreSQL's grammar (pglast's AST) reads ``sql`` as the job's template
    with exactly one constant at its placeholder, standing for exactly
    ``value``; outside the placeholder the text is the template's, byte for byte."""
    checked = checked_template(job.query)
    assert [span.name for span in checked.spans] == ["v"], checked.spans
    span = checked.spans[0]
    before, after = job.query[: span.start], job.query[span.end :]
    assert sql.startswith(before) and sql.endswith(after), sql[:300]
    assert len(sql) > len(before) + len(after)
    literal = sql[len(before) : len(sql) - len(after)]
    # Every string constant reads the same under both settings.
    lits.assert_same_under_both_settings(sql)
    nodes = rendering.nodes_at_placeholders(job.query, sql)
    assert len(nodes) == 1
    node = nodes[0]
    assert rendering._same_ast(node, lits.read_back(literal)), (literal[:200], node)
    if job.type is None:
        assert_untyped_constant(node, literal, value, sql)
        return
    inner = lits.cast_of(node, job.type)
    if value is None:
        assert lits.constant(inner) == ("null", None)
    elif job.type.endswith("[]"):
        assert type(inner).__name__ == "A_ArrayExpr", inner
        elements = inner.elements or ()
        assert len(elements) == len(value)
        for element, item in zip(elements, value):
            assert_constant(element, job.type[:-2], item, sql)
    else:
        assert_constant(inner, job.type, value, sql)


def assert_constant(node: Any, base: str, value: object, sql: str) -> None:
    """``node`` is one constant denoting ``value`` of declared type ``base``."""
    if base == "jsonb":
        kind, text = lits.constant(node)
        assert kind == "string"
        assert same(exact_json(text), value), (text[:200], value)
        return
    lits.assert_scalar(node, base, value)
    if base == "text":
        assert_text_constant(value, sql)


def assert_untyped_constant(node: Any, literal: str, value: object, sql: str) -> None:
    kind, read = lits.constant(node)
    if value is None:
        assert kind == "null"
    elif isinstance(value, bool):
        assert (kind, read) == ("boolean", value)
    elif isinstance(value, str):
        assert (kind, read) == ("string", value)
        assert_text_constant(value, sql)
    else:
        assert kind in ("integer", "number") and lits.same_number(read, value), (literal[:200], value)
        if value < 0:  # negative numbers are parenthesised
            assert literal.startswith("(-") and literal.endswith(")"), literal[:200]


def assert_text_constant(value: str, sql: str) -> None:
    # Also decoded from the SQL's own characters, as PostgreSQL's lexer does
    # with standard_conforming_strings off.
    assert value in {lits.pg_string(s, False) for s in lits.string_sources(sql)}


# --- the property ----------------------------------------------------------------


def submit(side: Side, job: str, values: str) -> str:
    """Submit a run on ``side``; the run's rendered SQL."""
    run = side.conn.execute("SELECT jobledger.submit_job(%s, %s) AS id", (job, values)).fetchone()["id"]
    row = side.conn.execute(
        "SELECT job, status, rendered_sql FROM jobledger.run WHERE id = %s", (run,)
    ).fetchone()
    assert (row["job"], row["status"]) == (job, "pending")
    return row["rendered_sql"]


def assert_round_trip(sides: tuple[Side, Side], job: Job, value: object, values: str) -> None:
    """Submit ``values`` (JSON holding ``value`` as v) to ``job`` on both databases:
    the rendered SQL is the template with exactly that constant, and running it
    on each database gives the value back."""
    want = job.expected_row(expected(job.type, value))
    rendered = {}
    for side in sides:
        side.notices.clear()
        sql = submit(side, job.name, values)
        got = side.conn.execute(sql).fetchall()
        assert len(got) == 1 and same(got[0], want), (side.setting, sql[:300], got[:1], want)
        assert side.notices == [], (side.setting, side.notices)
        rendered[side.setting] = sql
    # Rendering does not depend on the setting of the session that submits.
    assert rendered["off"] == rendered["on"]
    assert_is_the_template_with(job, rendered["on"], value)


# --- explicit examples -------------------------------------------------------------

LONG_TEXT = ("'\\$$--/*{v}\x0bé😀" * 10_000)[:100_000]  # 100 000 characters
TEXT_EXAMPLES = [
    "'",
    "''",
    "\\",
    "\\'",
    "E'x'",
    "--",
    "/*",
    "*/",
    "$$",
    "$a$",
    "{x}",
    "{v}",
    "\x0b",  # \v, which PostgreSQL's escape strings do not know
    "\\v",
    "😀𝄞\U0010ffff",  # astral characters, the last code point
    "",
    "'; DROP TABLE public.s_text; --",
    "U&'\\0041'",
    "\\x41\\101\\u0041\\\\",
    "x' AS v, 1 AS n --",
    LONG_TEXT,
    "\\'" * 50_000,  # 100 kB
]
NUMBER_EXAMPLES = [
    ("numeric", decimal.Decimal("1E+400")),
    ("numeric", decimal.Decimal("-1E+400")),
    ("numeric", decimal.Decimal("1E-400")),
    ("numeric", decimal.Decimal("-0")),
    ("numeric", decimal.Decimal("-0.000")),
    ("numeric", decimal.Decimal("1.50")),
    ("numeric", decimal.Decimal("-123456789012345678901234567890.123456789")),
    # The longest numbers numeric (and the package) takes: 131072 digits
    # before the point, 16383 after.
    ("numeric", decimal.Decimal("9" * 131072)),
    ("numeric", decimal.Decimal("-" + "9" * 131072 + "." + "9" * 16383)),
    ("numeric", decimal.Decimal("1E-16383")),
    ("integer", decimal.Decimal(-(2**31))),
    ("integer", decimal.Decimal(2**31 - 1)),
    ("integer", decimal.Decimal("-0")),
    ("integer", decimal.Decimal(-1)),
    ("bigint", decimal.Decimal(-(2**63))),
    ("bigint", decimal.Decimal(2**63 - 1)),
]
OTHER_EXAMPLES = [
    ("date", "0001-01-01"),  # the earliest and latest dates the package takes
    ("date", "9999-12-31"),
    ("date", "2000-02-29"),
    ("timestamptz", "0001-01-01T00:00:00Z"),
    ("timestamptz", "0001-01-01T00:00:00-15:59"),
    ("timestamptz", "9999-12-31T23:59:59.999999Z"),
    ("timestamptz", "9999-12-31T23:59:59.999999+15:59"),
    ("uuid", "00000000-0000-0000-0000-000000000000"),
    ("uuid", "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF"),
    ("boolean", True),
    ("boolean", False),
    ("jsonb", {"'": "\\'", "$$": ["--", "/*", {"{v}": decimal.Decimal("1E+400")}], "\x0b": None}),
    ("jsonb", "\\"),
    ("jsonb", decimal.Decimal("-0.00")),
    ("jsonb", []),
    ("jsonb", {}),
    ("jsonb", False),
    ("jsonb", [True, decimal.Decimal(1), "1", None]),
]
ARRAY_EXAMPLES = [
    ("text[]", []),
    ("text[]", ["'", "\\", "NULL", "", "{", "}", ",", '"', "\\'", "$$", "{v}", "😀"]),
    ("integer[]", [decimal.Decimal(-(2**31)), decimal.Decimal(2**31 - 1)]),
    ("bigint[]", [decimal.Decimal(-(2**63)), decimal.Decimal(0)]),
    ("numeric[]", [decimal.Decimal("1E+400"), decimal.Decimal("-0"), decimal.Decimal("-1.50")]),
    ("date[]", ["0001-01-01", "9999-12-31"]),
    ("timestamptz[]", ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z"]),
    ("uuid[]", ["FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF"]),
    ("boolean[]", [True, False]),
    ("jsonb[]", [{"a": "\\"}, "'", [], decimal.Decimal("1E+60")]),
]
UNTYPED_EXAMPLES = [
    *TEXT_EXAMPLES,
    None,
    True,
    False,
    decimal.Decimal("-0"),
    decimal.Decimal("-1E+400"),
    decimal.Decimal("1E-400"),
    decimal.Decimal("-1.50"),
    decimal.Decimal(-(2**63)),
    decimal.Decimal("-" + "9" * 1000 + "." + "9" * 1000),
]


# --- the tests ---------------------------------------------------------------------


@live_settings(max_examples=150)
@hypothesis.given(
    job=st.sampled_from(["s_text", "s_text_ctx", "s_text_verbatim"]), text=strategies.text_values(), ascii_only=st.booleans()
)
@examples(
    *(
        {"job": job, "text": text, "ascii_only": False}
        for job in ("s_text", "s_text_ctx", "s_text_verbatim")
        for text in TEXT_EXAMPLES
    )
)
def test_text_comes_back_unchanged(
    sides: tuple[Side, Side], job: str, text: str, ascii_only: bool
) -> None:
    assert_round_trip(sides, JOBS[job], text, submission(text, ascii_only=ascii_only))


def _typed(names: list[str], values: Any) -> st.SearchStrategy[tuple[str, object]]:
    return st.sampled_from(names).flatmap(lambda name: st.tuples(st.just(name), values(name)))


@live_settings(max_examples=100)
@hypothesis.given(
    typed=_typed(["integer", "bigint", "numeric"], strategies.typed_values), exponent=st.booleans()
)
# Positional only: PostgreSQL refuses exponents beyond +-1000 (1E-16383).
@examples(*({"typed": typed, "exponent": False} for typed in NUMBER_EXAMPLES))
def test_numbers_come_back_exactly(
    sides: tuple[Side, Side], typed: tuple[str, decimal.Decimal], exponent: bool
) -> None:
    type_name, number = typed
    assert_round_trip(sides, JOBS[f"s_{type_name}"], number, submission(number, exponent=exponent))


@live_settings(max_examples=100)
@hypothesis.given(typed=_typed(["boolean", "date", "timestamptz", "uuid", "jsonb"], strategies.typed_values))
@examples(*({"typed": typed} for typed in OTHER_EXAMPLES))
def test_other_scalars_come_back_unchanged(sides: tuple[Side, Side], typed: tuple[str, object]) -> None:
    type_name, value = typed
    assert_round_trip(sides, JOBS[f"s_{type_name}"], value, submission(value))


def _array_values(type_name: str) -> st.SearchStrategy[list[object]]:
    """Short arrays; text elements without the 5000-times runs (test_text has those)."""
    base = type_name[:-2]
    if base == "text":
        element = strategies.text_values(max_pieces=6, long_runs=False)
    else:
        element = strategies.SCALAR_VALUES[base]()
    return st.lists(element, max_size=5)


@live_settings(max_examples=100)
@hypothesis.given(typed=_typed([f"{t}[]" for t in SCALARS], _array_values))
@examples(*({"typed": typed} for typed in ARRAY_EXAMPLES))
def test_arrays_come_back_element_by_element(
    sides: tuple[Side, Side], typed: tuple[str, list[object]]
) -> None:
    type_name, elements = typed
    assert_round_trip(sides, JOBS[f"a_{type_name[:-2]}"], elements, submission(elements))


def _untyped_job(value: object) -> Job:
    if isinstance(value, bool):
        return JOBS["u_boolean"]
    if isinstance(value, decimal.Decimal):
        return JOBS["u_number"]
    return JOBS["u_text"]


@live_settings(max_examples=120)
@hypothesis.given(value=strategies.untyped_values())
@examples(*({"value": value} for value in UNTYPED_EXAMPLES))
def test_untyped_constants_come_back_unchanged(sides: tuple[Side, Side], value: object) -> None:
    assert_round_trip(sides, _untyped_job(value), value, submission(value))


# --- refusals ------------------------------------------------------------------------


def assert_refused(side: Side, job: str, values: str) -> psycopg.Error:
    """The submit fails and leaves no run behind."""
    before = side.runs()
    with pytest.raises(psycopg.Error) as caught:
        submit(side, job, values)
    assert side.runs() == before
    return caught.value


def _with_nul(text: str, at: int) -> str:
    at = min(at, len(text))
    return text[:at] + "\x00" + text[at:]


@live_settings(max_examples=25)
@hypothesis.given(
    text=strategies.text_values(max_pieces=6, long_runs=False),
    at=st.integers(min_value=0, max_value=40),
    where=st.sampled_from(["s_text", "u_text", "a_text", "s_jsonb", "s_jsonb key"]),
)
@examples({"text": "", "at": 0, "where": "s_text"}, {"text": "\\'", "at": 1, "where": "u_text"})
def test_nul_is_refused_and_writes_nothing(sides: tuple[Side, Side], text: str, at: int, where: str) -> None:
    """A string with U+0000 anywhere is refused.

    Through submit_job the refusal is PostgreSQL's own: the values are jsonb,
    and jsonb input refuses the escape \\u0000 (SQLSTATE 22P05, no jobledger
    category) before the package sees the values.  The package's own
    invalid_parameter check for U+0000 (params._check_text) cannot be reached
    through the SQL API.
    """
    bad = _with_nul(text, at)
    job, value = {
        "s_text": ("s_text", bad),
        "u_text": ("u_text", bad),
        "a_text": ("a_text", ["ok", bad]),
        "s_jsonb": ("s_jsonb", {"k": [bad]}),
        "s_jsonb key": ("s_jsonb", {bad: decimal.Decimal(1)}),
    }[where]
    values = submission(value)
    assert "\\u0000" in values
    for side in sides:
        error = assert_refused(side, job, values)
        assert isinstance(error, psycopg.errors.UntranslatableCharacter), error
        assert dbtools.category(error) is None


@pytest.mark.parametrize(
    "job, values",
    [
        ("s_date", '{"v": "0000-12-31"}'),  # PostgreSQL takes it (1 BC); the package does not
        ("s_date", '{"v": "10000-01-01"}'),
        ("s_date", '{"v": "2023-02-29"}'),
        ("s_timestamptz", '{"v": "2026-11-01T09:30:00"}'),  # no offset
        ("s_timestamptz", '{"v": "0001-01-01T00:00:00+00:01"}'),  # before year 1 in UTC
        ("s_integer", '{"v": 2147483648}'),
        ("s_integer", '{"v": 1.5}'),
        ("s_bigint", '{"v": -9223372036854775809}'),
        ("s_uuid", '{"v": "0b5d\'; --"}'),
        ("s_text", '{"v": null}'),
        ("s_text", '{"v": 5}'),
        ("s_text", '{"v": ' + json.dumps("x" * params.MAX_VALUE_BYTES) + "}"),  # one string too long
        ("a_bigint", '{"v": [1, null]}'),
        ("u_text", '{"v": ["x"]}'),
    ],
)
def test_invalid_values_are_refused_and_write_nothing(
    sides: tuple[Side, Side], job: str, values: str
) -> None:
    for side in sides:
        error = assert_refused(side, job, values)
        assert dbtools.category(error) == "invalid_parameter", (side.setting, error)


@pytest.mark.parametrize("values", ['{"v": "\\ud800"}', '{"v": "a\\udfffb"}'])
def test_lone_surrogates_are_refused_and_write_nothing(sides: tuple[Side, Side], values: str) -> None:
    """Refused by PostgreSQL's jsonb input, like U+0000 (see above)."""
    for side in sides:
        error = assert_refused(side, "s_text", values)
        assert isinstance(error, psycopg.errors.InvalidTextRepresentation), error
