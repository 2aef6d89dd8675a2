"""Per-job time limits: ``JobTimeoutError`` is raised inside a job that runs longer than its
``timeout``.

How it is delivered: one watchdog thread per process (started on first use, so after any fork;
the supervisor, which never performs jobs, never starts one) keeps the deadlines of the running
jobs. At a deadline it asks CPython to raise ``JobTimeoutError`` in the job's thread
(``PyThreadState_SetAsyncExc``). The interpreter raises it at that thread's next Python bytecode:

- a job blocked in one long C call (``time.sleep(600)``, a socket read, a database query) sees
  it only when that call returns, so give blocking calls their own limits as well (Postgres
  ``statement_timeout``, socket timeouts);
- job code that catches ``BaseException`` or ``JobTimeoutError`` can swallow it, as with Ruby's
  ``Timeout.timeout``.

Owns: the watchdog and the arm/disarm protocol that makes sure a late deadline never reaches the
next job run by the same thread. Never touches the database.
"""

from __future__ import annotations

import contextlib
import ctypes
import heapq
import itertools
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = ["JobTimeoutError", "time_limit"]

_local = threading.local()


class JobTimeoutError(TimeoutError):
    """A job ran longer than its ``timeout``; an error of that job like any other (so
    ``RetryOn(TimeoutError)`` retries it)."""

    def __init__(self, *args: object) -> None:
        if not args:
            # Raised by class from the watchdog: the message comes from the job's own thread.
            seconds = getattr(_local, "seconds", None)
            args = (f"the job ran longer than its timeout of {seconds:g} s",) if seconds else ()
        super().__init__(*args)


@dataclass(order=True)
class _Deadline:
    at: float
    seq: int
    thread_id: int = field(compare=False)
    active: bool = field(default=True, compare=False)
    fired: bool = field(default=False, compare=False)


def _raise_in(thread_id: int, exc_type: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc_type) if exc_type else None
    )


class _Watchdog:
    def __init__(self) -> None:
        # A job thread takes only the bare lock (its enter/exit are C calls, so an async
        # exception cannot land between acquiring and releasing); Condition's Python-level
        # methods run on the watchdog thread, or in arm() before any deadline of this job exists.
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.heap: list[_Deadline] = []
        self.seq = itertools.count()
        self.thread = threading.Thread(target=self._run, name="goodjob-timeouts", daemon=True)
        self.thread.start()

    def arm(self, seconds: float) -> _Deadline:
        deadline = _Deadline(time.monotonic() + seconds, next(self.seq), threading.get_ident())
        with self.cond:
            heapq.heappush(self.heap, deadline)
            self.cond.notify()
        return deadline

    def disarm(self, deadline: _Deadline) -> None:
        with self.lock:
            deadline.active = False
            fired = deadline.fired
        if fired:
            # Raised but perhaps not yet delivered: clear it so it cannot hit later code.
            _raise_in(deadline.thread_id, None)

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.heap or not self.heap[0].active:
                    if self.heap and not self.heap[0].active:
                        heapq.heappop(self.heap)
                        continue
                    self.cond.wait()
                first = self.heap[0]
                delay = first.at - time.monotonic()
                if delay > 0:
                    self.cond.wait(delay)
                    continue
                heapq.heappop(self.heap)
                if first.active:
                    first.active = False
                    first.fired = True
                    _raise_in(first.thread_id, JobTimeoutError)


_watchdog: tuple[int, _Watchdog] | None = None
_watchdog_lock = threading.Lock()


def _current_watchdog() -> _Watchdog:
    global _watchdog
    with _watchdog_lock:
        if _watchdog is None or _watchdog[0] != os.getpid():
            _watchdog = (os.getpid(), _Watchdog())  # a parent's thread does not exist after fork
        return _watchdog[1]


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise ``JobTimeoutError`` in this thread if the block runs longer than ``seconds``
    (None: no limit)."""
    if seconds is None:
        yield
        return
    watchdog = _current_watchdog()
    _local.seconds = seconds
    deadline = watchdog.arm(seconds)
    try:
        try:
            yield
        finally:
            watchdog.disarm(deadline)
    finally:
        # Again: the exception may have cut the first disarm short; it fires only once.
        watchdog.disarm(deadline)
        _local.seconds = None
