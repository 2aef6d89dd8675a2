"""Job definitions shared by tests and by the worker processes the tests start."""

from __future__ import annotations

import gc
import os
import time
from pathlib import Path

import goodjob_mp as gj

RECORD_DIR_ENV = "GJ_TEST_RECORD_DIR"
# A measured average job duration this short makes a worker's next claim take a whole batch
# into its buffer (goodjob_mp.worker.batching). Tests that need a buffer set it on the worker
# after a quick job: on a loaded box that job can measure slower than the claim's horizon.
SHORT_JOB_SECONDS = 0.001


def record(name: str, value: str = "") -> None:
    """Append a line to <record dir>/<name>: how tests see what jobs did, across processes."""
    folder = Path(os.environ[RECORD_DIR_ENV])
    with open(folder / name, "a") as fh:
        fh.write(f"{value}\n")


def lines(folder: Path, name: str) -> list[str]:
    path = folder / name
    return path.read_text().splitlines() if path.exists() else []


@gj.job(queue="default")
def noop() -> None:
    pass


@gj.job(queue="default")
def remember(tag: str, *, extra: str = "") -> None:
    record("remember", f"{tag}{extra}")


# Made when the app is imported: frozen in a child that tunes its collector after the import.
_MADE_AT_IMPORT: list[str] = []


@gj.job(queue="default")
def report_collector() -> None:
    """Records the performing process's garbage-collector settings (worker_gc_threshold): the
    young threshold, how many objects are frozen, and whether this module's own import-time
    objects are among them (a frozen object is in no generation ``gc.get_objects`` lists)."""
    frozen_at_import = not any(o is _MADE_AT_IMPORT for o in gc.get_objects())
    record("collector", f"{gc.get_threshold()[0]} {gc.get_freeze_count()} {frozen_at_import:d}")


@gj.job(queue="default")
def sleepy(tag: str, seconds: float) -> None:
    record("started", tag)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.02)
    record("finished", tag)


@gj.job(queue="default")
def gated(tag: str) -> None:
    """Runs until the test calls ``open_gate(tag)``: long enough for whatever it checks."""
    record("started", tag)
    gate = Path(os.environ[RECORD_DIR_ENV]) / f"gate-{tag}"
    while not gate.exists():
        time.sleep(0.02)
    record("finished", tag)


def open_gate(folder: Path, tag: str) -> None:
    (folder / f"gate-{tag}").touch()


class TransientError(Exception):
    pass


class GoneError(Exception):
    pass


class Flaky(gj.Job):
    queue_name = "default"
    retry_on = [gj.RetryOn(TransientError, wait=0.2, attempts=3, jitter=0)]
    discard_on = [GoneError]

    def perform(self, tag: str, failures: int) -> None:
        record("flaky", f"{tag}:{self.executions}")
        if self.executions <= failures:
            raise TransientError(f"temporary failure (attempt {self.executions})")


class Discarder(gj.Job):
    discard_on = [GoneError]

    def perform(self, record_id: int) -> None:
        raise GoneError(f"record {record_id} no longer exists")


class Boom(gj.Job):
    def perform(self) -> None:
        raise RuntimeError("boom")


# --- async def jobs (docs/asyncio.md) -----------------------------------------------------------


@gj.job(queue="default")
async def async_noop() -> None:
    pass


@gj.job(queue="default")
async def async_remember(tag: str) -> None:
    import asyncio

    await asyncio.sleep(0)
    record("remember", f"async:{tag}")


class AsyncGate(gj.Job):
    """Records its start, then waits (without blocking the loop) for ``<record dir>/open``."""

    queue_name = "default"

    async def perform(self, tag: str, seconds: float = 60.0) -> None:
        import asyncio

        record("started", tag)
        gate = Path(os.environ[RECORD_DIR_ENV]) / "open"
        deadline = time.monotonic() + seconds
        try:
            while not gate.exists() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        except asyncio.CancelledError:
            record("cancelled", tag)
            raise
        record("finished", tag)


@gj.job(queue="default")
def fan_out(count: int) -> None:
    """Enqueues ``count`` noop jobs from inside a worker (metrics count those enqueues)."""
    for _ in range(count):
        noop.perform_later()
