"""The kind of a stored destination: jobledger_internal.destination_kind (what
SQL asks) and jobledger.core.destinations.kind (what Python asks) give the
same answer, and submit_job looks up only tables."""

from __future__ import annotations

import psycopg
import pytest

import dbtools
from jobledger.core import destinations

STORED = [
    "result", "parquet:/data/sales", "parquet:/data/sales?create_if_missing=true", "parquet:",
    "delta:/data/sales", "delta:s3://lake/sales?create_if_missing=true", "DELTA:/x", "public.\"delta:x\"",
    "lance:/data/sales", "lance:s3://lake/sales?create_if_missing=true", "LANCE:/x", "public.\"lance:x\"", "lance:",
    "public.result", 'public."parquet:x"', "public.sales", "Result", "result ", "parquet", "PARQUET:/x", "",
]


@pytest.mark.parametrize("stored", STORED)
def test_sql_and_python_agree(db: psycopg.Connection, stored: str) -> None:
    found = db.execute("SELECT jobledger_internal.destination_kind(%s) AS kind", (stored,)).fetchone()["kind"]
    assert found == destinations.kind(stored)
    assert destinations.outside_database(stored) == (found != "table")


def test_null_has_no_kind(db: psycopg.Connection) -> None:
    assert db.execute("SELECT jobledger_internal.destination_kind(NULL) AS kind").fetchone()["kind"] is None


def test_a_table_named_result_is_a_table(db: psycopg.Connection) -> None:
    """define_job stores a table named result as public.result: submit_job
    looks it up as a table (a changed table is refused), not as an output."""
    db.execute("CREATE TABLE public.result (n int)")
    db.execute("SELECT jobledger.define_job('into_result', 'SELECT 1 AS n', 'result', 'append')")
    db.execute("SELECT jobledger.define_job('into_table', 'SELECT 1 AS n', 'public.result', 'append')")
    stored = {r["job"]: r["destination"] for r in db.execute("SELECT job, destination FROM jobledger.job_version")}
    assert stored == {"into_result": "result", "into_table": "public.result"}
    run = db.execute("SELECT jobledger.submit_job('into_table', '{}') AS id").fetchone()["id"]
    assert dbtools.run_row(db, run)["status"] == "pending"
    db.execute("ALTER TABLE public.result ALTER COLUMN n TYPE text")
    with pytest.raises(psycopg.Error) as refused:
        db.execute("SELECT jobledger.submit_job('into_table', '{}')")
    assert dbtools.category(refused.value) == "schema_mismatch"
    db.rollback()
    assert db.execute("SELECT jobledger.submit_job('into_result', '{}') AS id").fetchone()["id"]
