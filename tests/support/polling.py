"""Waiting in tests for something that happens within a bound (a revocation reaching every replica, rows reaching
the database)."""

from __future__ import annotations

import time
from collections.abc import Callable


def seconds_until(done: Callable[[], bool], limit: float = 1.0) -> float:
    """Seconds until `done()` is true, polled every 10 ms; fails once `limit` has passed."""
    start = time.monotonic()
    while not done():
        assert time.monotonic() - start < limit, f"not done after {limit} s"
        time.sleep(0.01)
    return time.monotonic() - start
