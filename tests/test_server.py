"""`tradeflow serve`'s gunicorn response: its head leaves in the same send as the body."""

from __future__ import annotations

import io
import socket
from typing import Any

from gunicorn.config import Config
from gunicorn.http.parser import RequestParser

from cli.server import OneSendResponse


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
