"""The compatibility suite drives the HTTP API as tests/api does: its client. Deploy's
checks read the files, not the database, so the suite runs on SQLite alone (the API's
own tests run deploy on both databases)."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.storage import Database
from tests.api.conftest import client
from tests.conftest import _sqlite

__all__ = ["client", "db"]


@pytest.fixture
def db(tmp_path: Path, sqlite_template: Path) -> Iterator[Database]:
    yield from _sqlite(tmp_path, sqlite_template)
