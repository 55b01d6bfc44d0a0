"""Helpers of the CLI tests."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass
class Result:
    """A finished ``jobledger`` process."""

    code: int
    out: str
    err: str


def one_line_error(result: Result, category: str) -> Any:
    """The command failed with exit 1 and one error line of ``category``."""
    lines = result.err.strip().splitlines()
    assert result.code == 1, result
    assert len(lines) == 1 and lines[0].startswith("error: ") and lines[0].endswith(f"({category})"), result
    return lines[0]
