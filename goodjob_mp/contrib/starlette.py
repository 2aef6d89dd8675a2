"""Starlette (and FastAPI) helpers: async mode with the app's lifespan, the dashboard mounted.

    from starlette.applications import Starlette
    from goodjob_mp.contrib.starlette import lifespan, mount_dashboard

    app = Starlette(routes=[...], lifespan=lifespan)   # FastAPI(lifespan=lifespan) the same
    mount_dashboard(app, "/good_job")

``lifespan`` starts the async workers on startup when ``execution_mode`` is ``async`` (or always,
with ``GoodJobLifespan(async_mode=True)``) and stops them on shutdown, waiting up to
``shutdown_timeout`` for running jobs. With a lifespan of your own, nest it:
``async with lifespan(app): yield``. Each server process (uvicorn ``--workers``) starts its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from anyio import to_thread

from goodjob_mp.contrib import lifecycle

_DASHBOARDS = "goodjob_dashboards"


class GoodJobLifespan:
    """A Starlette ``lifespan``: ``Starlette(lifespan=GoodJobLifespan(...))``."""

    def __init__(
        self, *, async_mode: bool | None = None, shutdown_timeout: float | None = None
    ) -> None:
        self.async_mode = async_mode
        self.shutdown_timeout = shutdown_timeout

    @contextlib.asynccontextmanager
    async def __call__(self, app: Any = None) -> AsyncIterator[None]:
        await to_thread.run_sync(lifecycle.start, self.async_mode)
        try:
            yield
        finally:
            dashboards = getattr(getattr(app, "state", None), _DASHBOARDS, ())
            await to_thread.run_sync(lifecycle.stop, self.shutdown_timeout, dashboards)


lifespan = GoodJobLifespan()


def mount_dashboard(app: Any, path: str = "/good_job", **options: Any) -> Any:
    """Mount the dashboard (``goodjob_mp.web.create_app(**options)``: ``auth``, ``read_only``,
    ...) at ``path``; ``lifespan`` closes its pool on shutdown. Returns the dashboard app."""
    dashboard = lifecycle.create_dashboard(**options)
    app.mount(path, dashboard)
    if not hasattr(app.state, _DASHBOARDS):
        setattr(app.state, _DASHBOARDS, [])
    getattr(app.state, _DASHBOARDS).append(dashboard)
    return dashboard


__all__ = ["GoodJobLifespan", "lifespan", "mount_dashboard"]
