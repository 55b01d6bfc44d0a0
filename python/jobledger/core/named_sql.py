"""Named SQL blocks: the one reader of the package's ``.sql`` files.

Every statement the Python code sends lives in a ``.sql`` file next to the
module that sends it (or is a function of the extension, ``sql/objects``),
one block per statement::

    -- The file's own notes (comments only, before the first block).

    -- name: run_exists
    -- What the block is for (comment lines before and after the statement
    -- document it and are not sent; those inside it are).
    SELECT r.id FROM jobledger.run AS r WHERE r.id = %(id)s

A block runs from its ``-- name: <name>`` line to the next one; names are
lower case (``a-z``, ``0-9``, ``_``, first a letter or ``_``) and unique in
their file.  A block may be a fragment that a template takes in (psycopg.sql
composition), which is why its statement is kept without the comment lines
around it: a comment would swallow what follows it on its line.

Keeping SQL in files keeps it reviewable as SQL and out of string
formatting: values are always bound parameters.  A statement that
must vary is a template: psycopg.sql placeholders (``{name}``) on the client
side, and on the server a fixed block with ``{name}`` placeholders that only
``fill`` replaces, with parts each caller quotes (``plpy.quote_ident``).

Pure stdlib, and cheap on the server's submit path: a file is read once, on
the first ``get`` of the session, with ``open`` (importing
``importlib.resources`` alone takes tens of milliseconds).
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
    """Keep the block: its statement, without the comment lines around it."""
    if name is None:
        return
    code = [number for number, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("--")]
    if not code:
        raise ValueError(f"{source}: block {name!r} has no statement")
    blocks[name] = "\n".join(lines[code[0]:code[-1] + 1]).strip()


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
    part has no placeholder, a placeholder has no part, or a placeholder
    stands after ``--`` on its line (in a comment, where a part holding a
    line break would end the comment): a template's comments name its
    placeholders without braces.
    """
    out: list[str] = []
    used: set[str] = set()
    done = 0
    while True:
        start = template.find("{", done)
        end = template.find("}", start + 1) if start >= 0 else -1
        if end < 0:
            break
        key = template[start + 1:end]
        if key not in parts:
            raise ValueError(f"template placeholder {{{key}}} has no part")
        line = template[template.rfind("\n", 0, start) + 1:start]
        if "--" in line:
            raise ValueError(f"template placeholder {{{key}}} stands in a comment")
        out.append(template[done:start])
        out.append(parts[key])
        used.add(key)
        done = end + 1
    out.append(template[done:])
    unused = set(parts) - used
    if unused:
        raise ValueError(f"template has no placeholder for {', '.join(sorted(unused))}")
    return "".join(out)
