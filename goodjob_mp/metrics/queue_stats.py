"""Queue depth and the age of the oldest waiting job per queue, for ``/metrics``.

Owns the one query and its cache: a scrape reads the database at most once per ``max_age``
seconds, under a statement timeout, so scrapes never load the database or stall the
supervisor's loop for long. The query reads the claim's partial index (unfinished, unlocked
rows: the runnable set), so its cost grows with the backlog, not with the table.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

QUEUE_STATS = """
SELECT queue_name, count(*), min(scheduled_at)
FROM good_jobs
WHERE finished_at IS NULL AND locked_by_id IS NULL AND scheduled_at <= %(now)s
GROUP BY queue_name
"""
STATEMENT_TIMEOUT = "SET LOCAL statement_timeout = '2s'"
CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class QueueStat:
    queue: str
    depth: int  # due, unlocked, unfinished jobs
    oldest_age: float  # seconds since the oldest of them was due


def read_queue_stats(conn: Any, now: dt.datetime) -> list[QueueStat]:
    """One query; ``now`` naive UTC (the columns are ``timestamp without time zone``)."""
    with conn.transaction():
        conn.execute(STATEMENT_TIMEOUT)
        rows = conn.execute(QUEUE_STATS, {"now": now}).fetchall()
    return [
        QueueStat(queue or "", int(count), max((now - oldest).total_seconds(), 0.0))
        for queue, count, oldest in rows
    ]


class CachedQueueStats:
    """``get()`` returns stats at most ``max_age`` seconds old; ``fetch`` returns None when the
    database is away (the last good answer is kept, marked stale by its age)."""

    def __init__(
        self,
        fetch: Callable[[], list[QueueStat] | None],
        max_age: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._max_age = max_age
        self._clock = clock
        self._value: list[QueueStat] = []
        self._at: float | None = None
        self.ok = False

    def get(self) -> list[QueueStat]:
        now = self._clock()
        if self._at is None or now - self._at >= self._max_age:
            self._at = now
            fresh = self._fetch()
            self.ok = fresh is not None
            if fresh is not None:
                self._value = fresh
        return self._value
