"""Fixtures of the security tests: a directory the server may write in, and
the canary of one test (see sectools)."""

from __future__ import annotations

import pathlib
import shutil
from typing import Any, Iterator

import psycopg
import pytest

import sectools


@pytest.fixture(scope="session")
def canary_dir() -> Iterator[pathlib.Path]:
    path = sectools.writable_directory()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def attacker(make_role: Any) -> str:
    """A role with LOGIN and nothing else."""
    return make_role("atk")


@pytest.fixture
def canary(db: psycopg.Connection, attacker: str, canary_dir: pathlib.Path) -> Iterator[sectools.Canary]:
    found = sectools.make_canary(db, attacker, canary_dir)
    yield found
    # Whatever happened, leave the cluster as it was (roles are cluster-wide).
    db.execute("SELECT pg_catalog.pg_advisory_unlock_all()")
    found.file.unlink(missing_ok=True)
