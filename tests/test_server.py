"""`tradeflow serve`'s gunicorn: a response's head leaves in the same send as its body,
and a worker of one thread serves requests on its own loop."""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from gunicorn.config import Config
from gunicorn.http.parser import RequestParser

from cli.server import OneSendResponse
from tests.conftest import ROOT


class Wire:
    """The connection's socket as the operating system sees it: what each call sent."""

    def __init__(self) -> None:
        self.sends: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.sends.append(bytes(data))

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        file.seek(offset)
        data = file.read(count)
        self.sends.append(b"<sendfile>" + data)
        return len(data)


def _response(request: bytes) -> tuple[OneSendResponse, Wire]:
    """A request parsed by gunicorn from a real socket, and its response on a Wire."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(request)
        cfg = Config()
        req = next(iter(RequestParser(cfg, ours, ("127.0.0.1", 9))))
    wire = Wire()
    return OneSendResponse(req, wire, cfg), wire  # type: ignore[arg-type]


def test_the_head_goes_out_with_the_first_bytes_of_the_body() -> None:
    resp, wire = _response(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
    resp.start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "11")])
    resp.write(b'{"ok":true}')
    resp.close()
    [sent] = wire.sends
    head, _, body = sent.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"Content-Length: 11" in head
    assert body == b'{"ok":true}'


def test_a_response_without_a_body_sends_its_head_at_the_close() -> None:
    resp, wire = _response(b"HEAD /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
    resp.start_response("204 No Content", [])
    resp.write(b"")
    assert wire.sends == []
    resp.close()
    [sent] = wire.sends
    assert sent.startswith(b"HTTP/1.1 204 No Content\r\n") and sent.endswith(b"\r\n\r\n")


def test_a_chunked_body_carries_the_head_in_its_first_chunk_and_ends_as_usual() -> None:
    resp, wire = _response(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
    resp.start_response("200 OK", [("Content-Type", "text/plain")])  # no length: chunked
    resp.write(b"hello ")
    resp.write(b"world")
    resp.close()
    assert len(wire.sends) == 3
    assert wire.sends[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert wire.sends[0].endswith(b"\r\n\r\n6\r\nhello \r\n")
    assert wire.sends[1:] == [b"5\r\nworld\r\n", b"0\r\n\r\n"]


def test_a_file_sent_by_the_kernel_follows_its_head() -> None:
    resp, wire = _response(b"GET /static/x HTTP/1.1\r\nHost: x\r\n\r\n")
    resp.start_response("200 OK", [("Content-Length", "5")])
    resp.send_headers()  # as gunicorn's sendfile path does, then the kernel sends the file
    assert wire.sends == []
    assert resp.sock.sendfile(io.BytesIO(b"hello"), 0, 5) == 5
    assert wire.sends[0].startswith(b"HTTP/1.1 200 OK\r\n") and wire.sends[0].endswith(b"\r\n\r\n")
    assert wire.sends[1:] == [b"<sendfile>hello"]


# -- the worker that serves requests on its loop's thread (one thread per worker) --------


@pytest.fixture(scope="module")
def one_thread(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """`tradeflow serve` with one worker of one thread (the inline worker); its port."""
    from tests.test_e2e import TRADEFLOW, Service, _free_port, _wait_until_up

    url = f"sqlite:///{tmp_path_factory.mktemp('inline')}/inline.db"
    env = {**os.environ, "TRADEFLOW_DATABASE_URL": url}
    port = _free_port()
    command = [TRADEFLOW, "serve", "--port", str(port), "--workers", "1", "--threads", "1"]
    server = subprocess.Popen(
        [*command, "--no-scheduler"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL
    )
    try:
        _wait_until_up(Service(f"http://127.0.0.1:{port}", env), "/api/v1/health")
        yield port
    finally:
        server.terminate()
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


def test_one_connection_carries_many_requests(one_thread: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", one_thread, timeout=10)
    try:
        conn.connect()
        local = conn.sock.getsockname()
        for _ in range(3):
            conn.request("GET", "/api/v1/health")
            response = conn.getresponse()
            assert response.status == 200 and json.loads(response.read())["status"] == "ok"
            assert conn.sock.getsockname() == local  # kept alive: no new connection
    finally:
        conn.close()


def test_a_silent_client_holds_up_nobody(one_thread: int) -> None:
    """A connection that sends nothing waits in the poller, not in the only thread (gthread
    with one thread would hold the next client for up to 5 s). A request cut short still
    holds the worker, as in gunicorn's sync worker: a buffering proxy is the remedy."""
    with socket.create_connection(("127.0.0.1", one_thread)):
        time.sleep(0.2)
        assert _health(one_thread) < 1.0


def test_pipelined_requests_are_answered_in_order(one_thread: int) -> None:
    with socket.create_connection(("127.0.0.1", one_thread), timeout=10) as sock:
        request = b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n"
        missing = b"GET /api/v1/nothing-here HTTP/1.1\r\nHost: x\r\n\r\n"
        sock.sendall(request + missing + request)
        received = b""
        while received.count(b"HTTP/1.1 ") < 3 or not received.endswith(b"}\n"):
            chunk = sock.recv(65536)
            assert chunk, received
            received += chunk
    assert re.findall(rb"HTTP/1.1 (\d{3}) ", received) == [b"200", b"404", b"200"]
