"""The package's shape: folders along the data flow, no import from a lower layer up to a higher one, no import
circle between sub-packages, ``click`` only in the command-line shell, at most 8 top-level modules."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "cdc_bench"

#: each sub-package (or top-level module) and its floor in the flow: a module may import its own floor and below
FLOORS = {
    "errors": 0, "registry": 0, "download": 0, "provenance": 0, "weights": 1,
    "datasets": 2, "metrics": 2, "codecs": 2, "codec": 2,
    "cdc": 3,
    "store": 4,
    "executors": 5, "sweep": 5,
    "analysis": 6,
    "plots": 7, "speed": 7,
    "commands": 8, "cli": 8, "__init__": 9,
}


def _room(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imports(path: Path) -> list[tuple[str, int]]:
    """The cdc_bench rooms a module imports (at any depth: lazy imports count too), with their line numbers."""
    tree = ast.parse(path.read_text())
    package = ["cdc_bench", *path.relative_to(PACKAGE).parent.parts]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                parts = base + (node.module.split(".") if node.module else [])
                if len(parts) == 1:  # from . import X at the top: X names the room
                    found += [(a.name, node.lineno) for a in node.names]
                    continue
            elif node.module and node.module.split(".")[0] == "cdc_bench":
                parts = node.module.split(".")
            else:
                continue
            if len(parts) > 1:
                found.append((parts[1], node.lineno))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "cdc_bench" and len(parts) > 1:
                    found.append((parts[1], node.lineno))
    return found


def test_at_most_eight_top_level_modules():
    modules = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(modules) <= 8, modules


def test_every_room_has_a_floor():
    rooms = {_room(p) for p in PACKAGE.rglob("*.py")}
    assert rooms <= set(FLOORS), sorted(rooms - set(FLOORS))


def test_no_import_runs_back_up_the_flow():
    upward = []
    for path in PACKAGE.rglob("*.py"):
        room = _room(path)
        for target, line in _imports(path):
            if target in FLOORS and target != room and FLOORS[target] > FLOORS[room]:
                upward.append(f"{path.relative_to(PACKAGE)}:{line} ({room}) imports {target}")
    assert not upward, "\n".join(upward)


def test_click_only_in_the_command_line_shell():
    offenders = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                 if _room(p) not in ("commands", "cli")
                 and any(isinstance(n, (ast.Import, ast.ImportFrom))
                         and "click" in ([a.name.split(".")[0] for a in n.names] if isinstance(n, ast.Import)
                                         else [(n.module or "").split(".")[0]])
                         for n in ast.walk(ast.parse(p.read_text())))]
    assert not offenders, offenders


def test_the_key_columns_are_spelled_once():
    spelled = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
               if '"dataset", "image", "codec", "options", "quality"' in p.read_text()]
    assert spelled == ["store/key.py"], spelled
