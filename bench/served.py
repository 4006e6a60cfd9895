"""Tradeflow served for the benchmarks, and the clients that talk to it.

Every ``tradeflow`` a bench runs (``db upgrade``, ``users add``, ``deploy``, ``serve``,
``worker``) is the code of one tree (``code``: this repository unless bench/versus.py
names another revision's checkout), run by this interpreter with that tree first on
PYTHONPATH, so a server measures the tree it was asked for whatever is installed.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.bare import PROCESS, Step, workload
from bench.harness import ROOT

# user name -> the flags of ``tradeflow users add``
USERS: dict[str, tuple[str, ...]] = {
    "clerk": ("--role", "documents_logistics"),
    "checker": ("--role", "risk_compliance"),
}
_MAIN = "import sys; from cli import main; sys.exit(main())"


def _environment(url: str, code: Path) -> dict[str, str]:
    return {**os.environ, "TRADEFLOW_DATABASE_URL": url, "PYTHONPATH": str(code)}


def cli(url: str, *args: str, code: Path = ROOT) -> str:
    """Run ``tradeflow ARGS`` of ``code`` on the database at ``url``; its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", _MAIN, *args],
        env=_environment(url, code),
        cwd=code,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"tradeflow {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def spawn(
    url: str, *args: str, log: Path | None = None, code: Path = ROOT
) -> subprocess.Popen[bytes]:
    """``tradeflow ARGS`` of ``code`` started in a session of its own (its output to
    ``log``, or nowhere); the caller stops it (``stop``)."""
    with log.open("wb") if log is not None else open(os.devnull, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-c", _MAIN, *args],
            env=_environment(url, code),
            cwd=code,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )


