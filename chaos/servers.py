"""Servers the chaos suite may break: a PostgreSQL server of its own (restarted at will,
without touching the one the tests share) and the settings that run `tradeflow serve`
on a clock of its own (libfaketime: its wall clock steps, its monotonic clock doesn't,
as a real step of the system clock)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.test_e2e import _free_port

FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


@dataclass
class PrivatePostgres:
    folder: Path
    port: int
    pg_ctl: str

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def ctl(self, *args: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", self.pg_ctl, "-D", str(self.folder / "data"),
             "-l", str(self.folder / "log"), "-w", "-t", "30", *args],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip

    def restart(self) -> None:
        """Stop (fast: sessions ended, as a crash or an operator's restart ends them)
        and start again."""
        self.ctl("-m", "fast", "restart", "-o", self._options())

    def _options(self) -> str:
        return f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL server of the installed version in a temporary folder, on a free
    port; skipped where it can't run (no binaries, not root to run them as postgres)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not found or os.geteuid() != 0 or shutil.which("runuser") is None:
        pytest.skip("a private PostgreSQL server needs its binaries, root and runuser")
    pg_ctl = found[-1]
    folder = Path(tempfile.mkdtemp(prefix="tradeflow-chaos-pg-"))
    shutil.chown(folder, "postgres", "postgres")
    server = PrivatePostgres(folder, _free_port(), pg_ctl)
    subprocess.run(
        ["runuser", "-u", "postgres", "--", str(Path(pg_ctl).parent / "initdb"),
         "-D", str(folder / "data"), "-A", "trust", "-U", "postgres"],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    server.ctl("start", "-o", server._options())
    try:
        yield server
    finally:
        server.ctl("-m", "immediate", "stop")
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def database_on(server: PrivatePostgres) -> Iterator[str]:
    """A database on the private server: its URL."""
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE chaos")
    yield server.url.rsplit("/", 1)[0] + "/chaos"


@dataclass
class FakeClock:
    """The offset file libfaketime reads (again each second) in the servers' processes."""

    file: Path

    def step(self, seconds: int) -> None:
        self.file.write_text(f"{seconds:+d}\n")

    def env(self) -> dict[str, str]:
        return {
            "LD_PRELOAD": FAKETIME,
            "FAKETIME_TIMESTAMP_FILE": str(self.file),
            "FAKETIME_CACHE_DURATION": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        }


@contextmanager
def fake_clock() -> Iterator[FakeClock]:
    if not os.path.exists(FAKETIME):
        pytest.skip("stepping a server's clock needs libfaketime (apt-get install faketime)")
    with tempfile.TemporaryDirectory(prefix="tradeflow-chaos-clock-") as folder:
        clock = FakeClock(Path(folder) / "faketimerc")
        clock.step(0)
        yield clock
