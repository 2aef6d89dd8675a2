"""Jobs for the batch tests (tests/test_batches.py), importable by the workers they start."""

from __future__ import annotations

import os
import time

import goodjob_mp as gj
from tests.jobs_for_tests import GoneError, TransientError, record


class Item(gj.Job):
    """One batch member: ``mode`` says how it ends."""

    queue_name = "default"
    retry_on = [gj.RetryOn(TransientError, wait=0, attempts=3, jitter=0)]
    discard_on = [GoneError]

    def perform(self, n: int, mode: str = "ok") -> None:
        record("items", f"{n}:{mode}:{self.executions}")
        if mode.startswith("gate:"):  # wait until the test opens the gate (creates the file)
            while not os.path.exists(mode.removeprefix("gate:")):
                time.sleep(0.01)
        if mode == "whose":
            record("whose", str(self.batch.id if self.batch else None))
        if mode == "discard":
            raise GoneError(f"item {n} is gone")
        if mode == "flaky" and self.executions == 1:
            raise TransientError(f"item {n} failed once")


class ReportDone(gj.Job):
    """A callback: one line per perform, with what GoodJob passes (batch, {"event": ...})."""

    queue_name = "callbacks"

    def perform(self, batch: gj.Batch, params: dict) -> None:
        record(
            "callbacks",
            f"{batch.id} {params['event']} {batch.properties.get('user_id')} {batch.description}",
        )
