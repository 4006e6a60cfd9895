"""`tradeflow serve` (granian): one worker of one Python thread keeps connections alive,
answers pipelined requests in order, and is held up by no client, idle or slow; a
worker that dies is replaced; a body too large is refused before it is read."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.test_e2e import TRADEFLOW, Service, _free_port, _wait_until_up


class Served:
    def __init__(self, port: int, process: subprocess.Popen[bytes], token: str) -> None:
        self.port, self.process, self.token = port, process, token


@pytest.fixture(scope="module")
def one_thread(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`tradeflow serve` with one worker of one thread, on SQLite."""
    url = f"sqlite:///{tmp_path_factory.mktemp('served')}/served.db"
    env = {**os.environ, "TRADEFLOW_DATABASE_URL": url}
    service = Service("", env)
    service.cli("db", "upgrade")
    token = service.token("clerk", "--role", "documents_logistics")
    with _serving(env, "--threads", "1") as (served, server):
        yield Served(int(served.url.rsplit(":", 1)[1]), server, token)


@contextmanager
def _serving(env: dict[str, str], *flags: str) -> Iterator[tuple[Service, subprocess.Popen[bytes]]]:
    """`tradeflow serve` with one worker and no scheduler, until the block ends."""
    port = _free_port()
    command = [TRADEFLOW, "serve", "--port", str(port), "--workers", "1", "--no-scheduler"]
    server = subprocess.Popen(
        [*command, *flags],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        served = Service(f"http://127.0.0.1:{port}", env)
        _wait_until_up(served, "/api/v1/health")
        yield served, server
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def _health(port: int) -> float:
    """Seconds a new connection waits for GET /api/v1/health to answer 200."""
    began = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/api/v1/health")
        assert conn.getresponse().status == 200
    finally:
        conn.close()
    return time.monotonic() - began


def test_one_connection_carries_many_requests(one_thread: Served) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", one_thread.port, timeout=10)
    try:
        conn.connect()
        assert conn.sock is not None
        local = conn.sock.getsockname()
        for _ in range(3):
            conn.request("GET", "/api/v1/health")
            response = conn.getresponse()
            assert response.status == 200 and json.loads(response.read())["status"] == "ok"
            assert conn.sock.getsockname() == local  # kept alive: no new connection
    finally:
        conn.close()


def test_idle_and_slow_clients_hold_up_nobody(one_thread: Served) -> None:
    """A connection that sends nothing, and one whose request stops halfway, wait on the
    server's own threads, not in the only Python thread."""
    with (
        socket.create_connection(("127.0.0.1", one_thread.port)),
        socket.create_connection(("127.0.0.1", one_thread.port)) as halfway,
    ):
        halfway.sendall(b"POST /api/v1/tasks/1/complete HTTP/1.1\r\nHost: x\r\nContent-Le")
        time.sleep(0.3)
        assert _health(one_thread.port) < 1.0


def test_pipelined_requests_are_answered_in_order(one_thread: Served) -> None:
    with socket.create_connection(("127.0.0.1", one_thread.port), timeout=10) as sock:
        request = b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n"
        missing = b"GET /api/v1/nothing-here HTTP/1.1\r\nHost: x\r\n\r\n"
        sock.sendall(request + missing + request)
        received = b""
        while len(re.findall(rb"HTTP/1.1 \d{3} ", received)) < 3 or not received.endswith(b"\n"):
            chunk = sock.recv(65536)
            assert chunk, received
            received += chunk
    assert re.findall(rb"HTTP/1.1 (\d{3}) ", received) == [b"200", b"404", b"200"]


def test_a_body_too_large_is_refused_before_it_is_read(one_thread: Served) -> None:
    """The app reads the body from the connection as it comes (not buffered first by the
    server): a declared length over the limit is answered at once, and a chunked body
    that never ends is cut off at the limit, the worker's memory untouched."""
    head = (
        "POST /api/v1/tasks/1/complete HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
        f"\r\nAuthorization: Bearer {one_thread.token}\r\n"
    )
    with socket.create_connection(("127.0.0.1", one_thread.port), timeout=10) as sock:
        sock.sendall(f"{head}Content-Length: 500000000\r\n\r\n".encode())
        assert sock.recv(200).startswith(b"HTTP/1.1 413 ")
    worker = _worker_of(one_thread.process.pid)
    before = _rss_mib(worker)
    with socket.create_connection(("127.0.0.1", one_thread.port), timeout=10) as sock:
        sock.sendall(f"{head}Transfer-Encoding: chunked\r\n\r\n".encode())
        chunk = b"x" * 65536
        sent = 0
        with pytest.raises(OSError):  # the server stops reading, then closes
            while sent < 256 * 2**20:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        assert sent < 64 * 2**20
        answer = b""
        with contextlib.suppress(OSError):  # what the server said before it closed
            answer = sock.recv(200)
        assert answer.startswith(b"HTTP/1.1 413 ") or answer == b"", answer
    assert _rss_mib(worker) < before + 32
    assert _health(one_thread.port) < 1.0


def test_a_worker_that_dies_is_replaced(one_thread: Served) -> None:
    worker = _worker_of(one_thread.process.pid)
    os.kill(worker, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            replaced = _worker_of(one_thread.process.pid)
            if replaced != worker and _health(one_thread.port) < 5:
                return
        except (OSError, AssertionError):
            pass
        time.sleep(0.2)
    raise AssertionError("no new worker answered")


def _worker_of(pid: int) -> int:
    """The one worker process of the server ``pid``."""
    found = [
        int(stat.parent.name) for stat in Path("/proc").glob("[0-9]*/stat") if _parent(stat) == pid
    ]
    assert len(found) == 1, found
    return found[0]


def _parent(stat: Path) -> int | None:
    try:
        return int(stat.read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _rss_mib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) // 1024


def test_the_servers_environment_is_no_part_of_a_request(tmp_path: Path) -> None:
    """Variables named like a request's (HTTP_AUTHORIZATION, CONTENT_LENGTH...) in the
    server's environment reach no request: granian copies the environment into each."""
    url = f"sqlite:///{tmp_path}/env.db"
    service = Service("", {**os.environ, "TRADEFLOW_DATABASE_URL": url})
    service.cli("db", "upgrade")
    token = service.token("auditor", "--auditor")
    env = {
        **service.env,
        "HTTP_AUTHORIZATION": f"Bearer {token}",
        "HTTP_X_FORWARDED_FOR": "10.0.0.1",
        "CONTENT_LENGTH": "5",
        "REMOTE_USER": "admin",
    }
    with _serving(env) as (served, _):
        status, _, body = served.call("GET", "/api/v1/audit")  # no token of its own
        assert status == 401, body
        assert served.call("GET", "/api/v1/audit", token)[0] == 200


def _looping(tmp_path: Path, seconds: int) -> tuple[dict[str, str], str]:
    """An SQLite store with `probe`, a loop through a gateway that never waits, deployed;
    commands stopped by the clock after ``seconds`` (not by the steps or the data their
    rounds build). The servers' environment, and a process owner's token."""
    from tests.api.test_budgets import GATEWAY_LOOP

    env = {
        **os.environ,
        "TRADEFLOW_DATABASE_URL": f"sqlite:///{tmp_path}/loop.db",
        "TRADEFLOW_COMMAND_MAX_SECONDS": str(seconds),
        "TRADEFLOW_COMMAND_MAX_STEPS": "10000000",
        "TRADEFLOW_COMMAND_MAX_BUILT": "1000000000000",
    }
    service = Service("", env)
    service.cli("db", "upgrade")
    (tmp_path / "probe.bpmn").write_bytes(GATEWAY_LOOP)
    service.cli("deploy", str(tmp_path / "probe.bpmn"))
    return env, service.token("owner", "--process-owner")


def test_a_command_that_never_waits_is_stopped_and_health_answers_meanwhile(
    tmp_path: Path,
) -> None:
    """A loop through a gateway that never waits, started over HTTP on SQLite: the
    server answers /health while it runs, and the start ends at the configured budget
    (TRADEFLOW_COMMAND_MAX_SECONDS) with a 422 naming the element; nothing is stored."""
    env, token = _looping(tmp_path, seconds=2)
    with _serving(env, "--threads", "2") as (served, _):
        answer: list[tuple[int, Any]] = []
        # rounds of some milliseconds: SpiffWorkflow stops following a tree 1,000 tasks
        # deep (an instance that just stops), which must come well after the 2 seconds
        started = {"definition": "probe", "variables": {"pad": [0] * 10_000}}
        began = time.monotonic()
        starting = threading.Thread(
            target=lambda: answer.append(
                served.call("POST", "/api/v1/instances", token, started)[::2]
            )
        )
        starting.start()
        time.sleep(0.5)
        assert starting.is_alive()  # still looping
        assert _health(served_port(served)) < 1.0
        starting.join(timeout=30)
        took = time.monotonic() - began
        [(status, body)] = answer
        assert status == 422, body
        assert body["type"] == "urn:tradeflow:problem:budget-exceeded"
        assert (body["budget"], body["element"] in ("count", "more")) == ("seconds", True)
        assert 2 <= took < 15, took  # 2 s of CPU; more on a machine shared with others
        assert served.call("GET", "/api/v1/instances", token)[2]["total"] == 0


def served_port(served: Service) -> int:
    return int(served.url.rsplit(":", 1)[1])


def test_the_health_port_answers_while_the_only_request_thread_is_busy(
    tmp_path: Path,
) -> None:
    """`serve --health-port`: with the one request thread running a long command, the
    health thread still answers at once (the API's /health waits in line)."""
    env, token = _looping(tmp_path, seconds=3)
    health_port = _free_port()
    with _serving(env, "--threads", "1", "--health-port", str(health_port)) as (served, _):
        started = {"definition": "probe", "variables": {"pad": [0] * 10_000}}
        starting = threading.Thread(
            target=lambda: served.call("POST", "/api/v1/instances", token, started)
        )
        starting.start()
        time.sleep(0.5)
        assert starting.is_alive()  # the only request thread is busy
        began = time.monotonic()
        connection = http.client.HTTPConnection("127.0.0.1", health_port, timeout=5)
        connection.request("GET", "/health")
        response = connection.getresponse()
        body = json.loads(response.read())
        took = time.monotonic() - began
        connection.close()
        assert starting.is_alive()  # answered while it still ran
        assert (response.status, body["status"]) == (200, "ok")
        assert took < 1.0, took
        starting.join(timeout=30)
