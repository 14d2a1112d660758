"""The pure gate modules stay pure: nothing they run imports the session, the predictor or the plugin.

Only the session (prunecheck.session) asks the engine to predict; a gate module that
imported it would again be able to predict for itself. Type-only imports (under
``if TYPE_CHECKING:``) are allowed: they never run. Checked on the source's syntax
tree, so a lazy import inside a function counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PURE_GATES = tuple(sorted(p.stem for p in (ROOT / "prunecheck" / "gates").glob("*.py") if p.stem != "__init__"))
# The engine's stored-prediction types and metrics over them (engine.predictions, engine.compact)
# sit below the gates; its predictor, the session and the plugin sit above them or predict.
FORBIDDEN = ("prunecheck.session", "prunecheck.engine.predictor", "prunecheck.plugin")


def runtime_imports(path: Path) -> list[str]:
    """Modules imported anywhere in ``path`` except in ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            type_only.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    names = []
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


def test_the_import_scanner_sees_lazy_imports_and_skips_type_only_ones(tmp_path):
    source = tmp_path / "m.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from prunecheck.session.workspace import Pair\n"
        "def f():\n    import prunecheck.engine.predictor\n    from prunecheck.plugin import axes\n"
    )
    assert runtime_imports(source) == ["typing", "prunecheck.engine.predictor", "prunecheck.plugin"]


@pytest.mark.parametrize("module", PURE_GATES)
def test_gate_module_imports_no_session_predictor_or_plugin(module):
    imported = runtime_imports(ROOT / "prunecheck" / "gates" / f"{module}.py")
    assert not [name for name in imported if name.startswith(FORBIDDEN)], imported


@pytest.mark.parametrize("suite", sorted(path.name for path in (ROOT / "suites").glob("test_*.py")))
def test_suite_imports_only_gates_and_stays_short(suite):
    """Suites ask the ``pair`` / ``family`` fixtures for what the gates take; they import no session or plugin."""
    path = ROOT / "suites" / suite
    assert not [name for name in runtime_imports(path) if name.startswith(("prunecheck.plugin", "prunecheck.session"))]
    assert len(path.read_text(encoding="utf-8").splitlines()) <= 40


# --------------------------------------------------------------------------- no import cycles
def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports, anywhere in its source: top level, inside
    functions and under ``if TYPE_CHECKING:`` alike (a type-only import still couples the two).

    ``from pkg import name`` points at the module ``pkg.name`` when there is one, else at ``pkg``;
    relative imports are resolved.
    """
    root = package.parent
    files = {module_name(path, root): path for path in package.rglob("*.py")}

    def known(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for module, path in files.items():
        here = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(known(alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = here.split(".")[: len(here.split(".")) - node.level + 1]
                    base = ".".join([*parent, *([base] if base else [])])
                targets.update(known(f"{base}.{alias.name}") if f"{base}.{alias.name}" in files else known(base)
                               for alias in node.names)
        graph[module] = targets - {None, module}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (a path that returns to its start) per module that can reach itself, deduplicated."""
    cycles, seen = [], set()
    for start in sorted(graph):
        paths, visited = [[start]], {start}
        while paths:
            path = paths.pop()
            for nxt in sorted(graph[path[-1]]):
                if nxt == start:
                    if frozenset(path) not in seen:
                        seen.add(frozenset(path))
                        cycles.append([*path, start])
                elif nxt not in visited:
                    visited.add(nxt)
                    paths.append([*path, nxt])
    return cycles


def test_the_cycle_finder_sees_lazy_type_only_relative_and_indirect_imports(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from pkg.sub import b\n")
    (package / "sub" / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..c import C\n")
    (package / "c.py").write_text("import pkg.a\n")
    (package / "d.py").write_text("from pkg import a\n")  # imports a, not imported back: no cycle
    graph = import_graph(package)
    assert graph["pkg.a"] == {"pkg.sub.b"} and graph["pkg.sub.b"] == {"pkg.c"} and graph["pkg.d"] == {"pkg.a"}
    assert import_cycles(graph) == [["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"]]


def test_no_two_prunecheck_modules_import_each_other():
    """Dependencies point one way (issue: pairs -> per-concern session modules -> workspace, never back)."""
    graph = import_graph(ROOT / "prunecheck")
    assert {"prunecheck.session.pairs", "prunecheck.session.workspace"} <= set(graph)  # the scan sees the package
    assert import_cycles(graph) == []


def test_importing_the_plugin_does_not_import_torch():
    """pytest loads the plugin in every run of every project that installs prunecheck: it must stay
    cheap. Checked in a fresh interpreter, where nothing has imported torch yet."""
    import subprocess
    import sys

    code = "import sys, prunecheck.plugin, prunecheck.plugin.axes, prunecheck.plugin.recorder; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
