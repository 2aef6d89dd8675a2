"""Async mode for a web application's lifetime, shared by the Flask and Starlette/FastAPI
helpers: start the in-process workers with the app, stop them with it, and close the pools of
the dashboards mounted in it.

Whether to start follows ``execution_mode`` (``configure(execution_mode="async")`` or
``GOOD_JOB_EXECUTION_MODE=async``) unless the caller says, as GoodJob starts its async executors
only in async mode: the same app runs with ``goodjob-supervisor`` by changing one variable.
Blocking (connects, joins threads): the Starlette helper calls it from a worker thread.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from goodjob_mp.config import current_settings


def wants_async(async_mode: bool | None) -> bool:
    return current_settings().execution_mode == "async" if async_mode is None else async_mode


def start(async_mode: bool | None = None) -> bool:
    """Start this process's async workers (idempotent); False when not in async mode."""
    if not wants_async(async_mode):
        return False
    from goodjob_mp import modes

    modes.start_async()
    return True


def stop(timeout: float | None = None, dashboards: Iterable[Any] = ()) -> bool:
    """Stop the workers (running jobs get ``timeout``, default ``shutdown_timeout``) and close
    the dashboards' pools; True if every running job finished in time."""
    from goodjob_mp import modes

    done = modes.shutdown(timeout)
    for dashboard in dashboards:
        dashboard.state.dashboard.close()
    return done


def create_dashboard(**options: Any) -> Any:
    from goodjob_mp.web import create_app

    return create_app(**options)
