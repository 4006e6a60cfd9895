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
_UNIT_OF_WORK_CALLS = {
    "save_instance",
    "postpone_instance",
    "insert_instance",
    "add_instance",
    "lock_instance",
    "claim_due_many",
}


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
        ("engine/runtime/unit.py", "add_instance"),
        ("engine/runtime/unit.py", "save_instance"),
        ("engine/storage/writes.py", "insert_instance"),  # the unit's pending writes
        ("engine/storage/writes.py", "save_instance"),
        ("engine/storage/writes.py", "postpone_instance"),
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


def test_the_api_does_not_depend_on_the_pages() -> None:
    """Sessions, CSRF and who is calling belong to the API (api/auth.py, api/context.py):
    only the app factory knows the pages exist, to install them."""
    web = ROOT / "api" / "web"
    found = [
        (str(file.relative_to(ROOT)), node.module)
        for file in sorted((ROOT / "api").rglob("*.py"))
        if web not in file.parents and file != ROOT / "api" / "__init__.py"
        for node in ast.walk(ast.parse(file.read_text()))
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("api.web")
    ]
    assert found == []


def test_schemas_and_templates_read_no_clock() -> None:
    """Whether a task is overdue is the engine's to say (TaskRow.overdue, stamped as it
    reads the task): the schemas do not reach into the app context, and neither they nor
    the pages compute it from a clock of their own."""
    schemas = (ROOT / "api" / "schemas.py").read_text()
    imports = [
        node.module
        for node in ast.walk(ast.parse(schemas))
        if isinstance(node, ast.ImportFrom) and node.module
    ]
    assert "api.context" not in imports
    assert "is_overdue" not in schemas
    pages = [ROOT / "api" / "web" / "__init__.py", *(ROOT / "api" / "web" / "templates").glob("*")]
    assert [
        p.name for p in pages if "is_overdue" in p.read_text() or "overdue(" in p.read_text()
    ] == []


def _module_graph(package: str) -> dict[str, set[str]]:
    """Module -> the package's modules it imports when it is loaded (imports inside
    functions and under ``if TYPE_CHECKING`` are not run then, so not counted)."""
    modules = {}
    for file in sorted((ROOT / package).rglob("*.py")):
        parts = list(file.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = file
    graph: dict[str, set[str]] = {}
    for name, file in modules.items():
        found: set[str] = set()
        for node in ast.parse(file.read_text()).body:
            if isinstance(node, ast.ImportFrom) and node.module in modules:
                # ``from package import module`` loads the package, then the module; a
                # package's own modules importing their siblings so is no cycle
                submodules = {f"{node.module}.{a.name}" for a in node.names} & modules.keys()
                found |= submodules
                inside = name == node.module or name.startswith(node.module + ".")
                if len(submodules) < len(node.names) or not inside:
                    found.add(node.module)
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names} & modules.keys()
        graph[name] = found - {name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            members = []
            while True:
                member = stack.pop()
                members.append(member)
                if member == node:
                    break
            if len(members) > 1:
                found.append(sorted(members))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_engine_has_no_import_cycles() -> None:
    """Modules that import each other as they load work only in one order, and hide
    which way the layers go (the unit of work and messages did, through a function-level
    import)."""
    graph = _module_graph("engine")
    assert len(graph) > 20 and sum(map(len, graph.values())) > 50, "the scan found little"
    # what runs a workflow (engine.execution) sits beneath modeling, queues and timers, and
    # the unit of work above them: nothing loads in one order only
    assert _cycles(graph) == []
