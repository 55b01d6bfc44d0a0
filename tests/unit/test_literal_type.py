"""Unit tests for the pure parts of jobledger.jobs."""

from __future__ import annotations

import pytest

from jobledger import jobs, params


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", "integer"),
        ("-2147483648", "integer"),
        ("2147483648", "bigint"),
        ("3000000000", "bigint"),
        ("-9223372036854775808", "bigint"),
        ("9223372036854775808", "numeric"),
        ("1.5", "numeric"),
        ("1.0", "numeric"),
        ("1e3", "integer"),
        ('"x"', "unknown"),
        ("true", "boolean"),
        ("null", "null"),
    ],
)
def test_literal_type_of_untyped_values_is_what_postgresql_infers(raw: str, expected: str) -> None:
    decls = params.parse_declarations(None, frozenset({"v"}))
    assert jobs.literal_type(params.bind(decls, '{"v": ' + raw + "}")["v"]) == expected


def test_literal_type_of_declared_values_is_the_declared_type() -> None:
    decls = params.parse_declarations({"v": {"type": "bigint[]", "nullable": True}}, frozenset({"v"}))
    assert jobs.literal_type(params.bind(decls, '{"v": null}')["v"]) == "bigint[]"
