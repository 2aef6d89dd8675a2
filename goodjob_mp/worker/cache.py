"""The scheduled-job cache: start times of future jobs, so they start on time without polling.

Holds at most ``max_cache`` times (the earliest win). Times only, never job ids: the claim that a
due time triggers still goes through SKIP LOCKED, so a stale entry costs one empty claim, never a
wrong run. Thread-safe: the listener adds, the fetcher pops.
"""

from __future__ import annotations

import heapq
import threading


class ScheduledCache:
    def __init__(self, max_cache: int) -> None:
        self.max_cache = max_cache
        self._times: list[float] = []  # epoch seconds, min-heap
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._times)

    def add(self, when: float) -> None:
        if self.max_cache <= 0:
            return
        with self._lock:
            if len(self._times) < self.max_cache:
                heapq.heappush(self._times, when)
            elif when < max(self._times):
                # Full: keep the earliest times; the latest will be found by a later poll.
                self._times.remove(max(self._times))
                heapq.heapify(self._times)
                heapq.heappush(self._times, when)

    def replace(self, times: list[float]) -> None:
        """Take a fresh load from the database, keeping what the listener added meanwhile (a
        NOTIFY that arrived while the load ran must not be forgotten until the next poll)."""
        if self.max_cache <= 0:
            return
        with self._lock:
            merged = sorted(set(times) | set(self._times))
            self._times = merged[: self.max_cache]

    def next_time(self) -> float | None:
        with self._lock:
            return self._times[0] if self._times else None

    def pop_due(self, now: float) -> int:
        """Forget every time <= now; return how many were due."""
        count = 0
        with self._lock:
            while self._times and self._times[0] <= now:
                heapq.heappop(self._times)
                count += 1
        return count
