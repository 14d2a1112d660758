"""The pure gate modules stay pure: nothing they run imports the session, the engine or the plugin.

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
PURE_GATES = ("similarity", "stability", "perclass")
FORBIDDEN = ("prunecheck.session", "prunecheck.engine", "prunecheck.plugin")


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
def test_pure_gate_module_imports_no_session_engine_or_plugin(module):
    imported = runtime_imports(ROOT / "prunecheck" / "gates" / f"{module}.py")
    assert not [name for name in imported if name.startswith(FORBIDDEN)], imported


@pytest.mark.parametrize("suite", ["test_accuracy_margin.py", "test_functional_similarity.py", "test_instability.py"])
def test_suite_imports_nothing_from_the_plugin_and_stays_short(suite):
    path = ROOT / "suites" / suite
    assert not [name for name in runtime_imports(path) if name.startswith("prunecheck.plugin")]
    assert len(path.read_text(encoding="utf-8").splitlines()) <= 45
