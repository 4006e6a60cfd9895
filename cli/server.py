"""gunicorn, embedded: `tradeflow serve` is the production server, not Flask's."""

from __future__ import annotations

import errno
import gc
import os
import selectors
import socket
import time
from collections import deque
from concurrent import futures
from functools import partial
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.http import wsgi
from gunicorn.workers import gthread
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


class InlineWorker(gthread.ThreadWorker):  # type: ignore[misc]
    """gthread's event loop and keep-alive, each request handled on the loop's thread.

    With one thread per worker (``tradeflow serve``'s default), gthread hands every
    request to a pool thread and its end back to the loop: two thread switches through
    the interpreter lock, with some 20 futex calls a request (perf, bench/http_completions).
    Here the loop runs the request itself. A new connection waits in the poller until
    its first bytes arrive (gthread waits in a pool thread), so an idle client holds no
    thread; a stuck request blocks the worker until gunicorn's ``timeout`` replaces it,
    as with the sync worker. ``--threads`` above one keeps gthread."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ready: deque[Any] = deque()
        self._serving = False

    def accept(self, listener: Any) -> None:
        try:
            client_sock, client_addr = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = gthread.TConn(self.cfg, client_sock, client_addr, listener.getsockname())
        # as long as gthread lets a new connection be silent: a pool thread's wait, then
        # a kept-alive connection's
        conn.timeout = time.monotonic() + gthread.DEFAULT_WORKER_DATA_TIMEOUT + self.cfg.keepalive
        self.pending_conns.append(conn)
        self.poller.register(
            conn.sock, selectors.EVENT_READ, partial(self.on_pending_socket_readable, conn)
        )

    def enqueue_req(self, conn: Any) -> None:
        """Serve the connection's request now. A request already read ahead (pipelined)
        comes back here from finish_request: queued, not recursed into."""
        self._ready.append(conn)
        if self._serving:
            return
        self._serving = True
        try:
            while self._ready:
                ready = self._ready.popleft()
                done: futures.Future[Any] = futures.Future()
                done.set_result(self.handle(ready))  # it answers every error itself
                self.finish_request(ready, done)
        finally:
            self._serving = False


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
            "worker_class": f"{__name__}.InlineWorker" if threads == 1 else "gthread",
            # off unless asked, as gunicorn's default: a line per request costs 3% of a
            # task completion's time in the worker (bench/http_completions.py)
            "accesslog": "-" if access_log else None,
            "timeout": 60,
            "graceful_timeout": 10,
            "child_exit": _child_exit,
        },
        scheduler,
    ).run()
