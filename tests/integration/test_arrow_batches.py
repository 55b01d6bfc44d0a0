"""Query results into Arrow batches, through an IPC result and a Parquet dataset, against a live server.

The oracle is psycopg itself: the same query read with psycopg's ordinary
loaders gives the Python values the Arrow columns must hold.
"""

from __future__ import annotations

import decimal
import json
import math
import pathlib
import struct
from typing import Any

import psycopg
import pyarrow
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobledger.core import errors
from jobledger.lake import arrow_batches, ipc_result, parquet_dataset

EDGE_TABLE = """
CREATE TABLE public.edge (
    k integer PRIMARY KEY,
    i2 smallint, i4 integer, i8 bigint, f4 real, f8 double precision,
    n38 numeric(38,0), nfrac numeric(38,38), n12 numeric(12,2), n76 numeric(76,10),
    t text, vc varchar(10), ch char(4), b boolean, d date, ts timestamp, tstz timestamptz(3),
    u uuid, j json, jb jsonb, by bytea,
    ai int8[], atx text[], atz timestamptz[], an numeric(5,2)[], au uuid[], ajb jsonb[], ad date[]
)"""

EDGE_ROWS = r"""
INSERT INTO public.edge VALUES
(1, 32767, 2147483647, 9223372036854775807, 3.4028235e38, 1.7976931348623157e308,
 99999999999999999999999999999999999999, 0.99999999999999999999999999999999999999, 9999999999.99,
 999999999999999999999999999999999999999999999999999999999999999999.9999999999,
 'héllo ☃ 𝄞 "q" \ end', 'abc', 'ab', true, '5874897-12-31', '294246-12-31 23:59:59.999999',
 '2024-03-31 01:59:59.999+01', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '{"a": [1, 2.50], "b": "x"}',
 '{"z": 1, "a": {"n": null}}', '\x00ff10', '{1,NULL,-9223372036854775808}', '{"",NULL,"ünï"}',
 '{"2000-01-01 00:00:00+00",NULL}', '{1.50,NULL,-999.99}', '{00000000-0000-0000-0000-000000000000}',
 '{"{\"a\": 1}",NULL}', '{"0001-01-01","4713-01-01 BC"}'),
(2, -32768, -2147483648, -9223372036854775808, 'NaN', '-Infinity',
 -99999999999999999999999999999999999999, -0.00000000000000000000000000000000000001, -0.01,
 -0.0000000001, '', '', '', false, '4713-01-01 BC', '4713-01-01 00:00:00 BC',
 '1901-12-13 20:45:52.123+00', '123e4567-e89b-12d3-a456-426614174000', '[]', '"ünï"', '', '{}', '{}',
 '{}', '{}', '{}', '{}', '{}'),
(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
(4, 0, 0, 0, -0.0, 'Infinity', 0, 0, 0.00, 0, 'x', 'x', 'x', true, '2000-01-01', '1970-01-01',
 '1970-01-01 00:00:00+00', '00000000-0000-0000-0000-000000000001', 'null', 'null', '\x00', '{NULL}', '{NULL}',
 '{NULL}', '{NULL}', '{NULL}', '{NULL}', '{NULL}')
"""

# Python's datetime cannot hold these; compared through their integer counts.
OUT_OF_PYTHON_RANGE = {("d", 1), ("d", 2), ("ts", 1), ("ts", 2), ("ad", 1)}

EXPECTED_TYPES = {
    "k": "int32", "i2": "int16", "i4": "int32", "i8": "int64", "f4": "float32", "f8": "float64",
    "n38": "decimal128(38,0)", "nfrac": "decimal128(38,38)", "n12": "decimal128(12,2)",
    "n76": "decimal256(76,10)", "t": "string", "vc": "string", "ch": "string", "b": "bool", "d": "date32",
    "ts": "timestamp[us]", "tstz": "timestamp[us, tz=UTC]", "u": "uuid", "j": "json", "jb": "json",
    "by": "binary", "ai": "list<int64>", "atx": "list<string>", "atz": "list<timestamp[us, tz=UTC]>",
    "an": "list<decimal128(5,2)>", "au": "list<uuid>", "ajb": "list<json>", "ad": "list<date32>",
}


@pytest.fixture
def edge(db: psycopg.Connection) -> psycopg.Connection:
    db.execute(EDGE_TABLE)
    db.execute(EDGE_ROWS)
    return db


def read_all(conn: psycopg.Connection, query: str, **kwargs: Any) -> pyarrow.Table:
    with arrow_batches.stream(conn, query, **kwargs) as result:
        return pyarrow.Table.from_batches(list(result.batches), schema=result.schema)


