"""Each room of engine/ states its public surface in ``__all__``, as httpx's
``test_exported_members`` pins httpx's: every name there exists and is the package's own,
the list is sorted and says each name once, and the code outside a room (the other rooms,
api/, cli/, tools/, bench/) takes only those names, never a module inside.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import pkgutil
import re
import subprocess
import sys
from types import ModuleType

import pytest

import engine
from tests.conftest import ROOT

ROOMS = sorted(m.name for m in pkgutil.iter_modules(engine.__path__) if m.ispkg)

# modules of a room imported by path from outside it, each with the reason
DIRECT = {
    "engine.timers.scheduler": "the scheduler runs commands, so engine.timers does not load "
    "it: the runtime and modeling, which the commands use, read the calendar from there",
}


def test_the_rooms_are_the_architecture() -> None:
    assert ROOMS == [
        "audit",
        "commands",
        "execution",
        "modeling",
        "people",
        "queues",
        "reporting",
        "runtime",
        "storage",
        "timers",
    ]


def _room(name: str) -> ModuleType:
    return importlib.import_module(f"engine.{name}")


@pytest.mark.parametrize("name", ROOMS)
def test_exported_members(name: str) -> None:
    room = _room(name)
    assert room.__doc__, f"engine.{name} says what the room is"
    exported = room.__all__
    assert exported, f"engine.{name} lists its surface"
    for member in exported:
        assert hasattr(room, member), f"engine.{name}.{member}"
        value = getattr(room, member)
        if inspect.ismodule(value):
            assert value.__name__.startswith(f"{room.__name__}."), member
        elif inspect.isclass(value) or inspect.isfunction(value):
            assert value.__module__.startswith(f"{room.__name__}."), member


def _isort_key(name: str) -> tuple[int, list[int | str]]:
    """ruff's RUF022 order: CONSTANTS, then Classes, then the rest; numbers naturally."""
    kind = 0 if len(name) > 1 and name.isupper() else 1 if name[:1].isupper() else 2
    return kind, [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


@pytest.mark.parametrize("name", ROOMS)
def test_the_surface_is_sorted_and_says_each_name_once(name: str) -> None:
    exported = _room(name).__all__
    assert len(set(exported)) == len(exported)
    assert exported == sorted(exported, key=_isort_key)


@pytest.mark.parametrize("name", ROOMS)
def test_a_room_can_be_imported_first(name: str) -> None:
    """The rooms that import each other (runtime, modeling, queues, timers) load in an
    order that works whichever of them a program imports first."""
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    done = subprocess.run(
        [sys.executable, "-c", f"import engine.{name}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def _room_of(path: str) -> str | None:
    parts = path.split("/")
    return parts[1] if parts[0] == "engine" and len(parts) > 2 else None


def _reaching_in() -> tuple[list[tuple[str, str]], int]:
    """(file, what it imports) for each import into a room from outside it that is not on
    the room's surface: a module inside it, or a name it does not export; and how many
    imports into a room from outside it the scan saw."""
    found = []
    seen = 0
    for top in ("engine", "api", "cli", "tools", "bench"):
        for file in sorted((ROOT / top).rglob("*.py")):
            path = str(file.relative_to(ROOT))
            mine = _room_of(path)
            for node in ast.walk(ast.parse(file.read_text())):
                if isinstance(node, ast.Import):
                    modules = [(alias.name, None) for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    modules = [(node.module, alias.name) for alias in node.names]
                else:
                    continue
                for module, name in modules:
                    parts = module.split(".")
                    if parts[0] != "engine" or len(parts) < 2 or parts[1] not in ROOMS:
                        continue
                    if parts[1] == mine or module in DIRECT:
                        continue
                    seen += 1
                    if len(parts) > 2:
                        found.append((path, module))
                    elif name is not None and name not in _room(parts[1]).__all__:
                        found.append((path, f"{module}.{name}"))
    return found, seen


def test_only_a_rooms_surface_is_used_outside_it() -> None:
    found, seen = _reaching_in()
    assert seen > 100, "the scan found the imports between the rooms"
    assert found == []
    assert all(importlib.import_module(module) for module in DIRECT)
