"""A supervisor duty that names unfinished jobs with no ``scheduled_at``: rows no claim takes.

GoodJob claims only rows with ``scheduled_at <= now`` (``Job.only_scheduled``), and so do our
claims (``job_store._RUNNABLE``): a row whose ``scheduled_at`` is NULL (written by hand, by a
script, or by another tool) waits forever without a word. The claim stays as GoodJob's, and its
indexes unchanged; instead, every ``Settings.null_scheduled_check_interval`` seconds (60; -1: no
check), this duty reads up to ``LIMIT`` such rows and logs one WARNING per row id, naming the
job, its class and queue and the fix. Each id is logged once per supervisor process (remembered
in a bounded set; past ``SEEN_MAX`` ids the oldest may be named again).

The read uses the supervisor's registry connection (as the sweep does; an outage is logged there
and the check retried next time), under a short statement timeout, and is served by the partial
index on unfinished rows by ``scheduled_at`` (``index_good_jobs_on_scheduled_at``, migration
0004; btree indexes NULLs, so ``IS NULL`` is an index condition), so it reads the NULL rows only,
never the table. Never writes.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import psycopg

from goodjob_mp.supervisor.duties import Every

log = logging.getLogger("goodjob_mp.supervisor")

LIMIT = 100
SEEN_MAX = 10_000

# Ids already named are left out, so each pass brings up to LIMIT rows not yet logged.
NULL_SCHEDULED = """
SELECT id, job_class, queue_name
FROM good_jobs
WHERE finished_at IS NULL AND scheduled_at IS NULL AND NOT (id = ANY(%(seen)s::uuid[]))
LIMIT %(limit)s
"""
STATEMENT_TIMEOUT = "SET LOCAL statement_timeout = '2s'"

FIX = "goodjob-supervisor jobs reschedule {id}"


def warning_text(job_id: uuid.UUID, job_class: str | None, queue_name: str | None) -> str:
    """The one line logged for a row; pure."""
    return (
        f"supervisor: job {job_id} ({job_class or '?'}, queue {queue_name or '-'}) has no "
        "scheduled_at and will never run (jobs run once scheduled_at <= now, as in GoodJob); "
        f"run it now with `{FIX.format(id=job_id)}`, or set it: UPDATE good_jobs SET "
        f"scheduled_at = now() AT TIME ZONE 'UTC' WHERE id = '{job_id}'"
    )


def find_null_scheduled(
    conn: psycopg.Connection, seen: list[uuid.UUID], limit: int = LIMIT
) -> list[tuple[uuid.UUID, str | None, str | None]]:
    """Up to ``limit`` unfinished rows with a NULL ``scheduled_at`` whose ids are not in
    ``seen``; none when the table is missing (the children report that)."""
    try:
        with conn.transaction():
            conn.execute(STATEMENT_TIMEOUT)
            rows = conn.execute(NULL_SCHEDULED, {"seen": seen, "limit": limit}).fetchall()
    except psycopg.errors.UndefinedTable:
        return []
    return [(row[0], row[1], row[2]) for row in rows]


class NullScheduledCheck(Every):
    """Log each unfinished job with a NULL ``scheduled_at`` once (see the module docstring)."""

    name = "null scheduled_at check"

    def __init__(self, registry: Any, interval: float, limit: int = LIMIT) -> None:
        """``interval``: ``Settings.null_scheduled_check_interval`` (> 0; at -1 the arbiter
        makes no check)."""
        super().__init__()
        self.registry, self.limit, self.interval = registry, limit, interval
        self._seen: dict[uuid.UUID, None] = {}  # insertion-ordered: the oldest go first

    def act(self, now: float) -> None:
        seen = list(self._seen)
        rows = self.registry.read(
            self.name, lambda conn: find_null_scheduled(conn, seen, self.limit)
        )
        for job_id, job_class, queue_name in rows or ():
            log.warning("%s", warning_text(job_id, job_class, queue_name))
            self._remember(job_id)

    def _remember(self, job_id: uuid.UUID) -> None:
        self._seen[job_id] = None
        while len(self._seen) > SEEN_MAX:
            del self._seen[next(iter(self._seen))]
