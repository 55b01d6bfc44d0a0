"""Reading lake destination strings (core.destinations): ``delta:`` and
``lance:`` share the location and option rules; each refuses what it lacks."""

from __future__ import annotations

import pytest

from jobledger.core import destinations, errors


@pytest.mark.parametrize("given, expected", [
    ("lance:/data/sales", destinations.Lance("/data/sales")),
    ("lance:/data//sales/?create_if_missing=true", destinations.Lance("/data/sales", True)),
    ("lance:s3://lake/sales/2026/", destinations.Lance("s3://lake/sales/2026")),
    ("lance:s3://lake/sales?create_if_missing=off", destinations.Lance("s3://lake/sales", False)),
    ("delta:/data/sales?partition_by=a,b&merge_keys=id",
     destinations.Delta("/data/sales", False, ("a", "b"), ("id",))),
    ("delta:s3://lake/t?create_if_missing=yes", destinations.Delta("s3://lake/t", True)),
])
def test_lake_destinations_are_read(given: str, expected: object) -> None:
    parsed = destinations.parse(given)
    assert parsed == expected and type(parsed) is type(expected)
    assert destinations.parse(parsed.canonical) == parsed


@pytest.mark.parametrize("given", [
    "lance:relative/dir", "lance:/", "lance:s3://bucket", "lance:s3://bucket/", "lance:s3:///prefix",
    "lance:/a/../b", "lance:/a/./b", "lance:/a?merge_keys=id", "lance:/a?partition_by=x",
    "lance:/a?create_if_missing=maybe", "lance:/a?create_if_missing", "lance:/a\x00b", "lance:",
    "delta:relative", "delta:/a?foo=1", "delta:/a?merge_keys=id,id",
])
def test_malformed_lake_destinations_are_refused(given: str) -> None:
    with pytest.raises(errors.JobledgerError) as refused:
        destinations.parse(given)
    assert refused.value.category == "invalid_argument"
    assert given.partition(":")[0] in refused.value.message or "root directory" in refused.value.message


def test_lance_modes() -> None:
    target = destinations.parse("lance:/data/x")
    for mode in ("append", "overwrite"):
        destinations.check_mode(target, mode, "j")
    with pytest.raises(errors.JobledgerError) as refused:
        destinations.check_mode(target, "merge", "j")
    assert refused.value.category == "invalid_argument" and "append and overwrite" in refused.value.message
    assert destinations.kind("lance:/x") == "lance" and destinations.outside_database("lance:/x")
    assert destinations.parse("lance:/x").local and not destinations.parse("lance:s3://b/x").local
