"""JSON read and written by the client side without losing a number or failing on one.

A jsonb number may have up to 131,072 digits (``{"n": 1e5000}`` is valid, and
PostgreSQL prints it with all 5,001), while Python's ``int()`` refuses more
than 4,300 (``sys.get_int_max_str_digits``): psycopg's default JSON loader
then raises, and ``jobledger show`` printed a traceback.  ``loads`` keeps
such an integer as a ``Number`` (its text); ``dumps`` writes it back as the
same JSON number.  Linear in the size of the text, unlike lifting the limit.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any, Callable

import psycopg
from psycopg.types import json as pg_json


class Number:
    """A JSON integer too long for Python's ``int``, kept as its text."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Number({self.text[:20]}...{len(self.text)} digits)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Number) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


def _int(text: str) -> int | Number:
    try:
        return int(text)
    except ValueError:
        return Number(text)


def loads(data: str | bytes) -> Any:
    """``json.loads``, with over-long integers as ``Number``."""
    return json.loads(data, parse_int=_int)


def register(context: psycopg.Connection | psycopg.Cursor) -> None:
    """Load json and jsonb with ``loads`` on this connection or cursor."""
    pg_json.set_json_loads(loads, context)


def dumps(value: Any, default: Callable[[Any], Any] | None = None, **options: Any) -> str:
    """``json.dumps`` (``options`` as there), each ``Number`` written as itself."""
    numbers: list[str] = []
    nonce = secrets.token_hex(8)  # no string in ``value`` can pass for a marker

    def fallback(obj: Any) -> Any:
        if isinstance(obj, Number):
            numbers.append(obj.text)
            return f"\0{nonce} {len(numbers) - 1}\0"
        if default is None:
            raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")
        return default(obj)

    text = json.dumps(value, default=fallback, **options)
    if not numbers:
        return text
    marker = re.compile(r'"\\u0000' + nonce + r' (\d+)\\u0000"')
    return marker.sub(lambda m: numbers[int(m.group(1))], text)
