"""The import layers hold: every import inside shipml points down (or within its own room).

The house is drawn in docs/architecture.md: ground-floor helpers at the bottom, the areas
above them, then releases, the stage glue, the pipeline and the CLI on top. A module may
import its own room (package) and any room on a lower floor; an import that runs back up, or
sideways into another room of the same floor, makes circles that no one meant. This reads
every `import` of every module (also those inside functions and under TYPE_CHECKING), so a
new arrow that breaks the plan fails here, with the file, line and the rule it breaks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import shipml

ROOT = Path(shipml.__file__).parent

# floor of each room; a room is a top-level module or package of shipml
FLOORS: dict[str, int] = {
    "errors": 0,
    "_process": 0,
    "_timing": 0,
    "_urls": 0,
    "_ports": 1,
    "_seam": 0,
    "_hashing": 1,
    "_libs": 1,
    "stats": 1,
    "telemetry": 1,
    "config": 2,
    "state": 2,
    "data": 2,
    "registry": 3,
    "validate": 3,
    "train": 3,
    "evaluate": 3,
    "serve": 4,
    "project_tests": 3,
    "report": 3,
    "build": 5,
    "deploy": 5,
    "monitor": 5,
    "govern": 6,
    "features": 3,
    "scaffold": 4,
    "testing": 6,
    "stages": 7,
    "pipeline": 8,
    "cli": 9,
    "__main__": 10,
}
# rooms of one floor that may use each other, and why
SIDEWAYS: set[tuple[str, str]] = set()
# rooms that must never import another, whatever their floors (design.md §9)
NEVER: set[tuple[str, str]] = {
    ("deploy", "monitor"),
    ("deploy", "govern"),
    ("monitor", "deploy"),
    ("scaffold", "pipeline"),
    ("scaffold", "stages"),
}


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(file: Path) -> list[tuple[int, str]]:
    rel = file.relative_to(ROOT.parent).with_suffix("")
    package = ".".join(rel.parts if file.name == "__init__.py" else rel.parts[:-1])
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(file.read_text(), str(file))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.append((node.lineno, name))
    return [(line, name) for line, name in found if name.split(".")[0] == "shipml"]


def test_every_room_has_a_floor() -> None:
    rooms = {p.stem if p.is_file() else p.name for p in ROOT.iterdir()}
    rooms = {r for r in rooms if not r.startswith(("__pycache__", "py")) and r != "__init__"}
    rooms = {r for r in rooms if (ROOT / f"{r}.py").exists() or (ROOT / r / "__init__.py").exists()}
    assert rooms <= FLOORS.keys(), f"give {sorted(rooms - FLOORS.keys())} a floor in FLOORS"


def test_imports_point_down() -> None:
    broken: list[str] = []
    for file in sorted(ROOT.rglob("*.py")):
        here = _room("shipml." + ".".join(file.relative_to(ROOT).with_suffix("").parts))
        for line, name in _imports(file):
            there = _room(name)
            if there in (here, "__init__"):
                continue
            where = f"{file.relative_to(ROOT.parent)}:{line} imports {name}"
            if (here, there) in NEVER:
                broken.append(f"{where}: {here}/ must never import {there}/")
            elif FLOORS.get(there, 99) > FLOORS.get(here, -1):
                broken.append(f"{where}: runs back up ({here} is floor {FLOORS.get(here)})")
            elif FLOORS.get(there) == FLOORS.get(here) and (here, there) not in SIDEWAYS:
                broken.append(f"{where}: sideways on floor {FLOORS[here]}")
    assert not broken, "\n".join(broken)
