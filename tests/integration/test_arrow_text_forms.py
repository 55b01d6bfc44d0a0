"""The types Arrow has no counterpart for, plain numeric, interval and time,
through Arrow batches, an IPC result and a Parquet dataset, against a live server.

The oracle is PostgreSQL's own text output: the same expression read as text
(no psycopg loader) in a session with the runner's pinned settings.
"""

from __future__ import annotations

import decimal
import json
import pathlib
from typing import Any

import psycopg
import pyarrow
import pyarrow.parquet
import pytest

from jobledger.core import arrow_types, errors
from jobledger.lake import arrow_batches, ipc_result, parquet_dataset
from jobledger.runner import session

THOUSAND_DIGITS = "9" * 600 + "." + "0123456789" * 40

# (expression, format_type of its column): every type here maps to its text output.
TEXT_FORMS = [
    ("sum(x)", "numeric"),
    ("avg(x)", "numeric"),
    (f"'{THOUSAND_DIGITS}'::numeric", "numeric"),
    ("'-0.000000000000000000001'::numeric", "numeric"),
    ("'NaN'::numeric", "numeric"),
    ("'Infinity'::numeric", "numeric"),
    ("'-Infinity'::numeric", "numeric"),
    ("'12345.6789'::numeric(100,4)", "numeric(100,4)"),
    ("'123.45'::money", "money"),
    ("'a:1 fat:2B cat'::tsvector", "tsvector"),
    ("'fat & (rat | !cat)'::tsquery", "tsquery"),
    ("'$.a[*] ? (@ > 1)'::jsonpath", "jsonpath"),
    ("'<a b=\"1\"> x </a>'::xml", "xml"),
    ("'16/B374D848'::pg_lsn", "pg_lsn"),
    ("'10:20:10,14,15'::txid_snapshot", "txid_snapshot"),
    ("'10:20:10,14,15'::pg_snapshot", "pg_snapshot"),
    ("B'10110'::bit(5)", "bit(5)"),
    ("B'101'::varbit", "bit varying"),
    ("'10.0.0.1'::inet", "inet"),
    ("'10.1.0.0/16'::cidr", "cidr"),
    ("'08:00:2b:01:02:03'::macaddr", "macaddr"),
    ("'08:00:2b:01:02:03:04:05'::macaddr8", "macaddr8"),
    ("'(1.5,2)'::point", "point"),
    ("'((0,0),(1,1))'::box", "box"),
    ("'<(0,0),2>'::circle", "circle"),
    ("'[(0,0),(1,1)]'::lseg", "lseg"),
    ("'{1,-1,0}'::line", "line"),
    ("'((0,0),(1,1),(2,0))'::polygon", "polygon"),
    ("'[(0,0),(1,1)]'::path", "path"),
    ("'[1,3)'::int4range", "int4range"),
    ("'(1.5,2.5]'::numrange", "numrange"),
    ("'empty'::daterange", "daterange"),
    ("'[\"2024-01-01 00:00+00\",)'::tstzrange", "tstzrange"),
    ("'{[1,3), [5,7)}'::int4multirange", "int4multirange"),
    ("'12:00:00.5+02'::timetz", "time with time zone"),
    ("'x'::\"char\"", '"char"'),
    ("'int4'::regtype", "regtype"),
    ("12345::oid", "oid"),
    ("'123'::xid8", "xid8"),
    ("'(0,1)'::tid", "tid"),
    ("ROW(1, 'a b', NULL)", "record"),
    ("ROW(NULL, NULL)", "record"),
    ("'happy'::public.mood", "mood"),
    ("(1, 'two')::public.pair", "pair"),
]

# Arrays of them: list<string>, element by element, NULL elements kept.
ARRAYS = [
    ("ARRAY['1.50'::numeric, NULL, 'NaN']", "numeric[]"),
    ("ARRAY['10.0.0.1'::inet, '10.1.0.0/16']", "inet[]"),
    ("ARRAY['((0,0),(1,1))'::box, '((2,2),(3,3))']", "box[]"),
    ("ARRAY['1'::money, NULL]", "money[]"),
    ("ARRAY['a b'::tsvector]", "tsvector[]"),
    ("ARRAY[]::xml[]", "xml[]"),
    ("'[0:1]={1,2}'::numeric[]", "numeric[]"),
]


