"""PostgreSQL 15's own grammar, in process: libpg_query as pglast 5.x ships it.

libpg_query is the server's parser (scan.l and gram.y of PostgreSQL 15)
compiled into a library; pglast 5.x links it into its extension module and
exports its C API.  This module calls that API directly with ctypes instead
of importing the ``pglast`` package: the package imports its generated AST
and enum modules (about 20 ms), which every session's first ``submit_job``
would pay, while loading the library and parsing costs a few milliseconds.
The exact pglast release is pinned in python/pyproject.toml, so the grammar
is the one the tests ran against.

``parse`` returns libpg_query's JSON parse tree.  Two quirks of that JSON
matter to callers: zero and negative integer constants both come out as
``{"ival": {}}`` (the value is lost, the node kind is not), and every node
carries its byte ``location``; ``strip_locations`` removes those so that
trees of differently spaced texts compare equal.

libpg_query always lexes with ``standard_conforming_strings = on``; text
handed to the server after being checked here must be read with that
setting on too.

Inside the server, libpg_query's functions have the server's names
(palloc, raw_parser, ...): loaded the usual way, its own calls would bind
to the server's functions and crash the backend.  It is loaded with
RTLD_DEEPBIND, so that it calls its own; ``pglast_parser`` imports pglast's
Python module the same way, for define_job's scanning.
"""

from __future__ import annotations

import ctypes
import glob
import json
import os
TYPE_CHECKING = False  # typing is slow to import: submit_job's first call pays for every import
if TYPE_CHECKING:
    from typing import Any


class ParseError(Exception):
    """PostgreSQL's grammar rejects the text: its message and the 0-based
    character offset it points at (None when it points nowhere)."""

    def __init__(self, message: str, offset: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


class _Error(ctypes.Structure):
    _fields_ = [
        ("message", ctypes.c_char_p),
        ("funcname", ctypes.c_char_p),
        ("filename", ctypes.c_char_p),
        ("lineno", ctypes.c_int),
        ("cursorpos", ctypes.c_int),
        ("context", ctypes.c_char_p),
    ]


class _ParseResult(ctypes.Structure):
    _fields_ = [
        ("parse_tree", ctypes.c_void_p),
        ("stderr_buffer", ctypes.c_void_p),
        ("error", ctypes.POINTER(_Error)),
    ]


_library: Any = None
_DLOPEN_FLAGS = os.RTLD_NOW | os.RTLD_DEEPBIND


def pglast_parser() -> Any:
    """pglast's parser module (scan, ...), loaded so that it binds to its own
    copy of PostgreSQL's functions, not the server's (see the module doc)."""
    import sys

    _lib()  # the library is loaded once, with RTLD_DEEPBIND, before Python loads it too
    flags = sys.getdlopenflags()
    sys.setdlopenflags(_DLOPEN_FLAGS)
    try:
        import pglast.parser
    finally:
        sys.setdlopenflags(flags)
    return pglast.parser


def _lib() -> Any:
    """libpg_query's functions, loaded once per process from pglast's extension module."""
    global _library
    if _library is None:
        import importlib.util

        spec = importlib.util.find_spec("pglast")
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError("pglast (PostgreSQL's parser) is not installed next to jobledger")
        found = []
        for directory in spec.submodule_search_locations:
            found += glob.glob(os.path.join(directory, "parser*.so"))
        if len(found) != 1:
            raise RuntimeError(f"cannot find pglast's parser library: {found}")
        lib = ctypes.CDLL(found[0], mode=_DLOPEN_FLAGS)
        lib.pg_query_parse.restype = _ParseResult
        lib.pg_query_parse.argtypes = [ctypes.c_char_p]
        lib.pg_query_free_parse_result.restype = None
        lib.pg_query_free_parse_result.argtypes = [_ParseResult]
        _library = lib
    return _library


def parse(sql: str) -> list[dict[str, Any]]:
    """The statements of ``sql`` as PostgreSQL's grammar reads them (RawStmt dicts).

    Raises ParseError for text the grammar rejects.  Only the raw grammar
    runs: no catalog lookup, nothing executed.
    """
    encoded = sql.encode("utf-8")
    if b"\0" in encoded:
        raise ParseError("the text contains a NUL character", sql.index("\0"))
    lib = _lib()
    result = lib.pg_query_parse(encoded)
    try:
        if result.error:
            error = result.error.contents
            message = (error.message or b"syntax error").decode("utf-8", "replace")
            position = error.cursorpos  # 1-based, in characters (the scanner counts them)
            offset = position - 1 if position > 0 else None
            raise ParseError(message, offset)
        tree = json.loads(ctypes.string_at(result.parse_tree).decode("utf-8"))
    finally:
        lib.pg_query_free_parse_result(result)
    return tree.get("stmts", [])


def char_offset(encoded: bytes, byte_offset: int) -> int:
    """The character offset of a byte offset into UTF-8 text."""
    byte_offset = max(0, min(byte_offset, len(encoded)))
    return len(encoded[:byte_offset].decode("utf-8", "ignore"))


def strip_locations(node: Any) -> Any:
    """A copy of a JSON parse tree without ``location`` keys."""
    if isinstance(node, dict):
        return {k: strip_locations(v) for k, v in node.items() if k != "location"}
    if isinstance(node, list):
        return [strip_locations(v) for v in node]
    return node
