"""A `tradeflow serve` process for the benchmarks: prepare its database, start it on a
free port, watch its CPU, stop it."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.completions import ROOT

TRADEFLOW = Path(sys.executable).with_name("tradeflow")
USERS = {"clerk": "documents_logistics", "checker": "risk_compliance"}


def cli(url: str, *args: str) -> str:
    """Run ``tradeflow ARGS`` on the database at ``url``; its stdout."""
    env = {**os.environ, "TRADEFLOW_DATABASE_URL": url}
    done = subprocess.run(
        [str(TRADEFLOW), *args], env=env, cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"tradeflow {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def prepare(url: str) -> dict[str, str]:
    """Schema, users, deployment, as an operator does it; user name -> token."""
    cli(url, "db", "upgrade")
    tokens = {
        name: cli(url, "users", "add", name, "--role", role).strip().splitlines()[-1]
        for name, role in USERS.items()
    }
    files = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "bpmn").glob("*.bpmn"))]
    files += [str(p.relative_to(ROOT)) for p in sorted((ROOT / "bpmn").glob("*.dmn"))]
    files += [str(p.relative_to(ROOT)) for p in sorted((ROOT / "forms").glob("*.form"))]
    cli(url, "deploy", *files)
    return tokens


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    try:
        fields_ = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields_[11]) + int(fields_[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            found.append(int(stat.parent.name))
    return sorted(found)


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs so far."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


@contextmanager
def server(url: str, workers: int, threads: int, log: Path) -> Iterator[tuple[int, list[int]]]:
    """``tradeflow serve`` on a free port until the block ends; (port, worker pids)."""
    port = free_port()
    env = {**os.environ, "TRADEFLOW_DATABASE_URL": url}
    command = [str(TRADEFLOW), "serve", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", str(workers), "--threads", str(threads)]
    with log.open("w") as out:
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 60
        pids: list[int] = []
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"tradeflow serve exited:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"tradeflow serve did not come up:\n{log.read_text()[-3000:]}")
            pids = children(process.pid)
            if len(pids) == workers and all(_healthy(port) for _ in range(workers)):
                break
            time.sleep(0.1)
        yield port, pids
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _healthy(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/api/v1/health")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


# -- the client ----------------------------------------------------------------------