@pytest.fixture
def pinned(db: psycopg.Connection) -> psycopg.Connection:
    """The test database with a few user types, in a session with the runner's settings."""
    db.execute("CREATE TYPE public.mood AS ENUM ('sad', 'happy')")
    db.execute("CREATE TYPE public.pair AS (a integer, b text)")
    db.execute("CREATE DOMAIN public.posint AS integer CHECK (VALUE > 0)")
    for name, value in session.PINNED:
        db.execute("SELECT set_config(%s, %s, false)", (name, value))
    return db


def text_output(conn: psycopg.Connection, query: str) -> list[list[str | None]]:
    """The rows of ``query`` as PostgreSQL's text output, no loader in between."""
    with conn.cursor() as cur:
        cur.execute(query.encode())
        res = cur.pgresult
        assert res is not None
        return [[None if (v := res.get_value(i, j)) is None else bytes(v).decode() for j in range(res.nfields)]
                for i in range(res.ntuples)]


def read_all(conn: psycopg.Connection, query: str, **kwargs: Any) -> pyarrow.Table:
    with arrow_batches.stream(conn, query, **kwargs) as result:
        return pyarrow.Table.from_batches(list(result.batches), schema=result.schema)


SOURCE = " FROM (VALUES (1.5::numeric), (2), (NULL)) AS v(x)"


def test_every_text_form_is_the_text_output(pinned: psycopg.Connection, tmp_path: pathlib.Path) -> None:
    select = ", ".join(f"{expr} AS c{i}" for i, (expr, _) in enumerate(TEXT_FORMS))
    query = f"SELECT 1 AS k, {select}{SOURCE}"
    columns = arrow_batches.describe(pinned, query)
    assert [(c.pg_type, c.arrow, c.text_form) for c in columns[1:]] == [
        (pg_type, "string", True) for _, pg_type in TEXT_FORMS]
    table = read_all(pinned, query)
    [expected] = text_output(pinned, query)
    assert table.to_pylist() == [dict(zip(table.column_names, [1, *expected[1:]]))]
    got = table.to_pylist()[0]
    assert got["c2"] == THOUSAND_DIGITS and got["c4"] == "NaN" and got["c18"] == "10.0.0.1"
    assert got["c41"] == "(,)" and got["c0"] == "3.5"

    # The same through an IPC result, its JSON and a Parquet dataset.
    with arrow_batches.stream(pinned, query) as result:
        data = ipc_result.encode(result.schema, result.batches)
    assert ipc_result.decode(data).equals(table)
    assert json.loads(ipc_result.to_json(table)) == table.to_pylist()
    with arrow_batches.stream(pinned, query) as result:
        parquet_dataset.write(tmp_path / "ds", result.schema, result.batches, run="r1", attempt=1,
                              create_if_missing=True)
    assert parquet_dataset.read_table(tmp_path / "ds").equals(table)
    assert pyarrow.parquet.read_table(next((tmp_path / "ds").glob("part-*.parquet"))).equals(table)


def test_arrays_of_text_forms_are_lists_of_their_elements_text(pinned: psycopg.Connection) -> None:
    query = "SELECT " + ", ".join(f"{expr} AS a{i}" for i, (expr, _) in enumerate(ARRAYS)) + \
            ", NULL::money[] AS none"
    columns = arrow_batches.describe(pinned, query)
    assert [(c.pg_type, c.arrow) for c in columns] == [(t, "list<string>") for _, t in ARRAYS] + [
        ("money[]", "list<string>")]
    [row] = read_all(pinned, query).to_pylist()
    for i, (expr, _) in enumerate(ARRAYS):
        elements = text_output(pinned, f"SELECT e FROM unnest({expr}) WITH ORDINALITY AS u(e, n) ORDER BY n")
        assert row[f"a{i}"] == [e for (e,) in elements], expr
    assert row["a1"] == ["10.0.0.1", "10.1.0.0/16"]  # the output function's, not CAST(inet AS text)'s
    assert row["a2"] == ["(1,1),(0,0)", "(3,3),(2,2)"]
    assert row["none"] is None


def test_text_forms_keep_order_and_parameters(pinned: psycopg.Connection) -> None:
    table = read_all(pinned, "SELECT g, (g * %s)::numeric AS n, g::text::money AS m"
                             " FROM generate_series(1, 500) AS g ORDER BY g DESC -- a comment",
                     params=(decimal.Decimal("0.5"),), batch_rows=64)
    assert table.column("g").to_pylist() == list(range(500, 0, -1))
    assert table.column("n").to_pylist()[:2] == ["250.0", "249.5"]
    assert table.column("m").to_pylist()[-1] == "$1.00"


