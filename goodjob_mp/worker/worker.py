"""The worker: one pool of the queue string, served by ``max_threads`` threads in this process.

This is the unit the supervisor forks, and what ``start_async()`` runs inside a web process.
Threads and what each owns:

- fetcher: its own connection; holds the process row's advisory lock and heartbeat; claims jobs
  in adaptive batches into a bounded local buffer; wakes on NOTIFY, on the scheduled-job cache,
  on polls and when the buffer runs low. With GoodJob's per-job advisory locks on, they live on
  this connection too; a reconnect takes them again (see job_locks).
- executors (``max_threads``): take jobs from the buffer and perform them; no connection of
  their own unless a job enqueues.
- completer: its own connection; writes results in batches (one statement per batch) and runs
  periodic cleanup.
- listener: its own connection, ``LISTEN good_job``; reconnects with back-off.

Everything is created in ``start()``, after any fork, so nothing is shared across a fork.
Claimed-but-unstarted jobs are handed back on shutdown without counting as interrupted.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import math
import os
import queue
import socket
import threading
import time
import uuid
from typing import Any

import psycopg

from goodjob_mp import cleanup, events, features
from goodjob_mp.config import Settings
from goodjob_mp.db import job_store, processes
from goodjob_mp.db.connection import connect
from goodjob_mp.db.migrate import ensure_current
from goodjob_mp.db.start_journal import StartJournal
from goodjob_mp.execution import (
    Prepared,
    begin,
    close_interrupted_attempt,
    interrupted_result,
    run_async,
    run_sync,
    set_thread_shutdown_check,
)
from goodjob_mp.features import pauses as pause_policy
from goodjob_mp.features.known_classes import UnknownClassLog
from goodjob_mp.queues import PoolSpec, parse_pools
from goodjob_mp.worker.batching import claim_limit, ewma
from goodjob_mp.worker.cache import ScheduledCache
from goodjob_mp.worker.event_loop import EventLoopRunner, cancel_after
from goodjob_mp.worker.job_locks import HeldJobLocks, Revoked
from goodjob_mp.worker.pause_watch import PauseWatch
from goodjob_mp.worker.result_writer import ResultWriter

log = logging.getLogger("goodjob_mp.worker")

RESULT_BATCH_MAX = 1000
RECONNECT_BACKOFF_MAX = 10.0
IDLE_CLEANUP_CHECK = 5.0


def _epoch(naive_utc: dt.datetime) -> float:
    return naive_utc.replace(tzinfo=dt.timezone.utc).timestamp()


class Worker:
    """Serve one pool: ``Worker(settings, pool).start()`` … ``shutdown(timeout)``."""

    def __init__(
        self,
        settings: Settings,
        pool: PoolSpec | None = None,
        *,
        process_id: uuid.UUID | None = None,
        name: str | None = None,
    ) -> None:
        self.settings = settings
        self.pool = pool or parse_pools(settings.queues)[0]
        self.selector = self.pool.selector
        self.max_threads = self.pool.thread_count(settings.max_threads)
        self.process_id = process_id or uuid.uuid4()
        self.name = name or f"goodjob-worker: {self.pool.text}"
        self._conditions = features.claim_conditions(settings, self.selector)
        self._skips_unknown = any(c.name == "known_classes" for c in self._conditions)
        self._unknown = UnknownClassLog()
        self._next_probe = 0.0
        self._claim_statement = job_store.ClaimStatement(self.selector, self._conditions)
        self._pauses = PauseWatch()  # whether the claim adds the pause filter: see pause_watch
        self._paused_statement = job_store.ClaimStatement(
            self.selector, [*self._conditions, pause_policy.PAUSED]
        )
        self._work: queue.SimpleQueue[job_store.ClaimedJob | None] = queue.SimpleQueue()
        self._results: queue.SimpleQueue[job_store.JobResult | None] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._need_capacity = False
        self._low_water = 0
        self._busy = 0
        self._busy_lock = threading.Lock()
        self._avg_duration: float | None = None
        self._cache = ScheduledCache(settings.max_cache)
        self._threads: list[threading.Thread] = []
        # async def jobs: one event loop per pool, its thread started by the first such job.
        self._loop = EventLoopRunner(settings.async_concurrency, "gj-event-loop")
        self._stop_at: float | None = None
        self._executors: list[threading.Thread] = []
        self._fetch_conn: psycopg.Connection | None = None
        # Per-job advisory locks held by the fetcher's session (auto: and the claimed jobs that
        # would need one if a GoodJob process appeared).
        self._locks = HeldJobLocks(track_unlocked=settings.advisory_locks == "auto")
        self._journal: StartJournal | None = None
        self._writer = ResultWriter(self.process_id, self.name, connect)
        self.listener_connected = False
        self.started = False
        self.last_activity = time.monotonic()
        self.succeeded = 0
        self.errored = 0
        self.empty_claims = 0
        self.loop_passes = 0  # fetcher waits (tests: an idle fetcher must not spin)
        self.claimed = 0
        self.fatal_error: BaseException | None = None

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> Worker:
        """Connect, check the schema, register, start the threads. Errors raise here."""
        conn = connect()
        try:
            ensure_current(conn)
            processes.register_process(conn, self.process_id, self.state())
            self._choose_locking(conn)
        except BaseException:
            conn.close()
            raise
        self._fetch_conn = conn
        self._journal = StartJournal(self.process_id)
        # Executors first: a fetcher that stops at once (its completer failed) puts one
        # sentinel per executor, so every executor must already be counted.
        for i in range(self.max_threads):
            self._executors.append(self._spawn(self._execute_loop, f"gj-executor-{i}"))
        self._spawn(self._fetch_loop, "gj-fetcher")
        self._spawn(self._complete_loop, "gj-completer")
        if self.settings.enable_listen_notify:
            self._spawn(self._listen_loop, "gj-listener")
        self.started = True
        log.info("%s started (process %s)", self.name, self.process_id)
        return self

    def _spawn(self, target: Any, name: str) -> threading.Thread:
        thread = threading.Thread(target=self._guard(target), name=name, daemon=True)
        thread.start()
        self._threads.append(thread)
        return thread

    def _guard(self, target: Any) -> Any:
        def run() -> None:
            try:
                target()
            except BaseException as exc:  # a bug or a dead database: stop the worker cleanly
                log.exception("%s: thread %s failed", self.name, threading.current_thread().name)
                self.fatal_error = exc
                self.request_stop()

        return run

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def request_stop(self) -> None:
        """Stop claiming; running jobs go on; buffered jobs are handed back."""
        if self._stop_at is None:
            self._stop_at = time.monotonic()
        self._stopping.set()
        self._wake.set()

    def shutdown(self, timeout: float | None = None) -> bool:
        """Stop and wait up to ``timeout`` seconds (None or -1: forever). True if all finished."""
        self.request_stop()
        return self.wait(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None or timeout < 0 else time.monotonic() + timeout
        for thread in self._threads:
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0)
            thread.join(remaining)
            if thread.is_alive():
                return False
        return True

    def join_stopped(self, timeout: float | None = None) -> bool:
        """Block until the worker has fully stopped (after ``request_stop`` or a fatal error)."""
        return self._stopped.wait(timeout)

    @property
    def busy(self) -> int:
        return self._busy

    @property
    def coroutines(self) -> int:
        """``async def`` jobs running on the pool's event loop now."""
        return self._loop.running

    @property
    def buffered(self) -> int:
        return self._work.qsize()

    # --- fetcher ----------------------------------------------------------------------------

    def _fetch_loop(self) -> None:
        conn = self._fetch_conn
        assert conn is not None
        poll = self.settings.poll_interval
        next_poll = time.monotonic() + poll if poll > 0 else float("inf")
        beat = self.settings.heartbeat_interval
        # -1 disables the heartbeat: the row is written at start only (liveness is its lock).
        next_beat = time.monotonic() + beat if beat > 0 else float("inf")
        work_maybe = True
        try:
            # Inside the try: whatever fails here, the executors still get their sentinels.
            self._load_cache(conn)
            self._probe_unknown(conn)
            while not self._stopping.is_set():
                if conn.broken:
                    # A statement failed on the session (here or the completer's lock release):
                    # reconnect now, so the job locks it held are taken again at once.
                    conn = self._reconnect(conn)
                now = time.monotonic()
                if now >= next_beat:
                    conn = self._heartbeat(conn)
                    next_beat = now + beat
                if now >= next_poll:
                    work_maybe = True
                    next_poll = now + poll
                    self._load_cache(conn)
                    self._probe_unknown(conn)
                    self._pauses.stale = True  # a Rails pause sends no NOTIFY: re-read it
                if self._pauses.stale:
                    self._recheck_pauses(conn)
                if self._cache.pop_due(time.time()):
                    work_maybe = True
                if work_maybe:
                    want = claim_limit(
                        self.max_threads,
                        self._busy,
                        self._work.qsize(),
                        self._avg_duration,
                        self.settings.claim_buffer,
                        self.settings.queue_select_limit,
                    )
                    if want > 0:
                        self._wake.clear()
                        got, conn = self._claim(conn, want)
                        if got >= want:
                            continue  # likely more waiting: claim again as room allows
                        work_maybe = False
                    else:
                        # Buffer full: sleep until the executors drain it to the low-water mark.
                        self._low_water = max(self._work.qsize() // 2, 0)
                        self._need_capacity = True
                timeout = min(next_poll, next_beat) - time.monotonic()
                cached = self._cache.next_time()
                if cached is not None:
                    timeout = min(timeout, cached - time.time())
                self.loop_passes += 1
                # Nothing timed ahead (no polling, no heartbeat, no cache): wait for a wake-up.
                if self._wake.wait(max(timeout, 0.0) if math.isfinite(timeout) else None):
                    self._wake.clear()
                    work_maybe = True
                self._need_capacity = False
        finally:
            self._finish_fetching(conn)

    def _claim(self, conn: psycopg.Connection, want: int) -> tuple[int, psycopg.Connection]:
        try:
            if self._pauses.stale:
                self._pauses.refresh(conn)
            jobs = job_store.claim_jobs(
                conn, self.selector, self.process_id, want, statement=self._statement()
            )
        except psycopg.OperationalError as exc:
            log.warning("%s: claim failed (%s); reconnecting", self.name, exc)
            return 0, self._reconnect(conn)
        if not jobs:
            self.empty_claims += 1
            if time.monotonic() >= self._next_probe:
                self._probe_unknown(conn)
            return 0, conn
        self.claimed += len(jobs)
        self.last_activity = time.monotonic()
        self._locks.add(jobs)
        for job in jobs:
            if job.prev_performed_at is not None and not self._record_interrupt(conn, job):
                continue
            self._work.put(job)
        return len(jobs), conn

    def _recheck_pauses(self, conn: psycopg.Connection) -> None:
        """Re-read the pauses; hand back buffered jobs that a pause now covers (claimed before
        it, not started). The buffer is emptied first, so no executor can start one meanwhile."""
        self._pauses.refresh(conn)
        if not self._pauses.active or self._work.qsize() == 0:
            return
        buffered: list[job_store.ClaimedJob | None] = []
        while True:
            try:
                buffered.append(self._work.get_nowait())
            except queue.Empty:
                break
        jobs = [job for job in buffered if job is not None]
        try:
            paused = self._pauses.paused_among(conn, [job.id for job in jobs])
            back = [job for job in jobs if job.id in paused]
            if back:
                job_store.release_unstarted(conn, back, self.process_id)
                job_store.unlock_jobs(conn, [j.id for j in back if j.advisory_locked])
                log.info("%s: handed back %d buffered job(s) now paused", self.name, len(back))
        except psycopg.Error as exc:
            log.warning("%s: could not recheck buffered jobs against pauses: %s", self.name, exc)
            paused = set()
        for job in buffered:
            if job is None or job.id not in paused:
                self._work.put(job)

    def _record_interrupt(self, conn: psycopg.Connection, job: job_store.ClaimedJob) -> bool:
        """Close the cut-off attempt; False when the job is discarded as poison instead."""
        poison = close_interrupted_attempt(conn, job, self.settings)
        if poison is not None:
            poison.advisory_locked = job.advisory_locked
            self._results.put(poison)
            return False
        return True

    def _choose_locking(self, conn: psycopg.Connection) -> None:
        """advisory_locks: take GoodJob's per-job lock in the claim when asked to, or (auto) while
        a GoodJob process shares the database; rebuilds the claim statement when that changes."""
        mode = self.settings.advisory_locks
        wanted = mode == "always" or (mode == "auto" and job_store.foreign_worker_seen(conn))
        if wanted != self._claim_statement.advisory_locks:
            if mode == "auto":
                log.info(
                    "%s: %s GoodJob's per-job advisory locks (%s)",
                    self.name,
                    "taking" if wanted else "no longer taking",
                    "a GoodJob process shares the database" if wanted else "no GoodJob process",
                )
            self._claim_statement = job_store.ClaimStatement(
                self.selector, self._conditions, advisory_locks=wanted
            )
            self._paused_statement = job_store.ClaimStatement(
                self.selector, [*self._conditions, pause_policy.PAUSED], advisory_locks=wanted
            )
            if wanted:
                # Jobs claimed before GoodJob appeared take its lock now (or are revoked).
                self._take_locks(conn, self._locks.unlocked_ids())

    def _statement(self) -> job_store.ClaimStatement:
        return self._paused_statement if self._pauses.active else self._claim_statement

    def _probe_unknown(self, conn: psycopg.Connection) -> None:
        """Find classes the known-classes condition leaves waiting: log each once, and wake
        the claim for any whose module could be imported (it is known from now on)."""
        if not self._skips_unknown:
            return
        self._next_probe = time.monotonic() + 1.0
        try:
            names = job_store.unknown_job_classes(
                conn, self.selector, self._claim_statement.params()["known_classes"]
            )
        except psycopg.OperationalError:
            return
        if names and self._unknown.saw(names, self.name):
            self._wake.set()

    def _load_cache(self, conn: psycopg.Connection) -> None:
        if self.settings.max_cache <= 0:
            return
        try:
            times = job_store.upcoming_scheduled_times(conn, self.selector, self.settings.max_cache)
        except psycopg.OperationalError:
            return
        self._cache.replace([_epoch(t) for t in times])

    def _heartbeat(self, conn: psycopg.Connection) -> psycopg.Connection:
        try:
            if not processes.heartbeat(conn, self.process_id, self.state()):
                # Our row was removed (judged dead while stalled): re-register.
                processes.register_process(conn, self.process_id, self.state())
            if self.settings.advisory_locks == "auto":
                self._choose_locking(conn)
        except psycopg.OperationalError as exc:
            log.warning("%s: heartbeat failed (%s); reconnecting", self.name, exc)
            return self._reconnect(conn)
        return conn

    def _reconnect(self, old: psycopg.Connection) -> psycopg.Connection:
        try:
            old.close()
        except Exception:
            pass
        delay = 0.2
        while not self._stopping.is_set():
            conn = None
            try:
                conn = connect()
                processes.register_process(conn, self.process_id, self.state())
                self._relock(conn)
                return conn
            except Exception as exc:
                if conn is not None:
                    conn.close()
                log.warning(
                    "%s: database unavailable (%s); retrying in %.1fs", self.name, exc, delay
                )
                self._stopping.wait(delay)
                delay = min(delay * 2, RECONNECT_BACKOFF_MAX)
        return old

    def _relock(self, conn: psycopg.Connection) -> None:
        """On a new session: take again the job locks the lost one held, then make it the
        fetcher's connection. A job we cannot re-lock is revoked: skipped and handed back if it
        has not started, reported if it is running."""
        with self._locks.session:
            lost = job_store.relock_jobs(conn, self._locks.held_ids(), self.process_id)
            self._fetch_conn = conn
            revoked = self._locks.revoke(lost)
        held = len(self._locks)
        if held or lost:
            log.info("%s: reconnected; re-took %d job lock(s), %d lost", self.name, held, len(lost))
        self._settle_revoked(conn, revoked)
        if self._claim_statement.advisory_locks:
            self._take_locks(conn, self._locks.unlocked_ids())

    def _take_locks(self, conn: psycopg.Connection, ids: list[uuid.UUID]) -> None:
        """Claimed without GoodJob's lock (before locking was on): take it now."""
        if not ids:
            return
        with self._locks.session:
            lost = job_store.relock_jobs(conn, ids, self.process_id)
            self._locks.locked_now(set(ids) - set(lost))
            revoked = self._locks.revoke(lost)
        log.info("%s: took GoodJob's lock on %d job(s) already claimed", self.name, len(ids))
        self._settle_revoked(conn, revoked)

    def _settle_revoked(self, conn: psycopg.Connection, revoked: Revoked) -> None:
        if revoked.unstarted:
            released = job_store.release_unstarted(conn, revoked.unstarted, self.process_id)
            log.warning(
                "%s: %d unstarted job(s) could not take GoodJob's lock again (another session "
                "has it, or the row is no longer ours); handed back %d, not performing them here",
                self.name,
                len(revoked.unstarted),
                released,
            )
        for job in revoked.running:
            log.error(
                "%s: job %s could not take GoodJob's lock again (another session has it, or "
                "its row is no longer ours) while it runs here: it may be running twice",
                self.name,
                job.id,
            )

    def _finish_fetching(self, conn: psycopg.Connection) -> None:
        unstarted: list[job_store.ClaimedJob] = []
        while True:
            try:
                job = self._work.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                unstarted.append(job)
        for _ in self._executors:
            self._work.put(None)
        if unstarted:
            try:
                released = job_store.release_unstarted(conn, unstarted, self.process_id)
                with self._locks.session:
                    job_store.unlock_jobs(conn, self._locks.forget(j.id for j in unstarted))
                log.info("%s: handed back %d unstarted job(s)", self.name, released)
            except psycopg.Error as exc:
                log.error("%s: could not hand back unstarted jobs: %s", self.name, exc)
        threading.Thread(target=self._after_executors, name="gj-closer", daemon=True).start()

    def _after_executors(self) -> None:
        after = cancel_after(self.settings.shutdown_timeout)
        cancel_at = None if after is None else (self._stop_at or time.monotonic()) + after
        for thread in self._executors:
            # An executor may wait for a coroutine slot: cancelling frees it.
            while thread.is_alive():
                thread.join(0.2)
                if cancel_at is not None and time.monotonic() >= cancel_at:
                    self._loop.cancel_all()
        self._loop.close(cancel_at)
        self._results.put(None)

    # --- executors --------------------------------------------------------------------------

    def _execute_loop(self) -> None:
        set_thread_shutdown_check(self._stopping.is_set)
        work = self._work
        results = self._results
        settings = self.settings
        journal = self._journal
        assert journal is not None
        while True:
            job = work.get()
            if job is None:
                return
            if not self._locks.start(job.id):
                continue  # its lock was lost (or never taken) in time: handed back, not ours
            with self._busy_lock:
                self._busy += 1
            if self._need_capacity and work.qsize() <= self._low_water:
                self._need_capacity = False
                self._wake.set()
            t0 = time.perf_counter()
            # Before the body: after a kill -9 only journaled jobs count as interrupted.
            journal.started(job.id)
            try:
                step = begin(job, settings)
                if isinstance(step, Prepared) and step.is_async:
                    self._submit_async(step)  # to the pool's event loop; the thread goes on
                    result = None
                else:
                    result = step if isinstance(step, job_store.JobResult) else run_sync(step)
            except BaseException as exc:  # a bug in our code, not the job's: keep the job
                log.exception("internal error performing job %s", job.id)
                now = job_store.utcnow()
                result = job_store.JobResult(
                    job.id,
                    now,
                    now,
                    False,
                    retry_at=now,
                    error=f"{type(exc).__name__}: {exc}",
                    error_event=1,
                    outcome="retried",
                )
            if result is not None:
                self._avg_duration = ewma(self._avg_duration, time.perf_counter() - t0)
                result.advisory_locked = job.advisory_locked
                results.put(result)
            with self._busy_lock:
                self._busy -= 1
            if work.qsize() == 0:
                self._wake.set()  # a thread is free and nothing is buffered: claim now

    def _submit_async(self, step: Prepared) -> None:
        job = step.job
        t0 = time.perf_counter()

        def done(result: job_store.JobResult) -> None:
            # Claim sizing follows how long jobs take, coroutines included.
            self._avg_duration = ewma(self._avg_duration, time.perf_counter() - t0)
            result.advisory_locked = job.advisory_locked
            self._results.put(result)
            if self._work.qsize() == 0:
                self._wake.set()

        self._loop.submit(
            run_async(step), done, lambda: interrupted_result(job, step.started, step.settings)
        )

    # --- completer --------------------------------------------------------------------------

    def _complete_loop(self) -> None:
        conn: psycopg.Connection | None = None
        cleaner = cleanup.CleanupSchedule(self.settings)
        try:
            conn = self._connect_completer()
            done = False
            while not done:
                try:
                    # Wake now and then when idle: cleanup_interval_seconds is due by time alone.
                    item = self._results.get(timeout=IDLE_CLEANUP_CHECK)
                except queue.Empty:
                    if cleaner.due_by_time():
                        conn = self._cleanup(conn)
                    continue
                batch: list[job_store.JobResult] = []
                if item is None:
                    done = True
                else:
                    batch.append(item)
                while len(batch) < RESULT_BATCH_MAX:
                    try:
                        item = self._results.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        done = True
                        break
                    batch.append(item)
                if batch:
                    conn = self._write_guarded(conn, batch)
                    if cleaner.record(sum(r.finished for r in batch)):
                        conn = self._cleanup(conn)
        except BaseException as exc:
            # Recorded before `_stopped` is set below: whoever join_stopped() wakes sees why
            # (the guard, which logs it, runs only after this finally).
            self.fatal_error = exc
            raise
        finally:
            # Without a connection the row stays: the sweep hands our jobs back once we are gone.
            deregistered = conn is not None and self._deregister(conn)
            if conn is not None:
                conn.close()
            if self._journal is not None:
                # Kept when the row stays: whoever hands its jobs back still needs it.
                self._journal.close(remove=deregistered)
            if self._fetch_conn is not None:
                self._close_fetch_session(self._fetch_conn)
            self._stopped.set()

    def _connect_completer(self) -> psycopg.Connection:
        """The completer's connection. An unreachable database is waited out (the results of
        jobs that run meanwhile wait in the queue); anything else ends the completer, which
        still reports the worker stopped."""
        delay = 0.2
        warned = False
        while True:
            try:
                return connect()
            except psycopg.OperationalError as exc:
                if not warned:
                    log.warning("%s: completer cannot connect (%s); retrying", self.name, exc)
                    warned = True
                time.sleep(delay)
                delay = min(delay * 2, RECONNECT_BACKOFF_MAX)

    def _write_guarded(
        self, conn: psycopg.Connection, batch: list[job_store.JobResult]
    ) -> psycopg.Connection:
        """The completer ends only after the executors (on the sentinel they leave), so every
        result of a job that ran is written before the worker reports stopped: a bug while
        writing one batch stops the worker, with its traceback, but not the writing."""
        try:
            return self._write(conn, batch)
        except Exception as exc:
            log.exception(
                "%s: writing %d result(s) failed (a bug): stopping; their jobs stay locked "
                "until handed back",
                self.name,
                len(batch),
            )
            self.fatal_error = exc
            self.request_stop()
            return conn  # if it broke, the next write reconnects

    def _write(
        self, conn: psycopg.Connection, batch: list[job_store.JobResult]
    ) -> psycopg.Connection:
        # Retries transient failures; one refused row fails alone (see result_writer). With job
        # locks in the batch, the write and forgetting them are one step for a reconnecting
        # fetcher: it never re-takes the lock of a job whose result is written (and so never
        # mistakes our own finished row for one someone else took).
        locked = self.settings.advisory_locks != "never"
        with self._locks.session if locked else contextlib.nullcontext():
            conn, lost = self._writer.write(conn, batch)
            self._release_locks(batch)
        lost_ids = {r.id for r in lost}
        for result in lost:
            self._report_lost(result)
        for result in batch:
            if lost_ids and result.id in lost_ids:
                continue
            if result.error is None:
                self.succeeded += 1
            else:
                self.errored += 1
        self.last_activity = time.monotonic()
        return conn

    def _report_lost(self, result: job_store.JobResult) -> None:
        self.errored += 1
        log.error(
            "%s: the result of job %s (%s) was NOT recorded: the job is no longer locked by this "
            "process (handed back as dead, or taken by another worker); it may run again",
            self.name,
            result.id,
            result.outcome,
        )
        if events.has_subscribers("result_lost"):
            events.emit("result_lost", job_id=result.id, outcome=result.outcome, error=result.error)

    def _release_locks(self, batch: list[job_store.JobResult]) -> None:
        """After the results commit (``_locks.session`` held): release their advisory locks on
        the session that holds them (the fetcher's; psycopg serialises the two threads' use of
        it)."""
        # Only locks still held: one revoked in a reconnect is not this session's. Every id:
        # a job claimed without a lock may have taken one since (auto).
        ids = self._locks.forget(r.id for r in batch)
        conn = self._fetch_conn
        if not ids or conn is None:
            return
        try:
            job_store.unlock_jobs(conn, ids)
        except psycopg.Error as exc:
            # A lost session has dropped its locks already; the fetcher reconnects on seeing
            # its connection broken and re-takes the locks of the jobs still held.
            log.warning("%s: releasing %d job lock(s) failed: %s", self.name, len(ids), exc)
            self._wake.set()

    def _cleanup(self, conn: psycopg.Connection) -> psycopg.Connection:
        try:
            cleanup.cleanup_preserved_jobs(conn, self.settings)
        except psycopg.Error as exc:
            log.warning("%s: cleanup failed: %s", self.name, exc)
            if conn.broken:
                return connect()
        return conn

    def _close_fetch_session(self, conn: psycopg.Connection) -> None:
        """Release the fetcher session's advisory locks (the process lock: it registered there),
        then close it: closing alone frees them only once the server process has exited, which
        can be after ``shutdown`` returns."""
        with self._locks.session:
            if not (conn.closed or conn.broken):
                with contextlib.suppress(psycopg.Error):
                    conn.execute("SELECT pg_advisory_unlock_all()")
            conn.close()

    def _deregister(self, conn: psycopg.Connection) -> bool:
        try:
            processes.deregister_process(conn, self.process_id)
        except psycopg.Error:
            return False
        return True

    # --- listener ---------------------------------------------------------------------------

    def _listen_loop(self) -> None:
        delay = 0.2
        while not self._stopping.is_set():
            try:
                conn = connect()
            except Exception as exc:
                self.listener_connected = False
                log.warning("%s: listener cannot connect (%s)", self.name, exc)
                self._stopping.wait(delay)
                delay = min(delay * 2, RECONNECT_BACKOFF_MAX)
                continue
            delay = 0.2
            try:
                conn.execute(f"LISTEN {job_store.NOTIFY_CHANNEL}")
                self.listener_connected = True
                self._wake.set()  # catch up on anything sent while we were not listening
                while not self._stopping.is_set():
                    for notify in conn.notifies(timeout=0.5):
                        self._on_notify(notify.payload)
            except psycopg.OperationalError as exc:
                log.warning("%s: listener lost its connection (%s)", self.name, exc)
            finally:
                self.listener_connected = False
                conn.close()

    def _on_notify(self, payload: str) -> None:
        try:
            data = json.loads(payload) if payload else {}
            queue_name = data.get("queue_name")
            scheduled = data.get("scheduled_at")
        except (ValueError, AttributeError):
            self._wake.set()
            return
        self._pauses.on_notify(data)
        if queue_name is not None and not self.selector.matches(queue_name):
            return
        when = _parse_time(scheduled)
        if when is not None and when > time.time() + 0.005:
            self._cache.add(when)
        self._wake.set()

    # --- registry state ---------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """GoodJob's ``good_job_processes.state`` shape."""
        try:
            import psutil

            memory = psutil.Process().memory_info().rss // 1024
        except Exception:
            memory = None
        try:
            import setproctitle

            title = setproctitle.getproctitle()
        except Exception:
            title = self.name
        busy = self._busy
        return {
            "id": str(self.process_id),
            "pid": os.getpid(),
            "hostname": socket.gethostname(),
            "proctitle": title,
            "memory": memory,
            "preserve_job_records": self.settings.preserve_job_records
            if isinstance(self.settings.preserve_job_records, (bool, str))
            else "callable",
            "retry_on_unhandled_error": self.settings.retry_on_unhandled_error,
            "cron_enabled": False,
            "schedulers": [
                {
                    "name": (
                        f"goodjob_mp.Worker(queues={self.selector} max_threads={self.max_threads})"
                    ),
                    "queues": str(self.selector),
                    "max_threads": self.max_threads,
                    "active_threads": busy,
                    "available_threads": self.max_threads - busy,
                    "max_cache": self.settings.max_cache,
                    "active_cache": len(self._cache),
                    "available_cache": self.settings.max_cache - len(self._cache),
                    "total_executions_count": self.succeeded + self.errored,
                    "succeeded_executions_count": self.succeeded,
                    "errored_executions_count": self.errored,
                    "empty_executions_count": self.empty_claims,
                }
            ],
            "database_connection_pool": {"size": 3, "active": 3},
            "total_succeeded_executions_count": self.succeeded,
            "total_errored_executions_count": self.errored,
            "listener_connected": self.listener_connected,
        }


def _parse_time(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.timestamp()
