"""The import graph: protocol at the bottom, advisors on protocol only, envs -> advisors through one module, and no
import cycle anywhere, between modules or between packages."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


PACKAGES = ("protocol", "advisors", "envs", "report", "agents", "hpo", "doctor", "experiments")
"""The root folders installed as ``traingym.<name>``."""


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """Ids of the nodes inside ``if TYPE_CHECKING:`` blocks (annotations only: never imported at run time)."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            skipped.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    return skipped


def _imported_modules(path: Path) -> set[str]:
    """Every module named by an import statement anywhere in the file (function-level imports included; those
    under ``if TYPE_CHECKING:`` are not imports at run time and are left out)."""
    names: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    skipped = _type_checking_nodes(tree)
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _importers(folder: str, prefix: str) -> set[str]:
    """Files under ``folder`` (relative to it) that import ``prefix`` or a module below it."""
    return {str(path.relative_to(ROOT / folder)) for path in sorted((ROOT / folder).rglob("*.py"))
            if any(name == prefix or name.startswith(prefix + ".") for name in _imported_modules(path))}


def test_only_the_diagnosis_module_of_envs_imports_advisors() -> None:
    assert _importers("envs", "traingym.advisors") == {"diagnosis.py"}


@pytest.mark.parametrize(("folder", "forbidden"), [
    ("advisors", "traingym.envs"), ("advisors", "traingym.agents"),
    ("protocol", "traingym.envs"), ("protocol", "traingym.advisors"), ("protocol", "traingym.agents"),
])
def test_lower_packages_never_import_upper_ones(folder: str, forbidden: str) -> None:
    assert _importers(folder, forbidden) == set()


def test_the_scan_sees_function_level_imports(tmp_path: Path) -> None:
    """Guard for the scan itself: a lazy import inside a function is found."""
    module = tmp_path / "lazy.py"
    module.write_text("def f():\n    from traingym.advisors.channel import DiagnosisChannel\n"
                      "    return DiagnosisChannel\n")
    assert "traingym.advisors.channel" in _imported_modules(module)


@pytest.mark.parametrize("package", ["traingym.protocol", "traingym.advisors"])
def test_importing_a_lower_package_loads_no_envs_module(package: str) -> None:
    code = (f"import json, sys; import {package}; "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('traingym.'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert package in loaded
    assert [m for m in loaded if m.startswith(("traingym.envs", "traingym.agents"))] == []
    if package == "traingym.protocol":
        assert all(m.startswith("traingym.protocol") for m in loaded)


def _module_graph(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    """``traingym.<package>.<module>`` -> the traingym modules it imports (a name imported from a module counts as
    that module; a package's ``__init__`` is the package's name)."""
    modules: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules["traingym." + ".".join(parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for imported in _imported_modules(path):
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_between_modules() -> None:
    assert _cycles(_module_graph()) == []


def test_no_import_cycle_between_packages() -> None:
    packages: dict[str, set[str]] = {}
    for source, targets in _module_graph().items():
        packages.setdefault(source.split(".")[1], set()).update(t.split(".")[1] for t in targets)
    for package, targets in packages.items():
        targets.discard(package)
    assert _cycles(packages) == []


def test_the_library_never_imports_the_experiments() -> None:
    for package in PACKAGES:
        if package != "experiments":
            assert _importers(package, "traingym.experiments") == set(), package


def test_the_cycle_scan_finds_a_lazy_cycle_and_ignores_type_checking(tmp_path: Path) -> None:
    """Guard for the scan itself: a cycle closed by a function-level import is found; one closed only inside
    ``if TYPE_CHECKING:`` is not a cycle at run time."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "a.py").write_text("from traingym.pkg.b import g\n")
    (package / "b.py").write_text("def g():\n    from traingym.pkg.a import f\n")
    (package / "c.py").write_text("from typing import TYPE_CHECKING\n"
                                  "if TYPE_CHECKING:\n    from traingym.pkg.d import x\n")
    (package / "d.py").write_text("from traingym.pkg.c import y\n")
    assert _cycles(_module_graph(tmp_path, ("pkg",))) == [["traingym.pkg.a", "traingym.pkg.b"]]
