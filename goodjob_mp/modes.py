"""Async execution: workers inside the application's own process (e.g. a web process).

``start_async()`` starts one in-process worker per pool of the queue string; ``shutdown()``
stops them; ``restart()`` (GoodJob.restart) stops and starts them again, and after a fork starts
this process's own. Call ``start_async()`` or ``restart()`` after the fork (gunicorn's
``post_fork``): workers started in a parent are not carried into a child. With
``execution_mode = "async"`` a web server process starts them at its first enqueue by itself
(``goodjob_mp.async_autostart``). The other modes: ``external`` (enqueue only;
``goodjob-supervisor`` runs the jobs) and ``inline`` (tests; ``goodjob_mp.inline``).
"""

from __future__ import annotations

import logging
import os

from goodjob_mp.config import Settings, current_settings
from goodjob_mp.queues import parse_pools
from goodjob_mp.worker.worker import Worker

log = logging.getLogger("goodjob_mp.modes")

_async_workers: list[Worker] = []
_async_pid: int | None = None


def start_async(settings: Settings | None = None) -> list[Worker]:
    """Start in-process workers for every pool of ``settings.queues`` (idempotent per process)."""
    global _async_pid
    if _async_pid == os.getpid() and _async_workers:
        return list(_async_workers)
    _async_workers.clear()  # workers of a parent process are not ours to stop
    settings = settings or current_settings()
    for pool in parse_pools(settings.queues):
        _async_workers.append(Worker(settings, pool).start())
    _async_pid = os.getpid()
    return list(_async_workers)


def shutdown(timeout: float | None = None) -> bool:
    """Stop the async workers of this process; True if every running job finished in time."""
    global _async_pid
    if _async_pid != os.getpid():
        return True
    timeout = current_settings().shutdown_timeout if timeout is None else timeout
    for worker in _async_workers:
        worker.request_stop()
    done = all(worker.wait(timeout) for worker in _async_workers)
    _async_workers.clear()
    _async_pid = None
    return done


def restart(timeout: float | None = None) -> list[Worker]:
    """Stop this process's async workers (waiting up to ``timeout`` seconds, default the
    shutdown timeout, for running jobs) and start new ones; after a fork, start this process's
    own. Nothing happens (``[]``) unless workers were started before, here or in the parent,
    or ``execution_mode`` is ``"async"``."""
    if not _async_workers and current_settings().execution_mode != "async":
        return []
    shutdown(timeout)  # after a fork: nothing of ours to stop
    return start_async()
