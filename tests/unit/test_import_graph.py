"""What the server side imports: jobledger.server, as PL/Python loads it, needs
none of the client extra's packages.

PL/Python has the package and its pinned server dependencies (sqlglot,
pglast) only, installed by make install in $(pkglibdir)/jobledger/<version>.
The graph is read from the sources (``ast``, no import), following every
``jobledger`` import, function-level ones included, so an import only some
call reaches is seen too.  The installed copy is then imported by the
interpreter plpython3u uses, isolated from any other site-packages.
"""

from __future__ import annotations

import ast
import pathlib
import subprocess

import assemble
import dbtools

PYTHON_DIR = pathlib.Path(__file__).resolve().parents[2] / "python"
PACKAGE = PYTHON_DIR / "jobledger"
CLIENT_ONLY = frozenset({"psycopg", "pyarrow", "click", "rich", "yaml", "prometheus_client", "lance"})
SERVER_SIDE = ("jobledger", "jobledger._version", "jobledger.core", "jobledger.server")
CLIENT_SIDE = ("jobledger.client", "jobledger.exact_json", "jobledger.runner", "jobledger.cli", "jobledger.lake")


def _source(module: str) -> pathlib.Path | None:
    """The file of ``module`` (a package's __init__.py), None if it is no module of the sources."""
    base = PYTHON_DIR.joinpath(*module.split("."))
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def _imports(module: str) -> set[str]:
    """Every module ``module`` imports, anywhere in its source; for ``from a import b``
    both ``a`` and ``a.b`` when ``a.b`` is a module of the sources."""
    path = _source(module)
    assert path is not None, module
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if _source(f"{base}.{alias.name}"))
    # Importing a.b.c runs a/__init__.py and a/b/__init__.py first.
    return {prefix for name in found for prefix in _prefixes(name)}


def _prefixes(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _closure(roots: list[str]) -> dict[str, set[str]]:
    """Every jobledger module reachable from ``roots``, with what it imports."""
    graph: dict[str, set[str]] = {}
    todo = list(roots)
    while todo:
        module = todo.pop()
        if module in graph:
            continue
        graph[module] = _imports(module)
        todo.extend(m for m in graph[module] if m.split(".")[0] == "jobledger" and m not in graph)
    return graph


def _modules(*packages: str) -> list[str]:
    """The modules of the sources in ``packages`` (a package, or a module of its own)."""
    names = (".".join(p.relative_to(PYTHON_DIR).with_suffix("").parts).removesuffix(".__init__")
             for p in PACKAGE.rglob("*.py"))
    return sorted(n for n in names if any(n == p or n.startswith(p + ".") for p in packages))


def _generated(module: str) -> bool:
    return module == "jobledger._version"  # written by the build (hatch's version hook)


def test_the_server_side_imports_no_client_package() -> None:
    graph = _closure(_modules("jobledger.server"))
    bad = sorted(f"{module} imports {name}" for module, names in graph.items() for name in names
                 if name.split(".")[0] in CLIENT_ONLY)
    assert bad == [], bad
    outside = sorted(f"{module} imports {name}" for module, names in graph.items() for name in names
                     if name.split(".")[0] == "jobledger"
                     and not any(name == s or name.startswith(s + ".") for s in SERVER_SIDE))
    assert outside == [], outside
    missing = sorted(m for m in graph if m.split(".")[0] == "jobledger" and not _generated(m) and not _source(m))
    assert missing == [], f"imported but not in the sources: {missing}"
    assert {"jobledger.server.submit", "jobledger.server.define", "jobledger.core.errors"} <= graph.keys()


def test_the_client_side_imports_nothing_of_the_server() -> None:
    roots = _modules(*CLIENT_SIDE)
    assert len(roots) > 20, roots
    graph = _closure(roots)
    bad = sorted(f"{module} imports {name}" for module, names in graph.items() for name in names
                 if name == "jobledger.server" or name.startswith("jobledger.server."))
    assert bad == [], bad


def test_the_walk_sees_function_level_and_from_imports() -> None:
    imports = _imports("jobledger.server")
    assert {"jobledger.server.define", "jobledger.server.submit", "jobledger.core.errors"} <= imports


def test_the_installed_server_package_imports_without_the_client_extra() -> None:
    """The install make install made, alone beside the standard library on sys.path of
    plpython3u's interpreter: jobledger.server and every module of it import."""
    installed = (pathlib.Path(dbtools.pg_config("--pkglibdir")) / "jobledger" / assemble.current_version()).resolve()
    assert (installed / "jobledger" / "server" / "__init__.py").is_file(), f"not installed: {installed}"
    interpreter = subprocess.run([str(PYTHON_DIR.parent / "plpython" / "interpreter.sh"),
                                  dbtools.pg_config_command()],
                                 check=True, capture_output=True, text=True).stdout.strip()
    code = (f"import importlib, sys; sys.path.insert(0, {str(installed)!r})\n"
            f"for name in {_modules('jobledger.server')!r}: importlib.import_module(name)\n"
            f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {sorted(CLIENT_ONLY)!r})\n"
            f"assert not bad, bad\n"
            f"assert all((getattr(m, '__file__', None) or '').startswith({str(installed)!r}) for n, m in list(sys.modules.items()) "
            f"if n.split('.')[0] in ('jobledger', 'sqlglot', 'pglast')), 'not the installed copy'")
    # -I: no PYTHONPATH, no user site; -S: no site-packages either.
    done = subprocess.run([interpreter, "-I", "-S", "-c", code], capture_output=True, text=True, cwd="/")
    assert done.returncode == 0, done.stderr


# The blocks of queries.sql and operations.sql that call the run state
# machine's functions (docs/state-machine.md): runner.ledger is their only user.
LEDGER_BLOCKS = ("claim_runs", "claim_runs_affinity", "claim_affinity_available", "complete_run", "complete_run_snapshot", "complete_attached_run",
                 "complete_attached_run_snapshot", "fail_run", "release_run", "heartbeat", "reconcile_orphaned",
                 "emit_output", "emit_attached_output", "lock_run", "lock_attached_run", "report_progress",
                 "attach_run", "worker_start", "worker_beat", "run_status")


def test_only_the_ledger_facade_calls_the_state_machine() -> None:
    callers = {}
    for path in sorted((PACKAGE / "runner").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        for block in LEDGER_BLOCKS:
            if f'"{block}"' in text:
                callers.setdefault(block, set()).add(path.stem)
    assert set(callers) == set(LEDGER_BLOCKS), set(LEDGER_BLOCKS) - set(callers)
    assert {block: stems for block, stems in callers.items() if stems != {"ledger"}} == {}


def test_the_lake_runner_does_not_import_the_table_runner() -> None:
    # What both need of an attempt's outcome is runner.outcome's.
    assert "jobledger.runner.execute" not in _imports("jobledger.runner.lake")
    assert "jobledger.runner.outcome" in _imports("jobledger.runner.lake") & _imports("jobledger.runner.execute")
