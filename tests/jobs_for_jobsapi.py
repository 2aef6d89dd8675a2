"""Jobs for the job-API tests (failure paths, timeouts, callbacks), importable by the worker
processes those tests start with ``--app tests.jobs_for_jobsapi``."""

from __future__ import annotations

import sys

import goodjob_mp as gj
from tests.jobs_for_tests import record


class ExitingJob(gj.Job):
    """Calls sys.exit() from job code: a failure of this job, never the worker's own exit."""

    queue_name = "jobsapi"

    def perform(self, code: int) -> None:
        record("exiting", str(self.executions))
        sys.exit(code)


class InterruptingJob(gj.Job):
    """Raises KeyboardInterrupt from job code; retried by its own rule."""

    queue_name = "jobsapi"
    retry_on = [gj.RetryOn(KeyboardInterrupt, wait=0.2, attempts=2, jitter=0)]

    def perform(self) -> None:
        record("interrupting", str(self.executions))
        raise KeyboardInterrupt


@gj.job(queue="jobsapi")
def jobsapi_ok(tag: str) -> None:
    record("ok", tag)


class NulMessageJob(gj.Job):
    """Fails with a message a Postgres text column would refuse as it is."""

    queue_name = "jobsapi"

    def perform(self) -> None:
        raise ValueError("bad\x00byte and a lone \udc80 surrogate")


class TimedOutJob(gj.Job):
    """Runs Python code past its timeout (small sleeps, so the exception is delivered)."""

    queue_name = "jobsapi"
    timeout = 0.3

    def perform(self, seconds: float) -> None:
        import time

        record("timed", f"start:{self.executions}")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(0.01)
        record("timed", f"end:{self.executions}")


class RetriedTimeoutJob(TimedOutJob):
    retry_on = [gj.RetryOn(TimeoutError, wait=0, attempts=2, jitter=0)]


@gj.job(queue="jobsapi", timeout=5)
def quick_after_timeout(tag: str) -> None:
    import time

    time.sleep(0.5)  # longer than the other job's limit: a late deadline must not hit us
    record("quick", f"{tag}:{gj.current_thread_running()}")
