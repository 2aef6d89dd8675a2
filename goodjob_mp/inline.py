"""Inline execution: jobs performed on the calling thread, for tests and development.

- In ``inline`` execution mode, ``perform_later`` performs the job it enqueued, at once, and
  nothing else (as GoodJob's inline adapter). A job scheduled for later is only enqueued. Jobs
  that a performing job enqueues wait until it has finished and then run in the same call
  (GoodJob's InlineBuffer), so nothing recurses. A retry that is due at once runs again at
  once, as in GoodJob.
- ``perform_inline(queues)`` performs every due job of ``queues`` (``GoodJob.perform_inline``),
  e.g. after time travel in a test, or for jobs enqueued in another mode.

While it performs, the thread is a registered process like any other: its own
``good_job_processes`` row, advisory-locked on the thread's connection, so the jobs it locks
have an owner the sweep can judge. If the process dies mid-job, Postgres drops the lock and the
sweep hands the job back after ``dead_process_timeout``. The row goes when the call ends (or
stays, lock released, if a job escaped with its lock still set, for the sweep to clean up).

Imports no worker: ``import goodjob_mp`` stays light for processes that only enqueue.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from goodjob_mp.config import Settings, current_settings
from goodjob_mp.db import job_store, processes
from goodjob_mp.db.connection import thread_connection
from goodjob_mp.db.job_store import utcnow
from goodjob_mp.execution import close_interrupted_attempt, perform
from goodjob_mp.queues import parse_queue_selector

_local = threading.local()  # .pending: ids waiting while this thread performs; .process: (pid, id)

Claim = Callable[[psycopg.Connection, uuid.UUID], "job_store.ClaimedJob | None"]


def perform_enqueued(job_ids: Sequence[uuid.UUID]) -> int:
    """Perform just these jobs now, if they are due (inline mode's ``perform_later``).

    Called while this thread is performing an inline job, the ids wait their turn (they run
    after the current job, in the same call). Returns how many jobs were performed.
    """
    pending = getattr(_local, "pending", None)
    if pending is not None:
        pending.extend(job_ids)
        return 0
    if not job_ids:
        return 0  # nothing due: no need to register
    return _perform(list(job_ids), _claim_nothing, None)


def perform_inline(queues: str = "*", limit: int | None = None) -> int:
    """Perform every due job of ``queues`` on this thread; returns how many ran.

    Jobs enqueued by the jobs themselves run in the same call (not recursively). Called from
    inside an inline job, it does nothing and returns 0.
    """
    if getattr(_local, "pending", None) is not None:
        return 0
    selector = parse_queue_selector(queues)

    def claim_due(conn: psycopg.Connection, process_id: uuid.UUID) -> job_store.ClaimedJob | None:
        jobs = job_store.claim_jobs(conn, selector, process_id, 1)
        return jobs[0] if jobs else None

    # A retry that is due at once is claimed again by claim_due only if its (maybe moved) queue
    # is one of ``queues``: a drain never runs jobs outside the queues it was asked for.
    return _perform([], claim_due, limit, retry_at_once=False)


def _claim_nothing(conn: psycopg.Connection, process_id: uuid.UUID) -> None:
    return None


def _perform(
    pending: list[uuid.UUID], claim_next: Claim, limit: int | None, *, retry_at_once: bool = True
) -> int:
    settings = current_settings()
    conn = thread_connection()
    process_id = _process_id()
    _local.pending = pending
    processes.register_process(conn, process_id, _state(settings, process_id))
    count = 0
    try:
        while limit is None or count < limit:
            job = _claim_pending(conn, process_id, pending) or claim_next(conn, process_id)
            if job is None:
                break
            if job.prev_performed_at is not None:
                poison = close_interrupted_attempt(conn, job, settings)
                if poison is not None:
                    job_store.write_results(conn, [poison], process_id)
                    continue
            result = perform(job, settings)
            job_store.write_results(conn, [result], process_id)
            count += 1
            if retry_at_once and _retry_due_now(result):
                pending.insert(0, job.id)  # GoodJob's inline adapter retries while due
    finally:
        _local.pending = None
        try:
            processes.deregister_process(conn, process_id)
        except psycopg.Error:
            pass  # the connection is gone, and its lock with it: the sweep judges the row
    return count


def _retry_due_now(result: job_store.JobResult) -> bool:
    return not result.finished and result.retry_at is not None and result.retry_at <= utcnow()


def _claim_pending(
    conn: psycopg.Connection, process_id: uuid.UUID, pending: list[uuid.UUID]
) -> job_store.ClaimedJob | None:
    while pending:
        jobs = job_store.claim_jobs_by_id(conn, [pending.pop(0)], process_id)
        if jobs:
            return jobs[0]
    return None


def _process_id() -> uuid.UUID:
    """One process id per thread (each thread locks its row on its own connection)."""
    current = getattr(_local, "process", None)
    if current is None or current[0] != os.getpid():
        current = (os.getpid(), uuid.uuid4())
        _local.process = current
    return current[1]


def _state(settings: Settings, process_id: uuid.UUID) -> dict[str, Any]:
    """GoodJob's ``good_job_processes.state`` shape, for an inline performer."""
    return {
        "id": str(process_id),
        "pid": os.getpid(),
        "hostname": socket.gethostname(),
        "proctitle": os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python",
        "preserve_job_records": settings.preserve_job_records
        if isinstance(settings.preserve_job_records, (bool, str))
        else "callable",
        "retry_on_unhandled_error": settings.retry_on_unhandled_error,
        "cron_enabled": False,
        "schedulers": [],
        "execution_mode": "inline",
        "thread": threading.current_thread().name,
    }
