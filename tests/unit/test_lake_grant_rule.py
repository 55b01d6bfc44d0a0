"""The lake grant rule in Python (core.lake_grants): prefixes normalised as
lake destinations are, matching by whole path components, the refusal."""

from __future__ import annotations

import pytest

from jobledger.core import destinations, errors, lake_grants


@pytest.mark.parametrize(("given", "normalised"), [
    ("/data/lake", "/data/lake"), ("/data/lake/", "/data/lake"), ("//data//lake", "/data/lake"),
    ("s3://b/x/", "s3://b/x"), ("s3://b//x", "s3://b/x"), ("s3://b", "s3://b"), ("s3://b/", "s3://b"),
])
def test_prefixes_are_normalised_like_destinations(given: str, normalised: str) -> None:
    assert lake_grants.prefix(given) == normalised
    if normalised != "s3://b":  # a destination needs a prefix below the bucket
        assert destinations.parse(f"delta:{given}").uri == normalised


@pytest.mark.parametrize("given", ["", "x", "/", "//", "/a/../b", "/a/.", "s3://", "s3:///x", "s3://b/x//y",
                                   "/a?b=1", "/a b", "/a\nb", "/a\x00b", "delta:/a", "S3://b"])
def test_malformed_prefixes_are_invalid_arguments(given: str) -> None:
    with pytest.raises(errors.JobledgerError) as refused:
        lake_grants.prefix(given)
    assert refused.value.category == "invalid_argument"


def test_the_refusal_names_owner_location_and_the_grant() -> None:
    refused = lake_grants.refused("sales", "o'brien", "/data/it's")
    assert refused.category == "permission_denied" and refused.sqlstate == "42501"
    assert "o'brien" in refused.message and "/data/it's" in refused.message
    assert "jobledger.allow_lake_prefix('o''brien', '/data/it''s')" in refused.hint
