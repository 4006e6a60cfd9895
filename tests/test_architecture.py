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
