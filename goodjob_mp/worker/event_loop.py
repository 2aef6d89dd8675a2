"""One pool's asyncio event loop: where a worker runs its ``async def`` jobs.

Owns: the loop and its thread (started on the first async job, so after any fork, and never in
a pool that runs only sync jobs), the per-pool limit on coroutines running at once
(``async_concurrency``) and the shutdown policy: coroutines get until ``cancel_at`` to finish,
then are cancelled, and each cancelled one is recorded by the caller's ``fallback``
(``execution.interrupted_result``). Never touches the database.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

# Cancel this long before shutdown_timeout, so the interrupted results are written before the
# supervisor's SIGKILL at shutdown_timeout (a job the kill catches is still recorded as
# interrupted, by the next claim: see docs/architecture.md).
CANCEL_MARGIN_MAX = 1.0


def cancel_after(shutdown_timeout: float) -> float | None:
    """Seconds after the stop request at which running coroutines are cancelled; None: never
    (a negative shutdown_timeout waits for them as long as they take)."""
    if shutdown_timeout < 0:
        return None
    return max(shutdown_timeout - min(CANCEL_MARGIN_MAX, shutdown_timeout * 0.1), 0.0)


class EventLoopRunner:
    """Run coroutines on one loop thread, at most ``limit`` at a time."""

    def __init__(self, limit: int, name: str = "gj-event-loop") -> None:
        self.limit = limit
        self.name = name
        self._slots = threading.Semaphore(limit)
        self._cond = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._cancelling = False
        self.running = 0

    def submit(
        self,
        coro: Coroutine[Any, Any, Any],
        done: Callable[[Any], None],
        fallback: Callable[[], Any],
    ) -> None:
        """Start ``coro`` on the loop; ``done(result)`` is called on the loop thread when it
        ends (``done(fallback())`` if it was cancelled before it could produce one). Blocks the
        caller while ``limit`` coroutines run, so a full loop holds back the claim."""
        self._slots.acquire()
        loop = self._started()
        with self._cond:
            self.running += 1

        def finish(task: asyncio.Task[Any]) -> None:
            self._tasks.discard(task)
            try:
                result = task.result()
            except BaseException:  # cancelled before its body ran, so it recorded nothing
                result = fallback()
            try:
                done(result)
            finally:
                self._slots.release()
                with self._cond:
                    self.running -= 1
                    self._cond.notify_all()

        def start() -> None:
            task = loop.create_task(coro)
            self._tasks.add(task)
            task.add_done_callback(finish)
            if self._cancelling:
                task.cancel()

        loop.call_soon_threadsafe(start)

    def _started(self) -> asyncio.AbstractEventLoop:
        with self._cond:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=self._run, args=(loop,), name=self.name, daemon=True
                )
                self._loop, self._thread = loop, thread
                thread.start()
            return self._loop

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    def cancel_all(self) -> None:
        """Cancel every running coroutine, and every one submitted from now on."""
        loop = self._loop
        if loop is None:
            return

        def cancel() -> None:
            self._cancelling = True
            for task in list(self._tasks):
                task.cancel()

        loop.call_soon_threadsafe(cancel)

    def wait_idle(self, until: float | None) -> bool:
        """Wait until no coroutine runs, or ``time.monotonic()`` reaches ``until`` (None: no
        limit); True when none runs."""
        with self._cond:
            while self.running:
                timeout = None if until is None else until - time.monotonic()
                if timeout is not None and timeout <= 0:
                    return False
                self._cond.wait(timeout if timeout is None else min(timeout, 0.5))
            return True

    def close(self, cancel_at: float | None) -> None:
        """Shut down: wait for running coroutines until ``cancel_at``, cancel the rest, wait
        for their results, stop the loop and its thread."""
        if self._loop is None:
            return
        if not self.wait_idle(cancel_at):
            self.cancel_all()
            self.wait_idle(None)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join()
