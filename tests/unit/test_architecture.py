"""The layout docs/architecture.md promises, checked: a newcomer can rely on it."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLUMBING = {"access", "security", "errors", "rendering", "formatting"}


def _imports(path: Path) -> set[str]:
    """Every module name ``path`` imports, at any depth."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def test_no_blueprint_imports_another_areas_blueprint():
    areas = {p.stem for p in (ROOT / "blueprints").glob("*.py")} - PLUMBING - {"__init__"}
    for path in (ROOT / "blueprints").glob("*.py"):
        if path.stem == "__init__":
            continue  # it registers them all
        imported = {name.split(".")[1] for name in _imports(path) if name.startswith("blueprints.")}
        assert not (imported & areas) - {path.stem}, f"{path.name} imports {sorted(imported & areas)}"


def test_no_domain_module_carries_another_modules_name_as_a_prefix():
    for package in [p for p in (ROOT / "berth").iterdir() if p.is_dir() and (p / "__init__.py").exists()]:
        stems = {p.stem for p in package.glob("*.py")} - {"__init__"}
        for stem in stems:
            prefix = stem.split("_", 1)[0]
            assert prefix == stem or prefix not in stems | {package.name}, f"{package.name}/{stem}.py"


def test_package_inits_only_document():
    for init in (ROOT / "berth").glob("*/__init__.py"):
        tree = ast.parse(init.read_text())
        assert all(isinstance(node, ast.Expr) for node in tree.body), f"{init} does more than document"
