"""Flask extension: settings from ``app.config["GOOD_JOB"]``, async mode for the app's
process, the dashboard mounted.

    from flask import Flask
    from goodjob_mp.contrib.flask import GoodJob

    goodjob = GoodJob()

    def create_app():
        app = Flask(__name__)
        app.config["GOOD_JOB"] = {"execution_mode": "async", "queues": "mail:2;*"}
        goodjob.init_app(app)
        goodjob.mount_dashboard(app, "/good_job")   # needs the web extra and a2wsgi
        return app

``GOOD_JOB`` holds goodjob_mp settings, as ``goodjob_mp.configure()`` takes them. Flask has no
startup hook that runs after a forking server's fork, so in async mode the workers start with
the first request of each process (or earlier with ``goodjob.start()``, e.g. in gunicorn's
``post_worker_init``), and stop at interpreter exit or with ``goodjob.shutdown()``.
"""

from __future__ import annotations

import atexit
import os
import threading
from typing import Any

import goodjob_mp
from goodjob_mp.contrib import lifecycle


class GoodJob:
    def __init__(
        self,
        app: Any = None,
        *,
        async_mode: bool | None = None,
        shutdown_timeout: float | None = None,
    ) -> None:
        self.async_mode = async_mode
        self.shutdown_timeout = shutdown_timeout
        self.dashboards: list[Any] = []
        self._lock = threading.Lock()
        self._started_pid: int | None = None
        self._atexit = False
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Any) -> None:
        goodjob_mp.configure(**app.config.get("GOOD_JOB", {}))
        app.extensions["goodjob_mp"] = self
        app.before_request(self._start_once)
        if not self._atexit:
            atexit.register(self.shutdown)
            self._atexit = True

    def start(self) -> bool:
        """Start this process's async workers if in async mode (idempotent per process)."""
        with self._lock:
            if self._started_pid == os.getpid():
                return True
            started = lifecycle.start(self.async_mode)
            if started:
                self._started_pid = os.getpid()
            return started

    def shutdown(self, timeout: float | None = None) -> bool:
        """Stop the workers (running jobs get ``timeout``, default ``shutdown_timeout``) and
        close the mounted dashboards' pools; True if every running job finished in time."""
        with self._lock:
            self._started_pid = None
            dashboards, self.dashboards = self.dashboards, []
            return lifecycle.stop(self.shutdown_timeout if timeout is None else timeout, dashboards)

    def _start_once(self) -> None:
        if self._started_pid != os.getpid():
            self.start()

    def mount_dashboard(self, app: Any, path: str = "/good_job", **options: Any) -> Any:
        """Serve the dashboard (``goodjob_mp.web.create_app(**options)``) under ``path``
        through a2wsgi, beside the app's own routes. Returns the dashboard's ASGI app."""
        from a2wsgi import ASGIMiddleware
        from werkzeug.middleware.dispatcher import DispatcherMiddleware

        dashboard = lifecycle.create_dashboard(**options)
        mounts: dict[str, Any] = {path: ASGIMiddleware(dashboard)}
        app.wsgi_app = DispatcherMiddleware(app.wsgi_app, mounts)
        self.dashboards.append(dashboard)
        return dashboard


__all__ = ["GoodJob"]
