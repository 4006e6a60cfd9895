"""House rules that keep the layers apart."""

from __future__ import annotations

import ast

from tests.conftest import ROOT


def _imports(path: str) -> list[tuple[str, str]]:
    found = []
    for file in sorted((ROOT / path).rglob("*.py")):
        tree = ast.parse(file.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [(file.name, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.append((file.name, node.module))
    return found


def test_the_engine_never_imports_flask() -> None:
    imports = _imports("engine")
    assert imports, "the scan found no imports at all"
    assert [(f, m) for f, m in imports if m.split(".")[0] in ("flask", "werkzeug", "api")] == []


def test_forms_know_nothing_of_http_or_the_engine() -> None:
    imports = _imports("forms")
    assert [(f, m) for f, m in imports if m.split(".")[0] in ("flask", "engine", "api")] == []


# what changes an instance row, or opens the transaction a command runs in
_UNIT_OF_WORK_CALLS = {"save_instance", "insert_instance", "lock_instance", "claim_due_many"}


def _calls(path: str, names: set[str]) -> list[tuple[str, str]]:
    found = []
    for file in sorted((ROOT / path).rglob("*.py")):
        for node in ast.walk(ast.parse(file.read_text())):
            call = node.func if isinstance(node, ast.Call) else None
            if isinstance(call, ast.Attribute) and call.attr in names:
                found.append((str(file.relative_to(ROOT)), call.attr))
    return found


def test_only_the_unit_of_work_changes_an_instance() -> None:
    """Every change to an instance goes through runtime.Unit: nothing else locks, inserts
    or saves an instance row, or opens the unit's transaction (db.unit()). The scheduler
    may claim due rows, which it hands to the unit."""
    allowed = {
        ("engine/runtime/unit.py", "lock_instance"),
        ("engine/runtime/unit.py", "insert_instance"),
        ("engine/runtime/unit.py", "save_instance"),
        ("engine/runtime/unit.py", "unit"),
        ("engine/runtime/settle.py", "save_instance"),
        ("engine/timers/scheduler.py", "claim_due_many"),
    }
    found = set()
    for package in ("engine", "api", "cli", "tools"):
        found |= set(_calls(package, _UNIT_OF_WORK_CALLS | {"unit"}))
    # runtime.unit(...) is the way in for everyone; the database's unit() only for it
    found = {(f, name) for f, name in found if name != "unit" or f == "engine/runtime/unit.py"}
    assert ("engine/runtime/unit.py", "unit") in found, "the scan found no unit of work"
    assert found - allowed == set()
    assert _instance_status_set_outside() == []


def _instance_status_set_outside() -> list[str]:
    """Assignments to an instance's status outside the unit of work and the commands
    that run inside it (instances.py: cancel, a failed start)."""
    inside = {"engine/runtime/unit.py", "engine/runtime/settle.py", "engine/commands/instances.py"}
    found = []
    for file in sorted((ROOT / "engine").rglob("*.py")):
        name = str(file.relative_to(ROOT))
        if name in inside:
            continue
        for node in ast.walk(ast.parse(file.read_text())):
            targets = node.targets if isinstance(node, ast.Assign) else []
            for target in targets:
                for part in ast.walk(target):
                    if isinstance(part, ast.Attribute) and part.attr == "status":
                        source = ast.unparse(node)
                        if "InstanceStatus" in source:
                            found.append(f"{name}: {source}")
    return found
