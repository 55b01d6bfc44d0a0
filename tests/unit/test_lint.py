"""pgspot finds nothing unsafe in any script the extension installs."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

import assemble

# The first migration refuses a jobledger schema that is not empty or not
# owned by the installing role, so the scripts may treat it as their own, as
# pgspot treats a schema the script creates itself.
SCHEMA_IS_OURS = "CREATE SCHEMA jobledger;\n"


@pytest.mark.parametrize("name", sorted(assemble.scripts()))
def test_pgspot_finds_nothing(tmp_path: pathlib.Path, name: str) -> None:
    preamble = tmp_path / "schema.sql"
    preamble.write_text(SCHEMA_IS_OURS)
    script = tmp_path / name
    script.write_text(assemble.scripts()[name].replace(assemble.LIBDIR_MARK, "/usr/lib/jobledger"))
    pgspot = pathlib.Path(sys.executable).parent / "pgspot"
    result = subprocess.run(
        [str(pgspot), "--ignore-lang", "plpython3u", "-a", str(preamble), str(script)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "TOTAL: Errors: 0 Warnings: 0 Unknown: 0" in result.stdout, result.stdout
