"""The supervisor's timed work, each piece behind one small protocol (``Duty``).

Owns: the heartbeat of the supervisor's registry row, the dead-process sweep, the cron leader's
tick, the per-child memory check, systemd's READY/STATUS/WATCHDOG, and the probe's client
expiry (the check for rows with a NULL ``scheduled_at`` is in ``stuck_rows.py``). The arbiter
runs every duty whose ``next_deadline()`` has come, and waits in select() no longer than the
earliest one. Before every fork it calls ``before_fork()`` on each (no
connection may cross a fork), and ``close()`` on the way out.

A duty catches only the errors it expects (the database going away); anything else is a bug,
which the arbiter logs with its traceback and reports in the probe and status line, and the
duty stops (see ``Arbiter.run_duties``). Never called from a signal handler; never starts a
thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import psycopg

from goodjob_mp.db.connection import DatabaseUnavailableError

log = logging.getLogger("goodjob_mp.supervisor")

# A child must be this old before the memory limit applies (start-up allocates).
MEMORY_GRACE = 2.0
MEMORY_EVERY = 1.0
SWEEP_EVERY_MAX = 5.0
# What counts as "the database is away" for a duty: logged and retried, never a bug.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (psycopg.Error, DatabaseUnavailableError)


class Duty(Protocol):
    name: str

    def next_deadline(self) -> float | None:
        """``time.monotonic()`` when ``run()`` is next due; None: not now."""

    def run(self, now: float) -> None: ...

    def before_fork(self) -> None:
        """Drop connections and anything else that must not cross a fork."""

    def close(self) -> None: ...


class Every:
    """A base for duties that run on a fixed interval."""

    name = "every"
    interval = 1.0

    def __init__(self) -> None:
        self._next = 0.0

    def next_deadline(self) -> float | None:
        return self._next

    def run(self, now: float) -> None:
        self._next = now + self.interval
        self.act(now)

    def act(self, now: float) -> None:
        raise NotImplementedError

    def before_fork(self) -> None:
        pass

    def close(self) -> None:
        pass


class Heartbeat(Every):
    """Refresh the supervisor's ``good_job_processes`` row (and retake its lock if lost)."""

    name = "heartbeat"

    def __init__(self, registry: Any, interval: float) -> None:
        super().__init__()
        self.registry, self.interval = registry, interval

    def act(self, now: float) -> None:
        self.registry.heartbeat()

    def before_fork(self) -> None:
        pass  # the registry connection crosses forks on purpose: its row's lock stays held


class Sweep(Every):
    """Find processes that died anywhere and hand their jobs back."""

    name = "sweep"

    def __init__(self, registry: Any, dead_after: float) -> None:
        super().__init__()
        self.registry, self.dead_after = registry, dead_after
        self.interval = min(SWEEP_EVERY_MAX, max(dead_after / 2, 0.5))

    def act(self, now: float) -> None:
        self.registry.sweep(self.dead_after)


class Cron:
    """Drive ``goodjob_mp.cron.CronScheduler``: take or keep leadership, enqueue due runs."""

    name = "cron"

    def __init__(self, scheduler: Any, active: Callable[[], bool]) -> None:
        self.scheduler = scheduler
        self.active = active

    def next_deadline(self) -> float | None:
        if not self.active():
            return None
        wake = self.scheduler.next_wakeup()
        if wake is None:
            return None
        return time.monotonic() + max(wake - time.time(), 0.0)

    def run(self, now: float) -> None:
        try:
            self.scheduler.tick()
        except DATABASE_ERRORS as exc:
            log.warning("cron tick: the database is unavailable (%s); will retry", exc)

    def before_fork(self) -> None:
        # The leader's connection must not cross a fork: this releases the lock and the
        # connection, and the next tick() takes leadership again.
        self.scheduler.before_fork()

    def close(self) -> None:
        self.scheduler.close()


class MemoryCheck(Every):
    """Replace a child whose resident memory is over ``--max-memory`` megabytes."""

    name = "memory"
    interval = MEMORY_EVERY

    def __init__(
        self,
        limit_mb: int,
        children: Callable[[], list[Any]],
        over_limit: Callable[[Any, float], None],
    ) -> None:
        super().__init__()
        self.limit_mb = limit_mb
        self.children = children
        self.over_limit = over_limit

    def act(self, now: float) -> None:
        import psutil

        for child in self.children():
            if not child.serving or now - child.spawned_at < MEMORY_GRACE:
                continue
            try:
                rss_mb = psutil.Process(child.pid).memory_info().rss / (1024 * 1024)
            except psutil.Error:
                continue
            if rss_mb > self.limit_mb:
                self.over_limit(child, rss_mb)


class Systemd:
    """READY=1 once every pool serves (again after a rolling restart), STATUS= on each change,
    WATCHDOG=1 at half of WatchdogSec, and the process title that mirrors the status."""

    name = "systemd"

    def __init__(
        self,
        notifier: Any,
        pool_count: int,
        all_started: Callable[[], bool],
        settled: Callable[[], bool],
        status_line: Callable[[], str],
        healthy: Callable[[], bool],
        set_title: Callable[[str], None],
    ) -> None:
        self.notifier = notifier
        self.pool_count = pool_count
        self.all_started = all_started
        self.settled = settled  # not draining and no rolling restart under way
        self.status_line = status_line
        self.healthy = healthy
        self.set_title = set_title
        self.announced_ready = False
        self.last_status = ""
        self._next_watchdog = 0.0

    def next_deadline(self) -> float | None:
        # Readiness and status follow child reports, which wake the loop anyway.
        ready_changed = self.announced_ready != (self.settled() and self.all_started())
        if ready_changed or self.status_line() != self.last_status:
            return 0.0
        return self._next_watchdog if self.notifier.watchdog_interval() is not None else None

    def run(self, now: float) -> None:
        if self.settled():
            if self.all_started() and not self.announced_ready:
                self.announced_ready = True
                self.notifier.ready()
                log.info("all %d pool(s) are up", self.pool_count)
        else:
            self.announced_ready = False  # READY=1 again once the rolling restart is done
        status = self.status_line()
        if status != self.last_status:
            self.last_status = status
            self.notifier.status(status)
            self.set_title(f"goodjob-supervisor: {status}")
        interval = self.notifier.watchdog_interval()
        if interval is not None and now >= self._next_watchdog and self.healthy():
            self._next_watchdog = now + interval
            self.notifier.watchdog()

    def before_fork(self) -> None:
        pass

    def close(self) -> None:
        self.notifier.close()


class ProbeExpiry:
    """Close probe clients that are too slow (their sockets are served in the arbiter's wait)."""

    name = "probe"

    def __init__(self, probe: Any) -> None:
        self.probe = probe

    def next_deadline(self) -> float | None:
        return self.probe.next_deadline()

    def run(self, now: float) -> None:
        self.probe.expire()

    def before_fork(self) -> None:
        pass

    def close(self) -> None:
        self.probe.close()
