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
