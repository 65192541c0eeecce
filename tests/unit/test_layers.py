"""The layer contract of DESIGN.md: imports point down the layer list only; siblings do not import each other."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).parents[2] / "src" / "dorag"

# Rank of each top-level package; a module may import packages of strictly lower rank (or its own).
LAYERS = {
    "core": 0,
    "data": 1, "tracking": 1,
    "models": 2, "retrieval": 2, "evaluation": 2,
    "training": 3,
    "experiments": 4,
    "serving": 5,
    "cli": 6,  # `dorag serve` and `dorag feedback export` start what serving provides
}
HEAVY = ("torch", "transformers", "faiss", "peft", "sentence_transformers")


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_every_package_has_a_layer():
    pkgs = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert pkgs <= set(LAYERS), f"unranked packages: {pkgs - set(LAYERS)}"


def test_imports_point_down_only():
    bad = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).parts
        if len(rel) < 2:
            continue
        own = rel[0]
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] != "dorag" or len(parts) < 2 or parts[1] not in LAYERS or parts[1] == own:
                continue
            if LAYERS[parts[1]] >= LAYERS[own]:
                bad.append(f"{path.relative_to(SRC)} imports {name}")
    assert not bad, "\n".join(bad)


def test_core_and_evaluation_import_nothing_heavy_at_module_level():
    bad = []
    for pkg in ("core", "evaluation"):
        for path in (SRC / pkg).rglob("*.py"):
            tree = ast.parse(path.read_text())
            for node in tree.body:  # module level only: lazy imports inside functions are the rule
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                    bad += [f"{path.name}: {n}" for n in names if n.split(".")[0] in HEAVY]
    assert not bad, bad
