"""``async def`` jobs outside a worker's event loop: time limits on a coroutine, and running one
to its end from sync code (``perform_now``, inline mode).

A worker runs them on its pool's loop instead (``goodjob_mp.worker.event_loop``). Never touches
the database; imports nothing of the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from goodjob_mp.timeouts import JobTimeoutError

if TYPE_CHECKING:
    from goodjob_mp.jobs import Job

T = TypeVar("T")


@contextlib.asynccontextmanager
async def time_limit_async(seconds: float | None) -> AsyncIterator[None]:
    """Raise ``JobTimeoutError`` in this task if the block runs longer than ``seconds`` (None:
    no limit). Any other cancellation (shutdown) goes through as ``CancelledError``."""
    if seconds is None:
        yield
        return
    task = asyncio.current_task()
    assert task is not None
    fired = False

    def fire() -> None:
        nonlocal fired
        fired = True
        task.cancel()

    handle = asyncio.get_running_loop().call_later(seconds, fire)
    try:
        yield
    except asyncio.CancelledError:
        if not fired:
            raise
        if hasattr(task, "uncancel"):
            task.uncancel()  # ours, not the caller's: later awaits must not be cancelled too
        raise JobTimeoutError(f"the job ran longer than its timeout of {seconds:g} s") from None
    finally:
        handle.cancel()


def run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to its end and return its result (or raise its error). With no event loop
    on this thread: ``asyncio.run``; inside a running loop (an async web app in inline mode),
    on a short-lived thread of its own, since that loop cannot be re-entered."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: list[Any] = []

    def run() -> None:
        try:
            box.append((True, asyncio.run(coro)))
        except BaseException as exc:
            box.append((False, exc))

    thread = threading.Thread(target=run, name="gj-async-inline")
    thread.start()
    thread.join()
    ok, value = box[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


async def perform_now_async(instance: Job, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
    """``Job.perform_now`` of an ``async def perform``: callbacks, ``timeout``, ``rescue_from``."""
    try:
        async with time_limit_async(type(instance)._timeout_seconds):
            return await instance.run_callbacks_and_perform_async(args, kwargs)
    except Exception as error:
        if instance.rescue_with_handler(error):
            return None
        raise