def same(arrow_value: Any, expected: Any, arrow_kind: str) -> bool:
    """An Arrow value (as_py) against psycopg's value of the same field."""
    if expected is None or arrow_value is None:
        return arrow_value is None and expected is None
    if arrow_kind.startswith("list<"):
        element = arrow_kind[5:-1]
        return len(arrow_value) == len(expected) and all(
            same(a, e, element) for a, e in zip(arrow_value, expected))
    if arrow_kind == "json":
        return bool(json.loads(arrow_value) == json.loads(expected))
    if isinstance(expected, float) and math.isnan(expected):
        return math.isnan(arrow_value)
    if isinstance(expected, float) and arrow_kind == "float32":
        # psycopg reads real as text into a double: round it to single precision.
        single = struct.unpack("f", struct.pack("f", expected))[0]
        return arrow_value == single and math.copysign(1, arrow_value) == math.copysign(1, expected)
    if isinstance(expected, decimal.Decimal):
        # Equal with the same scale: the exponent is kept too.
        return arrow_value == expected and arrow_value.as_tuple().exponent == expected.as_tuple().exponent
    return bool(arrow_value == expected and type(arrow_value) is type(expected))


def test_every_mapped_type_round_trips(edge: psycopg.Connection, tmp_path: pathlib.Path) -> None:
    query = "SELECT * FROM public.edge ORDER BY k"
    table = read_all(edge, query, batch_rows=3)
    assert dict(zip(table.column_names, map(str, table.schema.types))) == {
        name: str(pyarrow_type(arrow)) for name, arrow in EXPECTED_TYPES.items()}
    # psycopg cannot load the values Python cannot hold: NULL there, checked below.
    hidden = {name: ", ".join(str(k) for n, k in sorted(OUT_OF_PYTHON_RANGE) if n == name)
              for name, _ in OUT_OF_PYTHON_RANGE}
    # psycopg reads JSON null as None: compare json columns as text.
    as_text = {"j": "j::text", "jb": "jb::text", "ajb": "ajb::text[]"}
    oracle = "SELECT " + ", ".join(
        f"CASE WHEN k IN ({hidden[name]}) THEN NULL ELSE {name} END AS {name}" if name in hidden
        else f"{as_text[name]} AS {name}" if name in as_text else name
        for name in EXPECTED_TYPES) + " FROM public.edge ORDER BY k"
    expected_rows = edge.execute(oracle).fetchall()
    for name in table.column_names:
        column = table.column(name)
        for row, expected in enumerate(expected_rows):
            if (name, expected["k"]) in OUT_OF_PYTHON_RANGE:
                continue
            assert same(column[row].as_py(), expected[name], EXPECTED_TYPES[name]), (
                name, expected["k"], column[row], expected[name])

    # The values Python cannot hold, through PostgreSQL's own counts.
    counts = edge.execute("""
        SELECT (d - date '1970-01-01') AS d, extract(epoch FROM ts)::numeric * 1000000 AS ts,
               (ad[1] - date '1970-01-01') AS ad1, (ad[2] - date '1970-01-01') AS ad2
          FROM public.edge WHERE k IN (1, 2) ORDER BY k""").fetchall()
    assert table.column("d").combine_chunks().slice(0, 2).view(pyarrow.int32()).to_pylist() == [r["d"] for r in counts]
    assert table.column("ts").combine_chunks().slice(0, 2).view(pyarrow.int64()).to_pylist() == [int(r["ts"]) for r in counts]
    ad = table.column("ad").combine_chunks().flatten().view(pyarrow.int32()).to_pylist()
    assert ad[:2] == [counts[0]["ad1"], counts[0]["ad2"]]

    # The same table through an IPC result and through a Parquet dataset.
    with arrow_batches.stream(edge, query, batch_rows=2) as result:
        data = ipc_result.encode(result.schema, result.batches)
    assert bits(ipc_result.decode(data)).equals(bits(table))
    with arrow_batches.stream(edge, query, batch_rows=2) as result:
        commit = parquet_dataset.write(tmp_path / "ds", result.schema, result.batches, run="r1", attempt=1,
                                       create_if_missing=True)
    assert commit.rows_written == 4
    assert bits(parquet_dataset.read_table(tmp_path / "ds")).equals(bits(table))


def pyarrow_type(arrow: str) -> pyarrow.DataType:
    from jobledger.lake import arrow_schema

    return arrow_schema.data_type(arrow)