def stop(process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """Ask a spawned process to stop; kill it if it does not within ``timeout``."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def shipped_paths(code: Path = ROOT) -> list[str]:
    """The diagrams, decision tables and forms ``code`` ships, as ``tradeflow deploy``
    takes them: an older version reads its own (a table's language may have changed)."""
    paths = sorted((code / "bpmn").glob("*.bpmn")) + sorted((code / "bpmn").glob("*.dmn"))
    paths += sorted((code / "forms").glob("*.form"))
    return [str(p) for p in paths]


def prepare(
    url: str,
    users: Mapping[str, Sequence[str]] = USERS,
    extra: Sequence[Path] = (),
    code: Path = ROOT,
) -> dict[str, str]:
    """Schema, users, deployment (the shipped files and ``extra``), as an operator does
    it; user name -> bearer token."""
    cli(url, "db", "upgrade", code=code)
    tokens = {
        name: cli(url, "users", "add", name, *flags, code=code).strip().splitlines()[-1]
        for name, flags in users.items()
    }
    cli(url, "deploy", *shipped_paths(code), *map(str, extra), code=code)
    return tokens


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def children(pid: int) -> list[int]:
    """The process ids whose parent is ``pid`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            found.append(int(stat.parent.name))
    return sorted(found)


def healthy(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/api/v1/health")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


@contextmanager
def server(
    url: str,
    workers: int,
    threads: int,
    log: Path,
    code: Path = ROOT,
    scheduler: bool = True,
) -> Iterator[tuple[int, list[int]]]:
    """``tradeflow serve`` on a free port until the block ends; (port, worker pids)."""
    port = free_port()
    args = ["serve", "--host", "127.0.0.1", "--port", str(port)]
    args += ["--workers", str(workers), "--threads", str(threads)]
    if not scheduler:
        args.append("--no-scheduler")
    process = spawn(url, *args, log=log, code=code)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"tradeflow serve exited:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"tradeflow serve did not come up:\n{log.read_text()[-3000:]}")
            pids = children(process.pid)
            if len(pids) == workers and all(healthy(port) for _ in range(workers)):
                break
            time.sleep(0.1)
        yield port, pids
    finally:
        stop(process)


# -- the clients ---------------------------------------------------------------------


class Client:
    """One keep-alive connection; JSON in and out."""

    def __init__(self, port: int, tokens: Mapping[str, str]) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {
            name: {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            for name, token in tokens.items()
        }

    def call(self, method: str, path: str, user: str, body: Any = None, expect: int = 200) -> Any:
        payload = None if body is None else json.dumps(body)
        self.conn.request(method, path, body=payload, headers=self.headers[user])
        response = self.conn.getresponse()
        data = response.read()
        if response.status != expect:
            raise RuntimeError(f"{method} {path} as {user}: {response.status} {data[:500]!r}")
        return json.loads(data)

    def close(self) -> None:
        self.conn.close()


@dataclass
class Worker:
    """A client thread's state: its instances and its place in the workload."""

    tag: str
    steps: Iterator[Step] = field(default_factory=workload)
    instances: dict[int, int] = field(default_factory=dict)  # ordinal -> instance id
    # ordinal -> the instance's open tasks as the last answer gave them (id, element)
    known: dict[int, list[tuple[int, str]]] = field(default_factory=dict)
    get_seconds: list[float] = field(default_factory=list)
    post_seconds: list[float] = field(default_factory=list)
    ended: float = 0.0
    error: BaseException | None = None

    def start_instances(self, client: Client, count: int) -> None:
        first = len(self.instances)
        for ordinal in range(first, first + count):
            body = {"definition": PROCESS, "business_key": f"{self.tag}-{ordinal}"}
            found = client.call("POST", "/api/v1/instances", "clerk", body, expect=201)
            self.instances[ordinal] = int(found["id"])
            self.known[ordinal] = [(t["id"], t["element_id"]) for t in found["tasks"]]

    def complete(
        self, client: Client, count: int, *, timed: bool, reconnect: bool, inbox: bool
    ) -> None:
        """The next ``count`` completions of the workload. ``reconnect``: a new
        connection for each instance; ``inbox``: GET the instance's tasks first, rather
        than take the task id from the previous answer."""
        current = -1
        for _ in range(count):
            step = next(self.steps)
            instance_id = self.instances[step.instance]
            if reconnect and step.instance != current and current >= 0:
                client.close()  # the next request connects anew, to whichever worker accepts
            current = step.instance
            began = time.perf_counter()
            if inbox:
                page = client.call("GET", f"/api/v1/tasks?instance_id={instance_id}", step.actor)
                open_tasks = [(t["id"], t["element_id"]) for t in page["items"]]
            else:
                open_tasks = self.known[step.instance]
            read = time.perf_counter()
            if len(open_tasks) != 1 or open_tasks[0][1] != step.element:
                raise AssertionError(f"{instance_id}: expected {step.element}: {open_tasks}")
            path = f"/api/v1/tasks/{open_tasks[0][0]}/complete"
            posted = time.perf_counter()
            done = client.call("POST", path, step.actor, {"data": step.data})
            ended = time.perf_counter()
            if done["state"] != "completed":
                raise AssertionError(f"{path}: {done}")
            self.known[step.instance] = [(t["id"], t["element_id"]) for t in done["next_tasks"]]
            if timed:
                if inbox:
                    self.get_seconds.append(read - began)
                self.post_seconds.append(ended - posted)


def run_threads(
    port: int,
    tokens: Mapping[str, str],
    workers: Sequence[Worker],
    job: Callable[[Worker, Client], None],
) -> float:
    """Run ``job(worker, client)`` on a thread per worker, started together; the wall
    seconds from their start to the last one's end. A thread's error is raised here."""
    barrier = threading.Barrier(len(workers) + 1)

    def body(worker: Worker) -> None:
        client = Client(port, tokens)
        try:
            barrier.wait()
            job(worker, client)
        except BaseException as exc:
            worker.error = exc
        finally:
            worker.ended = time.perf_counter()
            client.close()

    threads = [threading.Thread(target=body, args=(w,), daemon=True) for w in workers]
    for thread in threads:
        thread.start()
    barrier.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    for worker in workers:
        if worker.error is not None:
            raise worker.error
    return max(w.ended for w in workers) - began
