"""The layering, read from the imports: db ← workers ← api and the CLI, one way only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("db", "workers", "api")
# What each layer may not import, whatever the depth or place of the import statement.
FORBIDDEN = {
    "db": ("workers", "api"),
    "workers": ("api",),
    "api": (),
}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every absolute module an import statement in ``path`` names, with its line."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
    return sorted(found)


def layer_files(root: Path, layer: str) -> list[Path]:
    return sorted((root / layer).rglob("*.py"))


def violations(root: Path, layer: str) -> list[str]:
    bad: list[str] = []
    for path in layer_files(root, layer):
        for line, module in imported_modules(path):
            parts = module.split(".")
            where = f"{path.relative_to(root)}:{line} imports {module}"
            if parts[0] == "modscan" and parts[1:2] != ["settings"]:
                bad.append(f"{where} (only modscan.settings may be imported from modscan/)")
            if parts[0] in FORBIDDEN[layer]:
                bad.append(f"{where} ({layer}/ must not import {parts[0]}/)")
    return bad


@pytest.mark.parametrize("layer", LAYERS)
def test_layer_imports_run_one_way(layer: str) -> None:
    assert layer_files(ROOT, layer), f"no Python files found under {layer}/"
    assert violations(ROOT, layer) == []


def test_the_rule_catches_wrong_way_imports_at_any_depth(tmp_path: Path) -> None:
    (tmp_path / "workers" / "deep").mkdir(parents=True)
    (tmp_path / "workers" / "deep" / "sample.py").write_text(
        "from modscan.settings import Settings\n"
        "def f():\n    from modscan.evaluation.run import run_evaluation\n"
        "import api.app\n"
    )
    assert violations(tmp_path, "workers") == [
        "workers/deep/sample.py:3 imports modscan.evaluation.run.run_evaluation"
        " (only modscan.settings may be imported from modscan/)",
        "workers/deep/sample.py:4 imports api.app (workers/ must not import api/)",
    ]
