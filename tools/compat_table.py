"""Write docs/compatibility.md from the table of constructs (engine/modeling/constructs.py):
what deploy does with each Camunda 7 construct. tests/compat/test_table.py keeps the two
equal: after changing the table, run

    .venv/bin/python -m tools.compat_table
"""

from __future__ import annotations

import sys
from pathlib import Path

from engine.modeling import constructs

Status = constructs.Status

DOC = Path(__file__).resolve().parent.parent / "docs" / "compatibility.md"
HEAD = """# Camunda 7 compatibility: what runs, what deploy refuses

What Tradeflow does with each construct of a Camunda 7 diagram or decision table. A
construct **runs** with Camunda 7's meaning (and a test shows it), or deploy **refuses**
it, naming the file, the element and what to use instead (422 `diagram-invalid`; one test
per row in `tests/compat/test_refused.py`). A construct that **differs** runs, but not
quite as Camunda 7 runs it: deploy says so in its `warnings`, naming the element. Nothing
deploys to be ignored, stuck or wrong.

This page is written from `engine/modeling/constructs.py` by `tools/compat_table.py`; a
test fails when the two differ. Issue 17 turns refused rows into running ones.

"""
TITLES = {
    Status.RUNS: "Runs",
    Status.DIFFERS: "Runs, differing from Camunda 7 (a deploy warning says so)",
    Status.REFUSED: "Refused at deploy",
}


def _cell(text: str) -> str:
    """A table cell: a bare | would end it, even in a code span (GFM)."""
    return text.replace("|", "\\|")


def render() -> str:
    parts = [HEAD]
    for status in (Status.RUNS, Status.DIFFERS, Status.REFUSED):
        rows = [c for c in constructs.CONSTRUCTS if c.status == status]
        said = "instead" if status == Status.REFUSED else "what happens"
        parts.append(f"## {TITLES[status]}\n\n| construct | {said} |\n|---|---|\n")
        parts += [f"| {_cell(c.what)} | {_cell(c.note)} |\n" for c in rows]
        parts.append("\n")
    return "".join(parts).rstrip() + "\n"


def main() -> int:
    DOC.write_text(render(), encoding="utf-8")
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
