"""The HTTP API: thin blueprints over the engine (issue 3 grows it)."""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify
from sqlalchemy import text

from engine.tradeflow import Tradeflow


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app; nothing happens at import time."""
    app = Flask(__name__)
    app.config.update(config or {})
    flow: Tradeflow = app.config.get("TRADEFLOW") or Tradeflow()
    app.extensions["tradeflow"] = flow

    @app.get("/health")
    def health() -> Any:
        with flow.db.reading() as session:
            session.execute(text("SELECT 1"))
        return jsonify(status="ok")

    return app
