"""Which GoodJob per-job advisory locks a worker's fetcher session holds, so a reconnect can take
them again, and (``advisory_locks = auto``) which claimed jobs hold none yet, so they can take one
when a GoodJob process appears.

The claim takes each job's session-level lock on the fetcher's connection (see
``job_store.claim_sql``). When that connection dies, Postgres drops every lock it held while the
jobs are still buffered or running here, and a Rails GoodJob in its advisory strategy (which
ignores ``locked_by_id``) could start them. After reconnecting, the fetcher re-takes the locks
of every job still held (``job_store.relock_jobs``); a job whose lock another session took in
the gap, or whose row is no longer ours, is revoked: if it has not started, the executor skips
it and the fetcher hands it back; if it is running, it is reported (it may be running twice).
The same happens to the jobs claimed without a lock when ``auto`` switches locking on: they take
their lock then (``job_store.relock_jobs`` again), or are revoked.

Two locks, always taken in this order:

- ``session``: held around every statement that takes or releases job locks on the fetcher's
  connection, and while the fetcher swaps in a new one, so a release never goes to a session
  that does not hold the lock (Postgres would log a warning) and a relock sees a settled set;
- the internal state lock: a few dict operations, taken by executors on the hot path.

Holds no connection; never crosses a fork (created in ``Worker.__init__``, used after start).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from goodjob_mp.db.job_store import ClaimedJob


@dataclass
class Revoked:
    """Jobs whose lock could not be taken again after a reconnect."""

    unstarted: list[ClaimedJob] = field(default_factory=list)  # skipped; hand them back
    running: list[ClaimedJob] = field(default_factory=list)  # cannot be stopped: report them


class HeldJobLocks:
    """The advisory-locked jobs this worker holds, from claim until their lock is released; with
    ``track_unlocked``, also the claimed jobs that hold no lock, until their result is written."""

    def __init__(self, *, track_unlocked: bool = False) -> None:
        self.session = threading.Lock()
        self._state = threading.Lock()
        self._track_unlocked = track_unlocked
        self._held: dict[uuid.UUID, ClaimedJob] = {}
        self._unlocked: dict[uuid.UUID, ClaimedJob] = {}
        self._started: set[uuid.UUID] = set()
        self._revoked: set[uuid.UUID] = set()

    def __len__(self) -> int:
        return len(self._held)

    def add(self, jobs: Iterable[ClaimedJob]) -> None:
        """Just claimed (locked ones: their locks are held by the fetcher's session)."""
        with self._state:
            for job in jobs:
                if job.advisory_locked:
                    self._held[job.id] = job
                elif self._track_unlocked:
                    self._unlocked[job.id] = job

    def start(self, job_id: uuid.UUID) -> bool:
        """An executor is about to perform the job; False: it was revoked, skip it."""
        # Empty collections are not searched: a uuid hashes in Python, and this runs per job.
        with self._state:
            if self._revoked and job_id in self._revoked:
                self._revoked.discard(job_id)
                return False
            if (self._held and job_id in self._held) or (
                self._unlocked and job_id in self._unlocked
            ):
                self._started.add(job_id)
            return True

    def forget(self, ids: Iterable[uuid.UUID]) -> list[uuid.UUID]:
        """Stop tracking ``ids``; those still held, whose lock the caller must release (with
        ``session`` held)."""
        out = []
        with self._state:
            for job_id in ids:
                if self._held and self._held.pop(job_id, None) is not None:
                    out.append(job_id)
                elif self._unlocked:
                    self._unlocked.pop(job_id, None)
                if self._started:
                    self._started.discard(job_id)
        return out

    def held_ids(self) -> list[uuid.UUID]:
        with self._state:
            return list(self._held)

    def unlocked_ids(self) -> list[uuid.UUID]:
        with self._state:
            return list(self._unlocked)

    def locked_now(self, ids: Iterable[uuid.UUID]) -> None:
        """These claimed-without-lock jobs have taken their lock (on the fetcher's session)."""
        with self._state:
            for job_id in ids:
                job = self._unlocked.pop(job_id, None)
                if job is not None:
                    self._held[job_id] = job

    def revoke(self, ids: Iterable[uuid.UUID]) -> Revoked:
        """These locks were not taken again: drop them; unstarted jobs are skipped from now on."""
        out = Revoked()
        with self._state:
            for job_id in ids:
                job = self._held.pop(job_id, None) or self._unlocked.pop(job_id, None)
                if job is None:
                    continue
                if job_id in self._started:
                    self._started.discard(job_id)
                    out.running.append(job)
                else:
                    self._revoked.add(job_id)
                    out.unstarted.append(job)
        return out
