"""Polling helper for tests that wait on other threads or processes (bounded, never timed)."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(predicate: Callable[[], object], timeout: float = 20.0, step: float = 0.02) -> bool:
    """True as soon as ``predicate()`` is truthy; False after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False
