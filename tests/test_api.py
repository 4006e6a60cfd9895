"""The service answers over real HTTP (the API proper arrives with issue 3)."""

from __future__ import annotations

import json
import threading
import urllib.request

from werkzeug.serving import make_server

from api import create_app
from engine.storage import Database
from engine.tradeflow import Tradeflow


def test_health_over_http(db: Database) -> None:
    server = make_server("127.0.0.1", 0, create_app({"TRADEFLOW": Tradeflow(db)}))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{server.server_port}/api/v1/health", timeout=10
        ) as r:
            assert (r.status, json.load(r)["status"]) == (200, "ok")
    finally:
        server.shutdown()
