"""Polling helper for tests that wait on other threads or processes (bounded, never timed)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(predicate: Callable[[], object], timeout: float = 20.0, step: float = 0.02) -> bool:
    """True as soon as ``predicate()`` is truthy; False after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def backend_gone(observer: Any, pid: int, timeout: float = 20.0) -> bool:
    """True once server process ``pid`` has exited, as seen from the ``observer`` session.

    Closing a connection (or terminating its backend) returns before the server process is
    gone, and its session's advisory locks go with that process: wait for it before checking
    what the locks' release allows."""
    query = "SELECT 1 FROM pg_stat_activity WHERE pid = %s"
    return wait_for(lambda: observer.execute(query, (pid,)).fetchone() is None, timeout)
