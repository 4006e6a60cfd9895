"""granian, embedded: `tradeflow serve` is the production server, not Flask's.

granian (a Rust HTTP server, hyper inside) reads and writes HTTP on threads of its own,
without the interpreter lock, while the worker's Python thread runs the app. gunicorn
parses HTTP in Python on that same thread, and a task completion took longer through it
(docs/performance.md). A connection that sends slowly, or nothing, holds no Python thread.

Each worker process builds its own app (``app`` below, after the fork), starts its
timers' scheduler and, on an SQLite file, the log's checkpointer, then serves with
``--threads`` Python threads (one by default: more mostly contend for the interpreter).
"""

from __future__ import annotations

import gc
import logging
import os
from pathlib import Path

from flask import Flask
from granian.constants import HTTPModes, Interfaces
from granian.server import Server
from prometheus_client import multiprocess

from api import create_app
from cli.health import serve_health
from engine.audit import anchors
from engine.timers.scheduler import Scheduler, Timers  # see engine/timers/__init__.py

GC_THRESHOLDS = (20_000, 20, 20)  # Python's defaults: (700, 10, 10)
SCHEDULER = "TRADEFLOW_SERVE_SCHEDULER"  # "1": every worker fires timers (set by `run`)
HEALTH = "TRADEFLOW_SERVE_HEALTH"  # "host:port" of the health thread's answer (set by `run`)
GRACE_SECONDS = 10  # a stopping worker's requests in flight, then it is killed


class RequestTarget(logging.Filter):
    """An access line's path with its query string, as the request line had it."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = record.args
        if isinstance(fields, dict) and fields.get("query_string"):
            record.args = {**fields, "path": f"{fields['path']}?{fields['query_string']}"}
        return True


def forget_dead_workers(directory: str | None = None) -> list[int]:
    """Drop the live-summed gauges of worker processes that are gone (granian respawns a
    worker that died; prometheus_client keeps a dead one's last values until told):
    the pids forgotten."""
    directory = directory or os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return []
    gone = []
    for path in Path(directory).glob("gauge_live*_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
            gone.append(pid)
        except PermissionError:
            continue  # alive, another user's
    return gone


def app() -> Flask:
    """The app of one worker process: granian calls this in each, after the fork (and
    after setting up its logging)."""
    logging.getLogger("granian.access").addFilter(RequestTarget())
    forget_dead_workers()
    built = create_app()
    flow = built.extensions["tradeflow"]
    flow.db.checkpoint_in_background()  # SQLite: the log's fsyncs leave the requests
    health = os.environ.get(HEALTH)
    if health:  # answers from a thread of its own (cli/health.py)
        host, port = health.rsplit(":", 1)
        serve_health(flow.db, host, int(port))
    if os.environ.get(SCHEDULER) == "1":  # every worker fires timers; they share the due
        Scheduler(Timers(flow.runtime), anchoring=anchors.configured()).start()
    # What start-up made (modules, the app, its caches) is never garbage: frozen, no
    # collection walks it again. A request makes thousands of short-lived objects
    # (Spiff's task tree, rows, dicts), so collect the young generation less often
    # (measured in docs/performance.md).
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    return built


# what a request brings: granian starts every request's WSGI environ from a copy of the
# process's environment (CGI's way), so a variable named like these would be in every
# request that lacks it (HTTP_AUTHORIZATION would sign every anonymous request in)
_REQUEST_KEYS = frozenset(
    {
        "AUTH_TYPE", "CONTENT_LENGTH", "CONTENT_TYPE", "HTTPS", "PATH_INFO", "QUERY_STRING",
        "REMOTE_ADDR", "REMOTE_HOST", "REMOTE_USER", "REQUEST_METHOD", "SCRIPT_NAME",
        "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL",
    }
)  # fmt: skip


def run(
    host: str,
    port: int,
    workers: int,
    threads: int,
    scheduler: bool = True,
    access_log: bool = False,
    health_port: int | None = None,
    health_host: str = "127.0.0.1",
) -> None:
    for key in [k for k in os.environ if k.startswith("HTTP_") or k in _REQUEST_KEYS]:
        del os.environ[key]  # the workers inherit the environment without them
    os.environ[SCHEDULER] = "1" if scheduler else "0"
    os.environ[HEALTH] = f"{health_host}:{health_port}" if health_port else ""
    Server(
        f"{__name__}:app",
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        factory=True,
        workers=workers,
        blocking_threads=threads,  # granian's default for WSGI is hundreds
        http=HTTPModes.http1,
        websockets=False,
        # off unless asked, as gunicorn's default: a line per request costs a share of
        # a task completion's time in the worker (docs/performance.md)
        log_access=access_log,
        respawn_failed_workers=True,  # a worker that died is replaced
        workers_kill_timeout=GRACE_SECONDS,
    ).serve()
