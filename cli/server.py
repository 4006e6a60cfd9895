"""gunicorn, embedded: `tradeflow serve` is the production server, not Flask's."""

from __future__ import annotations

import gc
import os
import socket
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.http import wsgi
from prometheus_client import multiprocess

from api import create_app
from engine.scheduler import Scheduler, Timers

GC_THRESHOLDS = (20_000, 20, 20)  # Python's defaults: (700, 10, 10)


class HeldHead:
    """A socket whose head of a response, while ``holding``, waits to go out in the same
    send as the body's first bytes.

    gunicorn sends a response's head and body apart: two system calls where one does, and
    on loopback (a proxy in front) each send also runs the receiving side's network stack.
    The head's own send was 5% of the worker's time per task completion (py-spy over
    bench/http_completions.py)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.holding = False
        self.held = b""

    def sendall(self, data: bytes) -> None:
        if self.holding:
            self.held += data
            return
        if self.held:
            data, self.held = self.held + data, b""
        self.sock.sendall(data)

    def flush(self) -> None:
        if self.held:
            data, self.held = self.held, b""
            self.sock.sendall(data)

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        self.flush()
        return self.sock.sendfile(file, offset, count)

    def __getattr__(self, name: str) -> Any:  # the rest as the socket does it
        return getattr(self.sock, name)


class OneSendResponse(wsgi.Response):  # type: ignore[misc]
    """gunicorn's HTTP/1 response, its head sent with the body's first bytes."""

    def __init__(self, req: Any, sock: socket.socket, cfg: Any) -> None:
        super().__init__(req, HeldHead(sock), cfg)

    def send_headers(self) -> None:
        self.sock.holding = True
        try:
            super().send_headers()
        finally:
            self.sock.holding = False

    def close(self) -> None:
        super().close()
        self.sock.flush()  # a response without a body (204, HEAD): its head alone


class _Server(BaseApplication):  # type: ignore[misc]
    def __init__(self, options: dict[str, Any], scheduler: bool) -> None:
        self.options = options
        self.scheduler = scheduler
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        wsgi.Response = OneSendResponse  # what gthread's worker builds each response with
        app = create_app()  # in each worker, after the fork
        flow = app.extensions["tradeflow"]
        flow.db.checkpoint_in_background()  # SQLite: the log's fsyncs leave the requests
        if self.scheduler:  # every worker fires timers; they share the due ones safely
            Scheduler(Timers(flow.runtime)).start()
        # What start-up made (modules, the app, its caches) is never garbage: frozen, no
        # collection walks it again. A request makes thousands of short-lived objects
        # (Spiff's task tree, rows, dicts), so collect the young generation less often.
        # Measured: 7-10% more completions per second (bench/http_completions.py).
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        return app


def _child_exit(_server: Any, worker: Any) -> None:
    # a dead worker's samples stay counted; its live gauges go (prometheus_client)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def run(
    host: str,
    port: int,
    workers: int,
    threads: int,
    scheduler: bool = True,
    access_log: bool = False,
) -> None:
    _Server(
        {
            "bind": f"{host}:{port}",
            "workers": workers,
            "threads": threads,
            "worker_class": "gthread",
            # off unless asked, as gunicorn's default: a line per request costs 3% of a
            # task completion's time in the worker (bench/http_completions.py)
            "accesslog": "-" if access_log else None,
            "timeout": 60,
            "graceful_timeout": 10,
            "child_exit": _child_exit,
        },
        scheduler,
    ).run()