def test_a_multidimensional_array_of_a_text_form_is_refused(pinned: psycopg.Connection) -> None:
    with pytest.raises(errors.JobledgerError) as caught:
        read_all(pinned, "SELECT '{{1,2},{3,4}}'::numeric[] AS grid")
    assert caught.value.category == "value_not_representable"
    assert 'column "grid"' in str(caught.value) and "multi-dimensional" in str(caught.value)


INTERVALS = [
    "1 year 2 mons -3 days 04:05:06.789012",
    "-1 year -1 mons",
    "0",
    "-0.0015 seconds",
    "1000000 days",
    "2562047 hours 47 minutes 16.854775 seconds",  # nanoseconds: 9223372036854775000
    "-178000000 years",
    "13 mons 40 days -90 seconds",
]


def test_intervals_keep_months_days_and_microseconds(pinned: psycopg.Connection, tmp_path: pathlib.Path) -> None:
    query = ("SELECT n, v::interval AS iv, CASE WHEN n = 1 THEN ARRAY[v::interval, NULL] END AS ivs,"
             " '12:34:56.5'::time(1) AS t FROM unnest(%s::text[]) WITH ORDINALITY AS u(v, n)"
             " UNION ALL SELECT 99, NULL, NULL, NULL ORDER BY n")
    table = read_all(pinned, query, params=(INTERVALS,), batch_rows=3)
    assert [str(t) for t in table.schema.types] == [
        "int64", "month_day_nano_interval", "list<item: month_day_nano_interval>", "time64[us]"]
    fields = pinned.execute(
        "SELECT EXTRACT(year FROM i)::int * 12 + EXTRACT(month FROM i)::int AS months,"
        " EXTRACT(day FROM i)::int AS days,"
        " (EXTRACT(epoch FROM i) - EXTRACT(epoch FROM date_trunc('day', i)))::numeric AS seconds"
        " FROM unnest(%s::interval[]) WITH ORDINALITY AS u(i, n) ORDER BY n", (INTERVALS,)).fetchall()
    got = table.column("iv").to_pylist()
    assert got[-1] is None
    for value, expected in zip(got, fields):
        assert (value.months, value.days) == (expected["months"], expected["days"])
        assert decimal.Decimal(value.nanoseconds) / 10**9 == expected["seconds"]
    assert table.column("ivs").to_pylist()[0] == [got[0], None]
    assert str(table.column("t")[0].as_py()) == "12:34:56.500000"

    # JSON: ISO 8601 exactly as PostgreSQL writes it with IntervalStyle iso_8601; time as PostgreSQL writes it.
    pinned.execute("SET IntervalStyle = iso_8601")
    iso = [v for (v,) in text_output(pinned, f"SELECT v::interval FROM unnest(ARRAY{INTERVALS!r}) AS u(v)")]
    rows = json.loads(ipc_result.to_json(table))
    assert [r["iv"] for r in rows] == iso + [None]
    assert rows[0]["t"] == "12:34:56.5" and rows[0]["ivs"] == [iso[0], None]

    # Parquet has no month_day_nano: a struct of the same three fields.
    with arrow_batches.stream(pinned, query, params=(INTERVALS,)) as result:
        commit = parquet_dataset.write(tmp_path / "ds", result.schema, result.batches, run="r1", attempt=1,
                                       create_if_missing=True)
    assert dict(commit.manifest.schema)["iv"] == arrow_types.INTERVAL_STRUCT
    back = pyarrow.parquet.read_table(next((tmp_path / "ds").glob("part-*.parquet")))
    assert back.column("iv").to_pylist() == [
        None if v is None else {"months": v.months, "days": v.days, "nanoseconds": v.nanoseconds} for v in got]
    assert parquet_dataset.read_table(tmp_path / "ds").column("iv").equals(back.column("iv"))


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("SELECT g, CASE WHEN g = 5 THEN '24:00'::time ELSE '23:59'::time END AS t"
         " FROM generate_series(1, 6) g ORDER BY g", 'column "t", row 5: time 24:00:00'),
        ("SELECT g, CASE WHEN g = 6 THEN '2562048 hours'::interval END AS t FROM generate_series(1, 6) g ORDER BY g",
         'column "t", row 6: an interval with a time part of 9223372800000000 microseconds'),
    ],
)
def test_values_beyond_arrow_name_row_and_column(pinned: psycopg.Connection, query: str, words: str) -> None:
    with pytest.raises(errors.JobledgerError) as caught:
        read_all(pinned, query, batch_rows=4)
    assert caught.value.category == "value_not_representable"
    assert words in str(caught.value)
