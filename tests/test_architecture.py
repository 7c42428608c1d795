"""The house (`tools/house.py`): every import points to a lower floor, every room has a floor,
no experiment imports another, and no file outgrows the size limit without a stated reason."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]


def _house() -> ModuleType:
    spec = importlib.util.spec_from_file_location("house", REPO / "tools" / "house.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["house"] = module
    spec.loader.exec_module(module)
    return module


house = _house()


def test_every_room_has_one_floor() -> None:
    floors = [r for _, rooms in house.FLOORS for r in rooms]
    assert len(floors) == len(set(floors)), "a room on two floors"
    assert house.rooms_on_disk() <= set(floors), house.rooms_on_disk() - set(floors)


def test_imports_point_down() -> None:
    edges = house.imports()
    assert ("experiments", "attacks") in edges  # the graph sees imports at all
    assert house.upward(edges) == []


def test_the_check_catches_an_upward_import() -> None:
    fake = {("attacks", "experiments"): ["advlab.attacks.base"], ("cli", "errors"): ["advlab.cli"]}
    assert house.upward(fake) == [
        "attacks (floor 5) -> experiments (floor 8) in advlab.attacks.base"
    ]


def test_no_experiment_imports_another() -> None:
    import ast

    folder = REPO / "src" / "advlab" / "experiments"
    shared = {"advlab.experiments.base", "advlab.experiments"}
    found = []
    for path in folder.glob("*.py"):
        if path.name == "__init__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                name = node.module
                if name.startswith("advlab.experiments") and name not in shared:
                    found.append(f"{path.name} imports {name}")
    assert found == []


def test_file_sizes() -> None:
    long = {f: n for f, n in house.line_counts().items() if n > house.MAX_LINES}
    unexplained = sorted(set(long) - set(house.LONG_FILES))
    assert unexplained == [], {f: long[f] for f in unexplained}
