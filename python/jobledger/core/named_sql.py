"""Named SQL blocks: the one reader of the package's ``.sql`` files.

Every statement the Python code sends lives in a ``.sql`` file next to the
module that sends it (or is a function of the extension, ``sql/objects``),
one block per statement::

    -- The file's own notes (comments only, before the first block).

    -- name: run_exists
    -- A block's comments belong to it and are sent with it.
    SELECT r.id FROM jobledger.run AS r WHERE r.id = %(id)s

A block runs from its ``-- name: <name>`` line to the next one; names are
lower case (``a-z``, ``0-9``, ``_``, first a letter or ``_``) and unique in
their file.  Keeping SQL in files keeps it reviewable as SQL and out of
string formatting: values are always bound parameters.  A statement that
must vary is a template: psycopg.sql placeholders (``{name}``) on the client
side, and on the server a fixed block with ``{name}`` placeholders that only
``fill`` replaces, with parts each caller quotes (``plpy.quote_ident``).

Pure stdlib, and cheap on the server's submit path: a file is read once, on
the first ``get`` of the session (``importlib.resources`` alone takes longer
to import than submit_job's first call may take).
"""

from __future__ import annotations

import os

HEADER = "-- name:"
_NAME_START = "abcdefghijklmnopqrstuvwxyz_"
_NAME_REST = _NAME_START + "0123456789"


def parse(text: str, source: str = "<sql>") -> dict[str, str]:
    """{name: statement} of every ``-- name: <name>`` block of ``text``.

    ValueError (naming ``source`` and the line) for a malformed or repeated
    name, a block without a statement, or a statement before the first name.
    """
    blocks: dict[str, str] = {}
    name = None
    lines: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.startswith(HEADER):
            if name is None and line.strip() and not line.lstrip().startswith("--"):
                raise ValueError(f"{source}:{number}: a statement before the first '{HEADER} <name>' line")
            lines.append(line)
            continue
        _close(blocks, name, lines, source)
        name = line[len(HEADER):].strip()
        if not (name and name[0] in _NAME_START and all(c in _NAME_REST for c in name)):
            raise ValueError(f"{source}:{number}: {name!r} is not a block name (a-z, 0-9, _)")
        if name in blocks:
            raise ValueError(f"{source}:{number}: block {name!r} is defined twice")
        lines = []
    _close(blocks, name, lines, source)
    return blocks


def _close(blocks: dict[str, str], name: str | None, lines: list[str], source: str) -> None:
    if name is None:
        return
    body = "\n".join(lines).strip()
    if not any(line.strip() and not line.lstrip().startswith("--") for line in lines):
        raise ValueError(f"{source}: block {name!r} has no statement")
    blocks[name] = body


class File:
    """The named blocks of one ``.sql`` file, read on first use and kept."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._blocks: dict[str, str] | None = None

    def blocks(self) -> dict[str, str]:
        """Every block, {name: statement} (the same dict each time: do not change it)."""
        if self._blocks is None:
            with open(self.path, encoding="utf-8") as sql_file:
                self._blocks = parse(sql_file.read(), self.path)
        return self._blocks

    def get(self, name: str) -> str:
        """The statement named ``name``; KeyError naming the file for a typo."""
        try:
            return self.blocks()[name]
        except KeyError:
            raise KeyError(f"{os.path.basename(self.path)} has no block named {name!r}") from None


def beside(module_file: str, filename: str) -> File:
    """The ``.sql`` file ``filename`` in the directory of the module whose
    ``__file__`` is ``module_file`` (installed with the package)."""
    return File(os.path.join(os.path.dirname(os.path.abspath(module_file)), filename))


def fill(template: str, **parts: str) -> str:
    """``template`` with each ``{name}`` placeholder replaced by ``parts[name]``.

    For the few server-side statements that cannot take a parameter where
    they vary (an identifier, or the text ``single_statement`` checks).  The
    caller quotes each part for where it stands; the parts are never scanned
    again, so a part holding ``{name}`` is left as it is.  ValueError when a
    part has no placeholder or a placeholder has no part.
    """
    out: list[str] = []
    used: set[str] = set()
    rest = template
    while True:
        start = rest.find("{")
        end = rest.find("}", start + 1) if start >= 0 else -1
        if end < 0:
            out.append(rest)
            break
        key = rest[start + 1:end]
        if key not in parts:
            raise ValueError(f"template placeholder {{{key}}} has no part")
        out.append(rest[:start])
        out.append(parts[key])
        used.add(key)
        rest = rest[end + 1:]
    unused = set(parts) - used
    if unused:
        raise ValueError(f"template has no placeholder for {', '.join(sorted(unused))}")
    return "".join(out)
