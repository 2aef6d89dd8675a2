"""Execution modes that run jobs inside the application's own process.

- ``inline`` (tests): ``perform_later`` performs due jobs at once on the calling thread;
  ``perform_inline()`` drains every due job (e.g. after time-travel in a test).
- ``async`` (a web process): ``start_async()`` starts one in-process worker per pool of the queue
  string; ``shutdown()`` stops them. Call ``start_async()`` after the fork (gunicorn's
  ``post_fork``): workers started in a parent are not carried into a child.
- ``external``: enqueue only; ``goodjob-supervisor`` runs the jobs.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid

from goodjob_mp.config import Settings, current_settings
from goodjob_mp.db import job_store
from goodjob_mp.db.connection import thread_connection
from goodjob_mp.execution import close_interrupted_attempt, perform
from goodjob_mp.queues import parse_pools, parse_queue_selector
from goodjob_mp.worker.worker import Worker

log = logging.getLogger("goodjob_mp.modes")

_inline = threading.local()
_inline_process_id: tuple[int, uuid.UUID] | None = None


def _process_id() -> uuid.UUID:
    global _inline_process_id
    if _inline_process_id is None or _inline_process_id[0] != os.getpid():
        _inline_process_id = (os.getpid(), uuid.uuid4())
    return _inline_process_id[1]


def perform_inline(queues: str = "*", limit: int | None = None) -> int:
    """Perform every due job of ``queues`` on this thread; returns how many ran.

    Jobs enqueued by the jobs themselves run in the same drain (not recursively).
    """
    if getattr(_inline, "active", False):
        return 0
    _inline.active = True
    try:
        return _drain(current_settings(), queues, limit)
    finally:
        _inline.active = False


def _drain(settings: Settings, queues: str, limit: int | None) -> int:
    selector = parse_queue_selector(queues)
    conn = thread_connection()
    process_id = _process_id()
    count = 0
    while limit is None or count < limit:
        jobs = job_store.claim_jobs(conn, selector, process_id, 1)
        if not jobs:
            break
        job = jobs[0]
        if job.prev_performed_at is not None:
            poison = close_interrupted_attempt(conn, job, settings)
            if poison is not None:
                job_store.write_results(conn, [poison], process_id)
                continue
        result = perform(job, settings)
        job_store.write_results(conn, [result], process_id)
        count += 1
    return count


# --- async ------------------------------------------------------------------------------------

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
