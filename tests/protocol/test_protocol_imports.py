"""The package graph: protocol at the bottom, advisors on protocol only, envs -> advisors through one module."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imported_modules(path: Path) -> set[str]:
    """Every module named by an import statement anywhere in the file (function-level imports included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
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
