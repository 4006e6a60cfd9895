"""The health answer from a thread of its own: `tradeflow serve --health-port N`.

Every request thread of a worker may be busy (a slow statement, a client retrying on a
locked instance): /api/v1/health then waits in line with them. Here each worker process
also answers ``GET /health`` on a port of its own, from a thread that does nothing else,
with the same answer (api/resources/health.py: 200, or 503 naming what is down; one
probe a second however many ask). The workers share the port (``SO_REUSEPORT``: the
kernel spreads connections among them); it listens on 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from api.resources.health import check
from engine.storage import Database

MAX_AT_ONCE = 4  # health checks answered at once; more get 503 without a probe


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def server_bind(self) -> None:
        if hasattr(socket, "SO_REUSEPORT"):  # every worker listens on the one port
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


def serve_health(db: Database, host: str, port: int) -> ThreadingHTTPServer:
    """Answer ``GET /health`` on ``host:port`` from a daemon thread; returns the server
    (``shutdown()`` stops it)."""

    class Handler(BaseHTTPRequestHandler):
        timeout = 5  # a client that sends nothing is dropped

        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/health":
                self._answer(404, {"status": "not found", "checks": {}})
                return
            if not answering.acquire(blocking=False):  # a flood gets a quick no
                self._answer(503, {"status": "busy", "checks": {}})
                return
            try:
                body, status = check(db)
            finally:
                answering.release()
            self._answer(status, body)

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            kind = "application/json" if status == 200 else "application/problem+json"
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # a probe every few seconds is no news

    answering = threading.BoundedSemaphore(MAX_AT_ONCE)
    server = _Server((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server
