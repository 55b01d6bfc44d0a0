"""pgspot finds nothing unsafe in any script the extension installs."""

from __future__ import annotations

import pathlib
import subprocess

import pytest

import assemble

# The first migration refuses a jobledger schema that is not empty or not
# owned by the installing role, so the scripts may treat it as their own, as
# pgspot treats a schema the script creates itself.  jobledger_internal is
# created by the extension's own migration (0.5.0/0004), which fails if the
# name is taken: an upgrade from 0.5.0 on finds it as the extension's member.
SCHEMA_IS_OURS = "CREATE SCHEMA jobledger;\nCREATE SCHEMA jobledger_internal;\n"

# Findings accepted on purpose, each exactly: internal SQL functions without
# SET search_path so that PostgreSQL inlines them (their bodies qualify every
# name; see sql/objects/05_calling_role.sql, 08_destination_kind.sql,
# 52_denied_dependencies.sql and test_extension's INLINED).
ACCEPTED = {
    "PS005: Function without explicit search_path: jobledger_internal.calling_role()",
    # Where the released 0.2.0-0.4.0 scripts defined it.
    "PS005: Function without explicit search_path: jobledger.calling_role()",
    "PS005: Function without explicit search_path:"
    " jobledger_internal.denied_dependencies(owner name,dependencies jsonb,what text)",
    "PS005: Function without explicit search_path: jobledger_internal.destination_kind(destination text)",
}


@pytest.mark.parametrize("name", sorted(assemble.scripts()))
def test_pgspot_finds_nothing(tmp_path: pathlib.Path, name: str) -> None:
    preamble = tmp_path / "schema.sql"
    preamble.write_text(SCHEMA_IS_OURS)
    script = tmp_path / name
    script.write_text(assemble.scripts()[name].replace(assemble.LIBDIR_MARK, "/usr/lib/jobledger"))
    pgspot = pathlib.Path(__file__).resolve().parents[2] / ".venv-pgspot" / "bin" / "pgspot"
    result = subprocess.run(
        [str(pgspot), "--ignore-lang", "plpython3u", "-a", str(preamble), str(script)],
        capture_output=True, text=True,
    )
    findings = [line.strip() for line in result.stdout.splitlines() if line.strip().startswith("PS")]
    unexpected = [f for f in findings if f.split(" at line ")[0] not in ACCEPTED]
    assert unexpected == [], result.stdout
    accepted = len(findings) - len(unexpected)
    assert f"TOTAL: Errors: 0 Warnings: {accepted} Unknown: 0" in result.stdout, result.stdout
    assert result.returncode == (1 if accepted else 0), result.stdout + result.stderr
