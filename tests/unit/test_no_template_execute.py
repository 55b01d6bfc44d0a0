"""No SQL built from pieces reaches plpy.

jobledger 0.4.0 ran ``plpy.execute(f"CREATE TEMPORARY VIEW ... AS {sql}")``
with a job's template text inside a superuser-owned SECURITY DEFINER
function; PostgreSQL ran every statement in it.  This guard reads the
package's source (``ast``, no import) and refuses any ``plpy.execute``,
``plpy.prepare`` or ``plpy.cursor`` call (and ``plans.plan``, which hands its
query to ``plpy.prepare``) whose query argument is built by concatenation,
``%`` formatting, an f-string or ``.format(...)``, directly or through a local
variable assigned so in the same function.

A line may opt out with a ``# template-free: <why>`` comment (on any line of
the call) saying why the built text can hold no template text, e.g. a
constant search_path or a generated view name.
"""

from __future__ import annotations

import ast
import pathlib
import textwrap

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "python" / "jobledger"
OPT_OUT = "# template-free:"
PLPY_METHODS = frozenset({"execute", "prepare", "cursor"})


def _query_argument(call: ast.Call) -> ast.expr | None:
    """The argument of ``call`` that is SQL text handed to the server, if ``call`` is such a call."""
    func = call.func
    if not isinstance(func, ast.Attribute):
        return None
    owner = func.value
    if func.attr in PLPY_METHODS and isinstance(owner, ast.Name) and owner.id == "plpy":
        args, keyword = call.args, "query"
        index = 0
    elif func.attr == "plan" and isinstance(owner, ast.Name) and owner.id == "plans":
        args, keyword = call.args, "query"
        index = 1
    else:
        return None
    if len(args) > index:
        return args[index]
    for kw in call.keywords:
        if kw.arg == keyword:
            return kw.value
    return None


def _built(node: ast.AST) -> ast.AST | None:
    """The first piece of ``node`` that builds text: ``a + b``, ``a % b``, an f-string, ``.format()``."""
    for inner in ast.walk(node):
        if isinstance(inner, ast.BinOp) and isinstance(inner.op, (ast.Add, ast.Mod)):
            return inner
        if isinstance(inner, ast.JoinedStr):
            return inner
        if (isinstance(inner, ast.Call) and isinstance(inner.func, ast.Attribute)
                and inner.func.attr == "format"):
            return inner
    return None


def _assignments(function: ast.AST) -> dict[str, list[ast.expr]]:
    """Every value assigned to each plain local name in ``function``."""
    found: dict[str, list[ast.expr]] = {}
    for node in ast.walk(function):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found.setdefault(target.id, []).append(node.value)
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and isinstance(node.target, ast.Name):
            if node.value is not None:
                # ``q += x`` builds text just as ``q = q + x`` does.
                value = node.value if isinstance(node, ast.AnnAssign) else ast.BinOp(
                    node.target, node.op, node.value)
                found.setdefault(node.target.id, []).append(value)
    return found


def violations(source: str, filename: str = "<source>") -> list[str]:
    """Each call that hands built text to the server, as ``file:line: why``."""
    tree = ast.parse(source, filename)
    lines = source.splitlines()
    scopes = [tree, *(n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))]
    found = []
    seen: set[int] = set()
    # Innermost scope first (ast.walk is breadth-first): a call is judged by
    # the assignments of the function it is in.
    for scope in reversed(scopes):
        local = _assignments(scope)
        for node in ast.walk(scope):
            if not isinstance(node, ast.Call) or id(node) in seen:
                continue
            seen.add(id(node))
            query = _query_argument(node)
            if query is None or any(OPT_OUT in line for line in lines[node.lineno - 1:node.end_lineno]):
                continue
            if isinstance(query, ast.Call) and _query_argument(query) is not None:
                continue  # plpy.execute(plpy.prepare(...)): the inner call is judged itself
            culprit = _built(query)
            if culprit is None and isinstance(query, ast.Name):
                culprit = next((b for value in local.get(query.id, []) if (b := _built(value))), None)
            if culprit is not None:
                found.append(f"{filename}:{node.lineno}: {ast.unparse(node.func)}() gets text built by "
                             f"{ast.unparse(culprit)[:80]!r}")
    return sorted(set(found))


def test_no_plpy_call_gets_built_text() -> None:
    files = sorted(PACKAGE.rglob("*.py"))
    assert files, f"no sources under {PACKAGE}"
    found = [v for path in files
             for v in violations(path.read_text(encoding="utf-8"), str(path.relative_to(PACKAGE.parent)))]
    assert found == [], "SQL built from pieces reaches plpy (mark a proven-safe one '# template-free: why'):\n" \
        + "\n".join(found)


@pytest.mark.parametrize("source", [
    'plpy.execute(f"CREATE TEMPORARY VIEW pg_temp.{view} AS {sql}")',
    'plpy.execute("CREATE VIEW v AS " + sql)',
    'plpy.execute("SELECT %s" % sql)',
    'plpy.prepare("SELECT {}".format(sql), ["text"])',
    'plpy.cursor(query=f"SELECT {sql}")',
    'plans.plan(plpy, "SELECT " + sql, ["text"])',
    'plpy.prepare(_Q.replace("@V@", f"pg_temp.{view}"), ["name"])',
    'def f(plpy, sql):\n    q = "SELECT * FROM (" + sql + ") s"\n    return plpy.execute(q)',
    'def f(plpy, sql):\n    q = "SELECT 1"\n    q += sql\n    return plpy.execute(q)',
])
def test_the_guard_sees_built_text(source: str) -> None:
    assert violations(textwrap.dedent(source)) != []


@pytest.mark.parametrize("source", [
    'plpy.execute("SELECT 1")',
    'plpy.execute(plpy.prepare("SELECT $1::text", ["text"]), [sql])',
    'plans.plan(plpy, _QUERY, ["text"])',
    'plpy.execute(QUERY)',
    'plpy.execute(f"SET LOCAL search_path = {PATH}")  # template-free: a module constant',
    'plpy.execute(\n    f"DROP VIEW pg_temp.{view}"  # template-free: the name is generated here\n)',
    'def f(plpy, x):\n    q = "SELECT 1"\n    return plpy.execute(q)',
])
def test_the_guard_lets_plain_text_through(source: str) -> None:
    assert violations(textwrap.dedent(source)) == []


def test_the_guard_catches_the_0_4_0_preflight() -> None:
    """The shape of 0.4.0's preflight.query_columns, which ran a template's every statement."""
    source = textwrap.dedent('''
        def query_columns(plpy, job, owner, sql):
            view = f"jobledger_probe_{next(_view_names)}"
            plpy.execute(f"SET LOCAL search_path = {TEMPLATE_SEARCH_PATH}")
            plpy.execute(f"CREATE TEMPORARY VIEW pg_temp.{view} AS {sql}")
    ''')
    found = violations(source, "preflight.py")
    assert any(":5:" in v and "CREATE TEMPORARY VIEW" in v for v in found), found
