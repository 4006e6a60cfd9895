"""Logging a failure that repeats: one line per kind of failure per interval, with the
count of those left out, not a traceback per request (a database outage under load
wrote 608k lines in 17 s)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

INTERVAL = 60.0  # seconds


@dataclass
class _Seen:
    since: float
    left_out: int = 0


class Throttled:
    """Logs the first failure of each kind in an interval (with its traceback, if given)
    and counts the rest; the next line of that kind says how many were left out."""

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval = interval
        self._clock = clock
        self._seen: dict[str, _Seen] = {}
        self._lock = threading.Lock()

    def error(self, kind: str, message: str, error: BaseException | None = None) -> bool:
        """Log ``message`` unless a failure of ``kind`` was logged within the interval;
        whether it was logged."""
        now = self._clock()
        with self._lock:
            seen = self._seen.get(kind)
            if seen is not None and now - seen.since < self.interval:
                seen.left_out += 1
                return False
            left_out = seen.left_out if seen is not None else 0
            self._seen[kind] = _Seen(now)
        if left_out:
            message += f" ({left_out} more like it left out of the log in {self.interval:g} s)"
        self.logger.error("%s", message, exc_info=error)
        return True
