"""Instrumentation hooks: subscribe to what happens to jobs (for metrics, the dashboard, logs).

Events and their payload keys:

- ``enqueue``: job_id, job_class, queue_name, priority, scheduled_at; fired once the row is
  committed, never for a rolled-back enqueue (see ``goodjob_mp.enqueue.using_connection``)
- ``perform_start``: job_id, job_class, queue_name, executions
- ``perform_finish``: job_id, job_class, queue_name, duration, outcome, error
  (outcome: ``succeeded``, ``retried``, ``handled``, ``discarded``, ``failed``,
  ``retry_stopped``, ``interrupted``: an ``async def`` job cancelled at shutdown)
- ``retry``: job_id, job_class, error, wait
- ``discard``: job_id, job_class, queue_name, error
- ``interrupt``: job_id, job_class, queue_name, interrupts
- ``result_lost``: job_id, outcome, error: an attempt's result matched no row (the job was no
  longer locked by this process: handed back or taken by another worker), or the database refused
  both the result and the error record in its place, so nothing of it was recorded
- ``cron_enqueue``: cron_key, job_class, queue_name, cron_at: the cron leader enqueued a run
  (``cron_at`` None for a manual run); not fired for a run another leader had enqueued already

Subscribers run on the thread where the event happens (a worker thread for perform events, the
pool's event-loop thread for ``async def`` jobs) and must be quick. An exception in a subscriber
is logged and swallowed: instrumentation never breaks a job. Never called from a signal handler.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

EVENTS = (
    "enqueue",
    "perform_start",
    "perform_finish",
    "retry",
    "discard",
    "interrupt",
    "result_lost",
    "cron_enqueue",
)

log = logging.getLogger("goodjob_mp.events")
_subscribers: dict[str, tuple[Callable[..., None], ...]] = {name: () for name in EVENTS}
_lock = threading.Lock()


def subscribe(event: str, callback: Callable[..., None]) -> Callable[[], None]:
    """Call ``callback(**payload)`` on each ``event``; returns a function that unsubscribes."""
    if event not in _subscribers:
        raise ValueError(f"unknown event {event!r}; events are: {', '.join(EVENTS)}")
    with _lock:
        _subscribers[event] = (*_subscribers[event], callback)

    def unsubscribe() -> None:
        with _lock:
            _subscribers[event] = tuple(c for c in _subscribers[event] if c is not callback)

    return unsubscribe


def has_subscribers(event: str) -> bool:
    return bool(_subscribers[event])


def emit(event: str, **payload: Any) -> None:
    for callback in _subscribers[event]:
        try:
            callback(**payload)
        except Exception:
            log.exception("subscriber %r to %s failed", callback, event)
