"""No module of the package holds SQL in a Python string: every statement it
sends is a named block of a .sql file (jobledger.core.named_sql) or a
function of the extension (sql/objects).

A heuristic, read from the sources with ``ast``: a string (or bytes)
constant that, stripped, starts with an upper-case statement keyword and
goes on, or a piece of an f-string or of ``+`` that starts with one.
Docstrings are prose and are not looked at; messages such as "SELECT ...
INTO is not allowed" (a keyword, then an ellipsis) or a lone keyword
("INSERT", a privilege) are not statements.
"""

from __future__ import annotations

import ast
import pathlib
import re

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "python" / "jobledger"
KEYWORDS = ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "CREATE", "ALTER", "DROP", "SET", "RESET", "SHOW",
            "LISTEN", "UNLISTEN", "NOTIFY", "EXPLAIN", "DISCARD", "DEALLOCATE", "CLOSE", "DECLARE", "FETCH",
            "COPY", "TRUNCATE", "GRANT", "REVOKE", "LOCK", "CALL", "DO")
STATEMENT = re.compile(r"(?:%s)\s+[^\s.]" % "|".join(KEYWORDS))
PIECE = re.compile(r"(?:%s)\s" % "|".join(KEYWORDS))


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _text(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)):
        return node.value if isinstance(node.value, str) else node.value.decode("utf-8", "replace")
    return None


def sql_strings(source: str, filename: str = "<source>") -> list[str]:
    """``line: text`` of each string of ``source`` that looks like SQL."""
    tree = ast.parse(source, filename)
    docstrings = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        text = _text(node)
        if text is not None and id(node) not in docstrings and STATEMENT.match(text.strip()):
            found.append(f"{node.lineno}: {text.strip()[:60]!r}")
        pieces: list[ast.AST] = []
        if isinstance(node, ast.JoinedStr):
            pieces = list(node.values)
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            pieces = [node.left, node.right]
        for piece in pieces:
            text = _text(piece)
            if text is not None and PIECE.match(text.lstrip()):
                found.append(f"{node.lineno}: {text.strip()[:60]!r} (assembled)")
    return sorted(set(found))


def test_no_module_holds_sql_in_a_string() -> None:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(PACKAGE).as_posix()
        strings = sql_strings(path.read_text(encoding="utf-8"), str(path))
        if strings:
            found[name] = strings
    assert found == {}, "SQL belongs in a .sql file as a named block (jobledger.core.named_sql):\n" + "\n".join(
        f"{name}:{line}" for name, lines in found.items() for line in lines)


def test_the_heuristic_sees_sql_and_passes_prose() -> None:
    source = '''
"""SELECT a docstring is prose."""
A = "SELECT 1"
B = b"DISCARD TEMP"
C = f"SET LOCAL search_path = {path}"
D = "EXPLAIN " + relation
E = """
WITH x AS (SELECT 1) SELECT * FROM x"""
F = ("INSERT", "DELETE")
G = "SELECT ... INTO creates a table and is not allowed"
H = f"a job must be a single SELECT statement, not {n}"
'''
    found = sql_strings(source)
    assert sorted({line.split(":")[0] for line in found}) == ["3", "4", "5", "6", "7"], found
