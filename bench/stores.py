"""The databases a benchmark runs on: a SQLite file in a temporary folder, or a
PostgreSQL database of its own, created beside the one ``--pg-url`` names and dropped
afterwards (skipped, with a message, where no server answers)."""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def add_pg_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pg-url",
        default=PG_URL,
        help="a PostgreSQL database to connect to; the bench creates its own beside it",
    )


def databases(name: str, pg_url: str | None) -> Iterator[tuple[str, str]]:
    """(store, URL) of a fresh SQLite file, then, with ``pg_url`` (unless nobody answers
    there), of a fresh PostgreSQL database ``tradeflow_bench_NAME``: each removed when the
    next is asked for, or the loop ends."""
    with sqlite_url(name) as url:
        yield "sqlite", url
    if pg_url is not None:
        with postgres(pg_url, f"tradeflow_bench_{name}") as found:
            if found is not None:
                yield "postgresql", found


@contextmanager
def sqlite_url(name: str = "bench") -> Iterator[str]:
    """The URL of a SQLite file in a temporary folder, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="tradeflow-bench-") as tmp:
        yield f"sqlite:///{tmp}/{name}.db"


def pg_admin(url: str) -> psycopg.Connection[Any] | None:
    """An autocommit connection to ``url``; None, said on stdout, if nobody answers."""
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        print(f"PostgreSQL at {url} does not answer ({exc.__class__.__name__}): skipped")
        return None


@contextmanager
def pg_database(admin: psycopg.Connection[Any], url: str, name: str) -> Iterator[str]:
    """A fresh database ``name`` on the server of ``url``, dropped afterwards; its URL."""
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def postgres(url: str, name: str) -> Iterator[str | None]:
    """``pg_database`` on a connection of its own; None where no server answers."""
    admin = pg_admin(url)
    if admin is None:
        yield None
        return
    with admin, pg_database(admin, url, name) as database:
        yield database
