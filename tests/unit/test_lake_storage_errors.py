"""How an object store's error becomes a run's category (delta_table.storage_failure,
lance_dataset.storage_failure: one rule, table_format.storage_failure): what a
user can act on is named, anything else is storage_error (retried)."""

from __future__ import annotations

import pytest

from jobledger.lake import delta_table, lance_dataset


@pytest.mark.parametrize(("text", "category"), [
    ("Generic S3 error: Error performing PUT http://s3/b/t in 2.540310403s, after 10 retries - HTTP error",
     "storage_error"),
    ("Generic S3 error: Client error with status 403 Forbidden: <Code>SignatureDoesNotMatch</Code>",
     "permission_denied"),
    ("Generic S3 error: <Code>InvalidAccessKeyId</Code>", "permission_denied"),
    ("Object at location t/_delta_log: Permission denied (os error 13)", "permission_denied"),
    ("Generic S3 error: <Code>NoSuchBucket</Code> The specified bucket does not exist", "destination_missing"),
    ("Generic S3 error: Server returned non-2xx status code: 503 Service Unavailable: SlowDown", "storage_error"),
    ("Transaction failed: version 4 already exists, after 15 retries", "storage_error"),
    ("timed out after 403.5 s", "storage_error"),
])
def test_store_errors_map_to_categories(text: str, category: str) -> None:
    failure = delta_table.storage_failure("s3://b/t", OSError(text))
    assert failure.category == category
    assert "s3://b/t" in failure.message and "delta table" in failure.message
    lance_failure = lance_dataset.storage_failure("s3://b/t", OSError(text))
    assert lance_failure.category == category
    assert "s3://b/t" in lance_failure.message and "lance dataset" in lance_failure.message


def test_colour_codes_and_chains_are_flattened() -> None:
    text = "Kernel error -> Generic S3 error\n  \x1b[31m\u21b3\x1b[0m error sending request\n   0: frame"
    message = delta_table.storage_failure("s3://b/t", OSError(text)).message
    assert "\x1b" not in message and "\n" not in message and "error sending request" in message
