"""How much of what users' queries return the Arrow destinations hold: the
regression-suite SELECTs of test_fidelity, each defined with destination
``result``, submitted, and run by ``jobledger runner --drain``.

Opt-in (``JOBLEDGER_ARROW_COVERAGE=1``; about two minutes on two cores):

    make test PYTEST_ARGS="tests/fidelity/test_arrow_coverage.py -q" JOBLEDGER_ARROW_COVERAGE=1

The figures go to build/arrow_coverage.json (and docs/benchmarks.md quotes
them): how many statements define_job refuses and why (the refused columns'
types when the category is ``unsupported_type``), how many runs succeed, and
the categories of those that fail.  For every succeeded run, each string
column of the result (the mapping's text form, arrays excluded) must hold
exactly the statement's text output in a session with the runner's settings,
and the row count must be the statement's: anything else is a failure.
"""

from __future__ import annotations

import collections
import json
import os
import pathlib
import re
import time
from typing import Any

import psycopg
import pyarrow
import pytest
from psycopg import sql

import dbtools
import runnertools
from jobledger import client
from test_fidelity import CORPUS, RUNNER_OPTIONS, SEARCH_PATH, SETUP, raw

pytestmark = pytest.mark.skipif(os.environ.get("JOBLEDGER_ARROW_COVERAGE") != "1",
                                reason="opt-in: JOBLEDGER_ARROW_COVERAGE=1")

REPORT = pathlib.Path(__file__).resolve().parent.parent.parent / "build" / "arrow_coverage.json"
EVERY = int(os.environ.get("JOBLEDGER_FIDELITY_EVERY", "1"))
EXAMPLES = 10
# 'column "x" is numeric: why', one line of an unsupported_type error's detail.
REFUSED_COLUMN = re.compile(r'column "(?:[^"]|"")*" is (?P<type>.+?): ')


def type_family(pg_type: str) -> str:
    """``numeric(10,2)[]`` -> ``numeric(p,s)[]``: the type without its modifiers' values."""
    return re.sub(r"\([0-9, ]+\)", "(n)", pg_type)


def test_result_destination_holds_the_regression_selects(db: psycopg.Connection, connect: Any,
                                                          tmp_path: pathlib.Path) -> None:
    started = time.monotonic()
    dbname = db.info.dbname
    for name, value in CORPUS["settings"].items():
        db.execute(sql.SQL("ALTER DATABASE {} SET {} = {}").format(
            sql.Identifier(dbname), sql.Identifier(name), sql.Literal(value)))
    db.execute(SETUP.encode())
    api = connect()
    runner_like = connect(options=RUNNER_OPTIONS)
    runner_like.execute(sql.SQL("SET search_path = {}").format(sql.SQL(SEARCH_PATH)))

    counts: collections.Counter[str] = collections.Counter()
    refused: collections.Counter[str] = collections.Counter()
    refused_types: collections.Counter[str] = collections.Counter()
    examples: dict[str, list[dict[str, str]]] = collections.defaultdict(list)
    runs: list[tuple[dict[str, Any], Any]] = []
    for index, item in enumerate(CORPUS["statements"]):
        if index % EVERY:
            continue
        counts["statements"] += 1
        try:
            runnertools.define(api, f"arrow_{index:05d}", item["sql"], "result")
        except psycopg.Error as exc:
            category = dbtools.category(exc) or f"sqlstate {exc.sqlstate}"
            if category == "unsupported_type":
                types = {type_family(m["type"]) for m in REFUSED_COLUMN.finditer(exc.diag.message_detail or "")}
                category += ": plain numeric only" if types == {"numeric"} else ": other types"
                refused_types.update(types)
            refused[category] += 1
            if len(examples[category]) < EXAMPLES:
                examples[category].append({"line": f"{item['file']}:{item['line']}", "sql": item["sql"][:200],
                                           "error": str(exc).split("\n")[0][:300]})
            continue
        counts["accepted"] += 1
        runs.append((item, runnertools.submit(api, f"arrow_{index:05d}")))

    env = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DATABASE_URL"}
    runner = runnertools.Runner(["--dsn", runnertools.dsn(db), "--worker-id", "arrow", "--drain",
                                 "--concurrency", "2", "--log-level", "warning"], tmp_path / "runner.log", env)
    try:
        assert runner.wait(timeout=900) == 0, runner.log()[-3000:]
    finally:
        runner.close()

    failed: collections.Counter[str] = collections.Counter()
    failed_reasons: collections.Counter[str] = collections.Counter()
    problems: list[dict[str, Any]] = []
    for item, run in runs:
        row = api.execute("SELECT status::text, error_category, error FROM jobledger.run WHERE id = %s",
                          (run,)).fetchone()
        if row["status"] != "succeeded":
            failed[row["error_category"] or row["status"]] += 1
            reason = re.sub(r'column "(?:[^"]|"")*"(, row [0-9]+)?', "column", str(row["error"]).split("\n")[0])
            failed_reasons[re.sub(r"[0-9]+", "N", reason)[:120]] += 1
            key = f"run failed: {row['error_category']}"
            if len(examples[key]) < EXAMPLES:
                examples[key].append({"line": f"{item['file']}:{item['line']}", "sql": item["sql"][:200],
                                      "error": str(row["error"])[:300]})
            continue
        counts["runs_succeeded"] += 1
        expected = raw(runner_like, item["sql"])
        table = client.result(runner_like, run)
        strings = [i for i, field in enumerate(table.schema) if pyarrow.types.is_string(field.type)]
        if table.num_rows != len(expected["rows"]):
            problems.append({"line": f"{item['file']}:{item['line']}", "problem": "row count",
                             "direct": len(expected["rows"]), "result": table.num_rows})
            continue
        if not strings:
            continue
        counts["runs_with_string_columns_compared"] += 1
        got = [tuple(table.column(i).to_pylist()[r] for i in strings) for r in range(table.num_rows)]
        want = [tuple(None if row[i] is None else row[i].decode() for i in strings) for row in expected["rows"]]
        same = got == want if item["ordered"] else collections.Counter(got) == collections.Counter(want)
        if not same:
            problems.append({"line": f"{item['file']}:{item['line']}", "problem": "string values differ",
                             "sql": item["sql"][:200], "direct": str(want[:3])[:300], "result": str(got[:3])[:300]})

    report = {
        "counts": dict(counts),
        "refused_by_category": dict(refused.most_common()),
        "refused_column_types": dict(refused_types.most_common()),
        "runs_failed_by_category": dict(failed.most_common()),
        "runs_failed_by_reason": dict(failed_reasons.most_common()),
        "problems": len(problems),
        "seconds": round(time.monotonic() - started, 1),
        "examples": dict(examples),
        "problem_examples": problems[:EXAMPLES * 3],
    }
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in report.items() if "examples" not in k}, indent=1))
    assert not problems, json.dumps(problems[:10], indent=1, ensure_ascii=False)
