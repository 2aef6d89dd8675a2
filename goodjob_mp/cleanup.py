"""Cleanup of preserved job records: delete finished jobs (and their executions) older than
``cleanup_preserved_jobs_before_seconds_ago``, in bounded batches so no statement holds locks
for long, then the batches (``good_job_batches``) that finished before the same cut-off, as
GoodJob does; -1 disables it (nothing is ever deleted). Owns when cleanup runs (every
``cleanup_interval_jobs`` finished jobs or ``cleanup_interval_seconds``) and the SQL that does it.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time

import psycopg

from goodjob_mp.config import Settings
from goodjob_mp.db import batches
from goodjob_mp.db.job_store import utcnow

log = logging.getLogger("goodjob_mp.cleanup")

BATCH_SIZE = 1000
DISABLED = -1

# SKIP LOCKED: two processes cleaning at once split the work instead of waiting on each other.
DELETE_FINISHED_BATCH = """
WITH doomed AS (
    SELECT id, active_job_id FROM good_jobs
    WHERE finished_at < %(before)s {discarded}
    ORDER BY finished_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), executions AS (
    DELETE FROM good_job_executions
    WHERE active_job_id IN (SELECT active_job_id FROM doomed)
)
DELETE FROM good_jobs WHERE id IN (SELECT id FROM doomed)
"""
KEEP_DISCARDED = "AND error IS NULL"


def cleanup_preserved_jobs(
    conn: psycopg.Connection,
    settings: Settings,
    *,
    before_seconds_ago: float | None = None,
    include_discarded: bool | None = None,
) -> int:
    """Delete old finished jobs in batches; returns how many jobs were deleted.

    A cut-off of -1 means "disabled", not "one second in the future": nothing is deleted.
    """
    return cleanup_preserved(
        conn, settings, before_seconds_ago=before_seconds_ago, include_discarded=include_discarded
    )[0]


def cleanup_preserved(
    conn: psycopg.Connection,
    settings: Settings,
    *,
    before_seconds_ago: float | None = None,
    include_discarded: bool | None = None,
) -> tuple[int, int]:
    """``cleanup_preserved_jobs``, returning (jobs deleted, batches deleted). Batches go as in
    GoodJob: those finished before the cut-off, discarded ones only with discarded jobs."""
    seconds = (
        settings.cleanup_preserved_jobs_before_seconds_ago
        if before_seconds_ago is None
        else before_seconds_ago
    )
    if seconds == DISABLED:
        log.debug("cleanup: disabled (cleanup_preserved_jobs_before_seconds_ago = -1)")
        return 0, 0
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"before_seconds_ago = {seconds!r}: use seconds >= 0, or -1 to disable")
    discarded = settings.cleanup_discarded_jobs if include_discarded is None else include_discarded
    query = DELETE_FINISHED_BATCH.format(discarded="" if discarded else KEEP_DISCARDED)
    before = utcnow() - dt.timedelta(seconds=seconds)
    total = 0
    while True:
        count = conn.execute(query, {"before": before, "limit": BATCH_SIZE}).rowcount
        total += count
        if count < BATCH_SIZE:
            break
    if total:
        log.info("cleanup: deleted %d finished job(s) older than %s", total, before)
    gone = 0
    while True:
        count = batches.delete_finished(conn, before, discarded, BATCH_SIZE)
        gone += count
        if count < BATCH_SIZE:
            break
    if gone:
        log.info("cleanup: deleted %d finished batch(es) older than %s", gone, before)
    return total, gone


class CleanupSchedule:
    """Counts finished jobs and time; says when the next cleanup is due. As in GoodJob, a bound
    of False is off and -1 makes every batch of results due."""

    def __init__(self, settings: Settings) -> None:
        self.every_jobs = settings.cleanup_interval_jobs
        self.every_seconds = settings.cleanup_interval_seconds
        self._monotonic = time.monotonic
        self.jobs = 0
        self.last = self._monotonic()

    def due_by_time(self) -> bool:
        """For an idle process: only a positive seconds bound can come due with no jobs."""
        seconds = self.every_seconds
        if seconds is False or seconds <= 0 or self._monotonic() - self.last < seconds:
            return False
        self.jobs = 0
        self.last = self._monotonic()
        return True

    def record(self, finished: int) -> bool:
        self.jobs += finished
        every_jobs, every_seconds = self.every_jobs, self.every_seconds
        due_jobs = every_jobs is not False and (every_jobs == -1 or self.jobs >= every_jobs)
        due_time = every_seconds is not False and (
            every_seconds == -1 or self._monotonic() - self.last >= every_seconds
        )
        if due_jobs or due_time:
            self.jobs = 0
            self.last = self._monotonic()
            return True
        return False
