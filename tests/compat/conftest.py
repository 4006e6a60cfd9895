"""The compatibility suite drives the HTTP API as tests/api does: its client."""

from tests.api.conftest import client

__all__ = ["client"]
