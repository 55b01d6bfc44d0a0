"""Extract the standalone SELECTs of PostgreSQL's regression suite for the fidelity test.

Run by hand (not by the tests) when the corpus or the rules below change; it
rewrites tests/fidelity/pg15_regress_selects.json, which is committed:

    python3 -m venv build/genvenv
    build/genvenv/bin/pip install pglast==5.10 'psycopg[binary]'
    PGHOST=... PGPORT=... PGUSER=<superuser> build/genvenv/bin/python tests/fidelity/generate_corpus.py

pglast 5.x is PostgreSQL 15's own grammar (libpg_query), so "a statement" and
"a SELECT" mean what the server means.  A statement is kept when

- PostgreSQL reads it as exactly one top-level ``SelectStmt`` (VALUES and
  TABLE included) without INTO, locking clause or data-modifying CTE;
- it uses no psql variable and no meta-command;
- it calls nothing non-deterministic or with side effects (the deny list
  below) and reads no system catalog or statistics view (those change while
  the test creates destination tables);
- it runs successfully, twice with identical output, in a scratch database
  prepared by tests/fidelity/setup.sql under pg_regress's settings, within
  the time and size limits below.

The corpus is ../shared/corpus/pg15-regress (PostgreSQL 15.1's
src/test/regress/sql, as copied into pganalyze/libpg_query
test/sql/postgres_regress at commit 6fb6dc0; PostgreSQL License).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import sys
import time
import uuid
from typing import Any

import pglast
import pglast.parser
import psycopg
from psycopg import sql

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
DEFAULT_CORPUS = REPO.parent / "shared" / "corpus" / "pg15-regress"
OUT = HERE / "pg15_regress_selects.json"
SETUP = HERE / "setup.sql"

# pg_regress's session settings (the test sets the same with ALTER DATABASE).
SETTINGS = {"TimeZone": "PST8PDT", "DateStyle": "Postgres, MDY", "IntervalStyle": "postgres_verbose"}

# Limits that keep the test within a few minutes on two cores.
MAX_MS = 100.0
MAX_ROWS = 1000
MAX_BYTES = 100_000

# Words (matched case-insensitively as whole words in the statement text) that
# make a statement non-deterministic, session-dependent or side-effecting.
DENY_WORDS = [
    # time and randomness
    "random", "setseed", "gen_random_uuid", "now", "clock_timestamp", "statement_timestamp",
    "transaction_timestamp", "timeofday",
    "pg_postmaster_start_time",
    "pg_conf_load_time", "age",
    # the session, the backend, the cluster
    "pg_backend_pid", "inet_client_addr", "inet_client_port", "inet_server_addr", "inet_server_port",
    "pg_current_logfile", "version", "pg_my_temp_schema", "pg_is_other_temp_schema",
    "pg_trigger_depth", "current_database", "current_schemas", "pg_current_snapshot", "pg_snapshot_xmin",
    "pg_snapshot_xmax", "pg_visible_in_snapshot", "pg_xact_status", "pg_xact_commit_timestamp",
    "pg_last_committed_xact", "pg_current_xact_id", "pg_current_xact_id_if_assigned",
    "pg_control_checkpoint", "pg_control_system", "pg_control_init", "pg_control_recovery",
    "pg_current_wal_lsn", "pg_current_wal_insert_lsn", "pg_current_wal_flush_lsn", "pg_walfile_name",
    "pg_size_pretty", "pg_relation_size", "pg_total_relation_size", "pg_table_size", "pg_indexes_size",
    "pg_database_size", "pg_tablespace_size", "pg_relation_filenode", "pg_relation_filepath",
    "pg_filenode_relation", "pg_get_backend_memory_contexts", "pg_ls_dir", "pg_ls_logdir",
    "pg_ls_waldir", "pg_ls_tmpdir", "pg_ls_archive_statusdir", "pg_read_file", "pg_read_binary_file",
    "pg_stat_file", "pg_tablespace_location", "pg_blocking_pids", "pg_safe_snapshot_blocking_pids",
    "pg_isolation_test_session_is_blocked", "pg_prepared_statement", "pg_cursor", "pg_jit_available",
    "pg_get_wal_resource_managers", "pg_get_keywords", "pg_get_catalog_foreign_keys",
    "pg_options_to_table", "pg_event_trigger_ddl_commands", "pg_identify_object",
    "pg_describe_object", "pg_get_object_address", "pg_identify_object_as_address",
    "pg_column_size", "pg_column_compression", "current_setting",
    # side effects
    "nextval", "currval", "lastval", "setval", "set_config", "pg_advisory_lock",
    "pg_advisory_xact_lock", "pg_advisory_lock_shared", "pg_advisory_xact_lock_shared",
    "pg_try_advisory_lock", "pg_try_advisory_xact_lock", "pg_try_advisory_lock_shared",
    "pg_try_advisory_xact_lock_shared", "pg_advisory_unlock", "pg_advisory_unlock_all",
    "pg_advisory_unlock_shared", "pg_notify", "pg_cancel_backend", "pg_terminate_backend",
    "pg_reload_conf", "pg_rotate_logfile", "pg_switch_wal", "pg_sleep", "pg_sleep_for",
    "pg_sleep_until", "pg_log_backend_memory_contexts", "pg_create_restore_point",
    "pg_import_system_collations", "pg_stat_reset", "pg_stat_clear_snapshot",
    "pg_stat_force_next_flush", "pg_stat_reset_shared", "pg_stat_reset_single_table_counters",
    "pg_stat_reset_slru", "pg_stat_reset_replication_slot", "pg_stat_reset_subscription_stats",
    "pg_replication_origin_create", "pg_create_physical_replication_slot",
    "pg_create_logical_replication_slot", "pg_drop_replication_slot", "pg_logical_emit_message",
    "pg_backup_start", "pg_backup_stop", "pg_promote", "pg_wal_replay_pause", "pg_wal_replay_resume",
    "txid_current", "txid_current_if_assigned", "txid_current_snapshot", "txid_snapshot_xmin",
    "txid_snapshot_xmax", "txid_visible_in_snapshot", "txid_status", "lo_create", "lo_creat",
    "lo_import", "lo_export", "lo_unlink", "lo_open", "lo_close", "lo_put", "lo_from_bytea",
    "lo_truncate", "lo_truncate64", "lowrite", "loread", "lo_get", "lo_lseek", "lo_lseek64",
    "lo_tell", "lo_tell64", "query_to_xml", "query_to_xml_and_xmlschema", "table_to_xml",
    "cursor_to_xml", "schema_to_xml", "database_to_xml", "database_to_xmlschema",
    "schema_to_xmlschema", "table_to_xmlschema", "query_to_xmlschema", "cursor_to_xmlschema",
    "table_to_xml_and_xmlschema", "schema_to_xml_and_xmlschema", "database_to_xml_and_xmlschema",
    "pg_stat_get_snapshot_timestamp", "pg_relation_is_updatable", "pg_column_is_updatable",
    "pg_partition_tree", "pg_partition_ancestors", "pg_partition_root", "pg_get_viewdef",
    "pg_get_ruledef", "pg_get_triggerdef", "pg_get_indexdef", "pg_get_constraintdef",
    "pg_get_functiondef", "pg_get_function_arguments", "pg_get_expr", "pg_get_serial_sequence",
    "pg_get_statisticsobjdef", "pg_get_statisticsobjdef_columns", "has_table_privilege",
    "has_column_privilege", "has_function_privilege", "has_schema_privilege",
    "has_sequence_privilege", "has_any_column_privilege", "has_database_privilege",
    "has_tablespace_privilege", "has_type_privilege", "has_foreign_data_wrapper_privilege",
    "has_server_privilege", "has_parameter_privilege", "pg_has_role", "row_security_active",
    "pg_indexam_has_property", "pg_index_has_property", "pg_index_column_has_property",
    "pg_get_replica_identity_index", "dblink", "pg_input_is_valid",
]
# These need no parentheses: SQL value functions, system columns, GUC names.
DENY_BARE = {
    "current_timestamp", "localtimestamp", "current_date", "current_time", "localtime",
    "session_user", "current_user", "user", "current_role", "current_catalog", "current_schema",
    "ctid", "xmin", "xmax", "cmin", "cmax", "tableoid", "application_name",
}
DENY_RE = re.compile(
    r"\b(" + "|".join(map(re.escape, sorted(DENY_BARE))) + r")\b"   # bare words
    r"|\b(" + "|".join(map(re.escape, DENY_WORDS)) + r")\s*\("       # function calls
    r"|'\s*(now|today|tomorrow|yesterday)\b",                       # special date/time inputs
    re.IGNORECASE)

# Statement kinds the parse tree must not contain anywhere.
FORBIDDEN_NODES = ("InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt", "intoClause", "lockingClause")

# A psql variable (:foo, :'foo', :"foo"), not a cast (::) nor an array slice bound.
PSQL_VAR_RE = re.compile(r"(?<![:\w\]\)])\s*:['\"]?[A-Za-z_]")
# Catalog reads: relation names of the system schemas.
CATALOG_SCHEMAS = {"pg_catalog", "information_schema", "pg_toast"}


def preprocess(text: str) -> str:
    """The file without psql meta-command lines and COPY ... FROM stdin data.

    A meta-command line becomes an empty line, so a statement it terminated
    (``\\gset``, ``\\g``) ends there too; line numbers stay as in the file."""
    out: list[str] = []
    in_copy_data = False
    for line in text.split("\n"):
        stripped = line.strip()
        if in_copy_data:
            out.append("")
            if stripped == "\\.":
                in_copy_data = False
            continue
        if stripped.startswith("\\"):
            out.append(";")
            continue
        if re.search(r"\bfrom\s+stdin\b", line, re.IGNORECASE) and stripped.endswith(";"):
            in_copy_data = True
            out.append("")  # the COPY itself is not a SELECT
            continue
        out.append(line)
    return "\n".join(out)


def strip_leading_comments(stmt: str) -> str:
    """Drops whole ``--`` comment lines before the statement's first token
    (they belong to what precedes it in the file)."""
    lines = stmt.split("\n")
    while lines and (not lines[0].strip() or lines[0].strip().startswith("--")):
        lines.pop(0)
    return "\n".join(lines).strip()


def walk(node: Any):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def classify(stmt: str) -> tuple[str | None, dict[str, Any]]:
    """(reason to drop or None, facts) for one statement text."""
    if PSQL_VAR_RE.search(stmt):
        return "psql_variable", {}
    try:
        tree = json.loads(pglast.parser.parse_sql_json(stmt))
    except pglast.parser.ParseError:
        return "parse_error", {}
    stmts = tree.get("stmts", [])
    if len(stmts) != 1 or "SelectStmt" not in stmts[0]["stmt"]:
        return "not_select", {}
    top = stmts[0]["stmt"]["SelectStmt"]
    for node in walk(top):
        for key in FORBIDDEN_NODES:
            if key in node:
                return "modifying_or_into_or_locking", {}
        rv = node.get("RangeVar")
        if rv is not None:
            if rv.get("schemaname") in CATALOG_SCHEMAS or rv.get("relname", "").startswith(("pg_", "information_schema")):
                return "catalog", {}
    if DENY_RE.search(stmt):
        return "deny_list", {}
    return None, {"ordered": bool(top.get("sortClause"))}


def split(text: str, dropped: dict[str, int]) -> list[slice]:
    """Statement slices of ``text`` by PostgreSQL's scanner.  A file the
    scanner rejects as a whole (strings.sql has an invalid Unicode escape on
    purpose) is cut at lines ending in ``;`` first and each piece scanned on
    its own; pieces the scanner rejects are dropped."""
    try:
        return list(pglast.parser.split(text, with_parser=False, only_slices=True))
    except pglast.parser.ParseError:
        pass
    slices: list[slice] = []
    start = 0
    for end in [m.end() for m in re.finditer(r";[ \t]*\n", text)] + [len(text)]:
        try:
            pieces = pglast.parser.split(text[start:end], with_parser=False, only_slices=True)
        except pglast.parser.ParseError:
            dropped["unscannable_piece"] = dropped.get("unscannable_piece", 0) + 1
        else:
            slices.extend(slice(start + s.start, start + s.stop) for s in pieces)
        start = end
    return slices


def candidates(corpus: pathlib.Path) -> tuple[list[dict[str, Any]], dict[str, int]]:
    found: list[dict[str, Any]] = []
    dropped: dict[str, int] = {}
    seen: set[str] = set()
    for path in sorted(corpus.glob("*.sql")):
        if path.name == "test_setup.sql":
            continue
        text = preprocess(path.read_text(encoding="utf-8", errors="replace"))
        slices = split(text, dropped)
        for piece in slices:
            stmt = strip_leading_comments(text[piece])
            if not stmt or not re.match(r"(?is)\s*(\(|select\b|with\b|values\b|table\b|/\*)", stmt):
                continue
            reason, facts = classify(stmt)
            if reason is None and stmt in seen:
                reason = "duplicate"
            if reason is not None:
                dropped[reason] = dropped.get(reason, 0) + 1
                continue
            seen.add(stmt)
            line = text.count("\n", 0, piece.start + text[piece].index(stmt)) + 1
            found.append({"file": path.name, "line": line, "sql": stmt, **facts})
    return found, dropped


def run_once(conn: psycopg.Connection, stmt: str) -> tuple[list[str], list[int], list[tuple], float]:
    """(names, type oids, rows as text, ms) of one execution, rolled back."""
    with conn.transaction(force_rollback=True):
        with conn.cursor() as cur:
            start = time.perf_counter()
            cur.execute(stmt.encode(), prepare=False)
            elapsed = (time.perf_counter() - start) * 1000
            res = cur.pgresult
            assert res is not None
            names = [res.fname(j).decode() for j in range(res.nfields)]
            oids = [res.ftype(j) for j in range(res.nfields)]
            rows = [tuple(res.get_value(i, j) for j in range(res.nfields)) for i in range(res.ntuples)]
    return names, oids, rows, elapsed


def check_runs(conn: psycopg.Connection, found: list[dict[str, Any]], dropped: dict[str, int]) -> list[dict[str, Any]]:
    kept = []
    for item in found:
        reason = None
        try:
            first = run_once(conn, item["sql"])
            second = run_once(conn, item["sql"])
        except psycopg.Error:
            reason = "fails_here"
        else:
            size = sum(len(v or b"") for row in first[2] for v in row)
            if first[:3] != second[:3]:
                reason = "not_deterministic"
            elif not first[0]:
                reason = "no_columns"
            elif max(first[3], second[3]) > MAX_MS:
                reason = "too_slow"
            elif len(first[2]) > MAX_ROWS or size > MAX_BYTES:
                reason = "too_large"
        if reason is not None:
            dropped[reason] = dropped.get(reason, 0) + 1
            continue
        kept.append(item)
    return kept


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=pathlib.Path, default=DEFAULT_CORPUS)
    parser.add_argument("--out", type=pathlib.Path, default=OUT)
    args = parser.parse_args()
    if not pglast.__version__.lstrip("v").startswith("5."):
        print(f"pglast 5.x (PostgreSQL 15's grammar) is needed, not {pglast.__version__}", file=sys.stderr)
        return 2

    found, dropped = candidates(args.corpus)
    print(f"{len(found)} candidate SELECTs", file=sys.stderr)
    dbname = f"jl_fidelity_gen_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dbname="postgres", autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        for name, value in SETTINGS.items():
            admin.execute(sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                sql.Identifier(dbname), sql.Identifier(name), sql.Literal(value)))
    try:
        with psycopg.connect(dbname=dbname, autocommit=True) as conn:
            conn.execute(SETUP.read_text().encode())
            conn.execute("SET search_path = pg_catalog, public")
            conn.execute("SET statement_timeout = '2s'")
            kept = check_runs(conn, found, dropped)
    finally:
        with psycopg.connect(dbname="postgres", autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(dbname)))

    document = {
        "origin": ("PostgreSQL 15.1 src/test/regress/sql, via pganalyze/libpg_query "
                   "test/sql/postgres_regress (commit 6fb6dc0); PostgreSQL License: Portions Copyright (c) "
                   "1996-2022, PostgreSQL Global Development Group; Portions Copyright (c) 1994, The Regents "
                   "of the University of California"),
        "generated_by": ("build/genvenv/bin/python tests/fidelity/generate_corpus.py "
                         "(pglast 5.10; see its docstring); do not edit by hand"),
        "setup": "tests/fidelity/setup.sql",
        "settings": SETTINGS,
        "dropped": dict(sorted(dropped.items())),
        "count": len(kept),
        "statements": kept,
    }
    args.out.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"kept {len(kept)}; dropped {json.dumps(document['dropped'])}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
