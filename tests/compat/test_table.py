"""docs/compatibility.md is the table of constructs as the code has it."""

from __future__ import annotations

from engine.modeling.constructs import CONSTRUCTS, Status
from tools.compat_table import DOC, render


def test_the_page_is_written_from_the_table() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), "run: python -m tools.compat_table"


def test_every_row_says_what_to_do_and_refused_rows_can_be_found() -> None:
    keys = [c.key for c in CONSTRUCTS]
    assert len(keys) == len(set(keys))
    for construct in CONSTRUCTS:
        assert construct.what and construct.note
        assert (construct.find is not None) == (construct.status != Status.RUNS), construct.key