def bits(table: pyarrow.Table) -> pyarrow.Table:
    """Floats as their bit patterns, so that NaN equals NaN; one chunk per column."""
    views = {pyarrow.float32(): pyarrow.int32(), pyarrow.float64(): pyarrow.int64()}
    columns = [c.combine_chunks() for c in table.columns]
    columns = [c.view(views[c.type]) if c.type in views else c for c in columns]
    return pyarrow.table(columns, names=table.column_names)


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kathmandu", "America/St_Johns", "Pacific/Kiritimati"])
def test_timestamptz_are_the_same_instants_in_any_session_timezone(edge: psycopg.Connection, zone: str) -> None:
    query = "SELECT k, ts, tstz, atz FROM public.edge ORDER BY k"
    reference = read_all(edge, query)
    edge.execute("SELECT set_config('TimeZone', %s, false)", (zone,))
    assert edge.execute("SHOW TimeZone").fetchone()["TimeZone"] == zone
    assert read_all(edge, query).equals(reference)
    assert reference.column("tstz")[0].as_py().isoformat() == "2024-03-31T00:59:59.999000+00:00"


def test_batches_are_bounded_and_progress_advances(db: psycopg.Connection) -> None:
    seen: list[int] = []
    with arrow_batches.stream(db, "SELECT g AS n FROM generate_series(1, 1000) g", batch_rows=64,
                              progress=seen.append) as result:
        sizes = [b.num_rows for b in result.batches]
    assert sizes == [64] * 15 + [40]
    assert seen == [64 * (i + 1) for i in range(15)] + [1000]


def test_empty_result_has_its_schema(db: psycopg.Connection) -> None:
    table = read_all(db, "SELECT 1::numeric(3,1) AS x, ARRAY['a'] AS y WHERE false")
    assert table.num_rows == 0
    assert [str(t) for t in table.schema.types] == ["decimal128(3, 1)", "list<item: string>"]


def test_describe_plans_without_running(db: psycopg.Connection) -> None:
    columns = arrow_batches.describe(
        db, "SELECT 1/(g - g) AS boom, now() AS at, 'x'::varchar(3) AS v FROM generate_series(1, 3) g")
    assert [(c.name, c.pg_type, c.arrow) for c in columns] == [
        ("boom", "integer", "int32"), ("at", "timestamp with time zone", "timestamp[us, tz=UTC]"),
        ("v", "character varying(3)", "string")]


@pytest.mark.parametrize(
    ("query", "column", "words"),
    [
        ("SELECT x::numeric(10,2) AS amount FROM (VALUES ('1'), ('NaN')) v(x)", "amount", "NaN"),
        ("SELECT ARRAY[1, 'NaN']::numeric(10,2)[] AS amounts", "amounts", "NaN"),
        ("SELECT 'infinity'::timestamptz AS at", "at", "infinity"),
        ("SELECT '-infinity'::timestamp AS at", "at", "infinity"),
        ("SELECT '-infinity'::date AS day", "day", "infinity"),
        ("SELECT '294276-12-31 23:59:59'::timestamp AS late", "late", "beyond the range"),
        ("SELECT '{{1,2},{3,4}}'::int[] AS grid", "grid", "multi-dimensional"),
    ],
)
def test_values_arrow_cannot_hold_are_refused_by_column(db: psycopg.Connection, query: str, column: str,
                                                         words: str) -> None:
    with pytest.raises(errors.JobledgerError) as caught:
        read_all(db, query)
    assert caught.value.category == "value_not_representable"
    assert f'column "{column}"' in str(caught.value) and words in str(caught.value)


def test_inside_the_callers_transaction(db: psycopg.Connection, connect: Any) -> None:
    conn = connect()
    conn.autocommit = False
    conn.execute("SET LOCAL TimeZone = 'Asia/Tokyo'")
    table = read_all(conn, "SELECT current_setting('TimeZone') AS zone")
    assert table.column("zone").to_pylist() == ["Asia/Tokyo"]
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    conn.rollback()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    texts=st.lists(st.none() | st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00")),
                   min_size=1, max_size=5),
    amounts=st.lists(st.none() | st.decimals(allow_nan=False, allow_infinity=False, places=5,
                                             min_value=-(10**14), max_value=10**14), min_size=1, max_size=5),
)
def test_bound_values_round_trip(db: psycopg.Connection, texts: list[str | None],
                                 amounts: list[decimal.Decimal | None]) -> None:
    table = read_all(db, "SELECT t, a::numeric(20,5) AS a FROM unnest(%s::text[], %s::numeric[]) AS u(t, a)",
                     params=(texts, amounts), batch_rows=2)
    size = max(len(texts), len(amounts))
    assert table.column("t").to_pylist() == texts + [None] * (size - len(texts))
    got = table.column("a").to_pylist()
    assert got == amounts + [None] * (size - len(amounts))
    assert all(g is None or g.as_tuple().exponent == -5 for g in got)
