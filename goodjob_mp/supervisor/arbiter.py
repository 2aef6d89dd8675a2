"""The supervisor (arbiter): forks one child per pool and keeps them running.

Owns the one loop of the supervisor process, the signal table and the child state machine's
transitions (the states themselves are in ``children.py``). Each pass: take queued signals and
call ``handle_<name>`` for each, then the housekeeping verbs in fixed order — ``murder`` (kill
children past their deadline), ``reap`` (collect exited children, hand their jobs back),
``manage`` (decide which children should run: rolling restart, idle timeout), ``spawn`` (start
what should run), ``run_duties`` (timed work: heartbeat, sweep, cron, memory, systemd, probe;
see ``duties.py``) — then ``wait`` in select() on the signal wake-up pipe, every child's status
pipe and the probe sockets. Reporting (status line, probe, registry state) is in ``report.py``.

Never does work in a signal handler (handlers append to a queue; ``signal.set_wakeup_fd`` wakes
the loop), never starts a thread, and holds no database connection at the moment of a fork
but the registry's: that one stays open across forks, so the row's advisory lock is never
released (the child lets go of it untouched, ``Registry.after_fork_in_child``); every duty's
``before_fork()`` drops its own connections. Only pids it forked are waited for: an embedded
PostgreSQL started by this process is never reaped here.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import select
import signal
import socket
import sys
import threading
import time
import traceback
import uuid
from typing import Any, NoReturn

from goodjob_mp.backoff import restart_backoff_seconds
from goodjob_mp.config import Settings
from goodjob_mp.queues import parse_pools
from goodjob_mp.supervisor import child as child_mod
from goodjob_mp.supervisor import duties as duty_mod
from goodjob_mp.supervisor import reaping, report, stuck_rows
from goodjob_mp.supervisor.children import (
    Child,
    ChildState,
    ExitKind,
    PoolSlot,
    classify_exit,
    describe_status,
)
from goodjob_mp.supervisor.maintenance import Registry

log = logging.getLogger("goodjob_mp.supervisor")

# A pool whose child fails this many times in a row before reporting ready stops the supervisor.
MAX_BOOT_FAILURES = 3
# A child that ran at least this long before crashing starts its pool's back-off afresh.
STABLE_AFTER = 30.0
# Restarts of a pool waiting for its database are at most this far apart.
UNREACHABLE_BACKOFF_CAP = 5.0
# Children that report every second; a starting child reports only once it is ready.
SILENCE_WATCHED = (ChildState.RUNNING, ChildState.RETIRING, ChildState.STOPPING)
# A child over --max-memory gets this long (at most --shutdown-timeout) to finish its jobs.
MEMORY_DRAIN_SECONDS = 5.0
MAX_QUEUED_SIGNALS = 32
LOOP_TICK = 1.0

# The signal table: what each signal means is the handle_<name> method of that name.
SIGNAL_NAMES: dict[int, str] = {
    signal.SIGTERM: "term",
    signal.SIGINT: "int",
    signal.SIGQUIT: "quit",
    signal.SIGHUP: "hup",
    signal.SIGCHLD: "chld",
    signal.SIGUSR1: "usr1",
    signal.SIGUSR2: "usr2",
    signal.SIGTTIN: "ttin",
    signal.SIGTTOU: "ttou",
}


class SupervisorError(RuntimeError):
    """The supervisor cannot go on; the message says why and what to fix."""


class Arbiter:
    """The supervisor loop; ``run()`` returns the process exit code."""

    def __init__(
        self,
        settings: Settings,
        *,
        daemon_handle: Any = None,
        cli_flags: dict[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self.cli_flags = cli_flags
        self.pools = [
            PoolSlot(i, pool, pool.thread_count(settings.max_threads))
            for i, pool in enumerate(parse_pools(settings.queues))
        ]
        self.process_id = uuid.uuid4()
        self.pid = os.getpid()
        self.signals: list[int] = []
        self.children: dict[int, Child] = {}
        self.draining = False
        self.drain_deadline: float | None = None
        self.exit_code = 0
        self.rolling: list[int] = []
        self.daemon_handle = daemon_handle
        self.registry = Registry(self.process_id, self.state)
        self.probe: Any = None
        self.metrics: Any = None
        self.cron: Any = None
        self.notifier: Any = None
        self.duties: list[Any] = []
        self.failed_duties: dict[str, str] = {}
        self.started_at = time.monotonic()
        self._warned_threads: list[str] = []
        self._wake_r, self._wake_w = -1, -1

    # --- the loop -----------------------------------------------------------------------------

    def run(self) -> int:
        try:
            self.start()
            while not (self.draining and not self.children):
                self.handle_signals()
                self.murder()
                self.reap()
                self.manage()
                self.spawn()
                self.run_duties()
                self.wait()
        finally:
            self.stop()
        return self.exit_code

    def start(self) -> None:
        self._install_signals()
        from goodjob_mp.supervisor.sdnotify import SystemdNotifier

        self.notifier = SystemdNotifier()
        child_mod.set_title(f"goodjob-supervisor: supervising {len(self.pools)} pools")
        if self.settings.probe_port is not None:
            from goodjob_mp.supervisor.probe import ProbeServer

            self.probe = ProbeServer(
                self.settings.probe_port, self.settings.probe_bind, status=self.probe_status
            )
            log.info("probe server listening on port %d (%s)", self.probe.port, self.probe.host)
            self._setup_metrics()
        self.registry.open()  # DB unreachable: fails here, before anything is forked
        self._setup_cron()
        self.duties = self._make_duties()
        if self.daemon_handle is not None:
            self.daemon_handle.ready()
        log.info(
            "goodjob-supervisor %d starting %d pool(s): %s",
            self.pid,
            len(self.pools),
            "; ".join(f"{s.pool.text} ({s.threads} threads)" for s in self.pools),
        )

    def _setup_metrics(self) -> None:
        """Before the first fork: the children must inherit the multiprocess directory."""
        from goodjob_mp.metrics import exporter

        if not self.settings.enable_metrics:
            return
        if not exporter.available():
            log.info("metrics: /metrics is off (pip install 'goodjob-mp[metrics]' to serve it)")
            return
        self.metrics = exporter.SupervisorMetrics(
            lambda: report.metric_pools(self.pools), self._queue_stats
        )
        self.metrics.start()
        self.probe.metrics = self.metrics.render

    def _queue_stats(self) -> Any:
        from goodjob_mp.db.job_store import utcnow
        from goodjob_mp.metrics.queue_stats import read_queue_stats

        return self.registry.read("queue stats", lambda conn: read_queue_stats(conn, utcnow()))

    def _make_duties(self) -> list[Any]:
        s = self.settings
        made: list[Any] = []
        if s.heartbeat_interval > 0:  # -1: the row is written at start only (its lock is liveness)
            made.append(duty_mod.Heartbeat(self.registry, s.heartbeat_interval))
        if s.dead_process_timeout > 0:
            made.append(duty_mod.Sweep(self.registry, s.dead_process_timeout))
        if s.null_scheduled_check_interval > 0:
            made.append(
                stuck_rows.NullScheduledCheck(self.registry, s.null_scheduled_check_interval)
            )
        if self.cron is not None:
            made.append(duty_mod.Cron(self.cron, active=lambda: not self.draining))
        if s.max_memory is not None:
            made.append(
                duty_mod.MemoryCheck(
                    s.max_memory, lambda: list(self.children.values()), self.over_memory
                )
            )
        made.append(
            duty_mod.Systemd(
                self.notifier,
                len(self.pools),
                all_started=self.all_started,
                settled=lambda: not self.draining and not self.rolling,
                status_line=self.status_line,
                healthy=lambda: self.exit_code == 0,
                set_title=child_mod.set_title,
            )
        )
        if self.probe is not None:
            made.append(duty_mod.ProbeExpiry(self.probe))
        return made

    def stop(self) -> None:
        # Normal paths reach here with no children; an exception must not leave orphans behind.
        for child in list(self.children.values()):
            self._signal(child, signal.SIGKILL)
        while self.children:
            self.reap()
            time.sleep(0.05)
        self.registry.deregister()
        for duty in reversed(self.duties):
            try:
                duty.close()
            except Exception:  # shutting down: one duty's failure must not skip the others
                log.exception("closing the %s duty failed", duty.name)
        if not self.duties:
            for closer in (self.probe, self.notifier):
                if closer is not None:
                    closer.close()
        signal.set_wakeup_fd(-1)
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        if self.metrics is not None:
            self.metrics.close()

    # --- signals ------------------------------------------------------------------------------

    def _install_signals(self) -> None:
        self._wake_r, self._wake_w = os.pipe()
        for fd in (self._wake_r, self._wake_w):
            os.set_blocking(fd, False)
            os.set_inheritable(fd, False)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        for signum in SIGNAL_NAMES:
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: object) -> None:
        if len(self.signals) < MAX_QUEUED_SIGNALS:
            self.signals.append(signum)

    def handle_signals(self) -> None:
        while self.signals:
            signum = self.signals.pop(0)
            getattr(self, f"handle_{SIGNAL_NAMES[signum]}")()

    def handle_term(self) -> None:
        self.begin_drain(self.settings.shutdown_timeout, "TERM")

    def handle_int(self) -> None:
        self.begin_drain(self.settings.shutdown_timeout, "INT")

    def handle_quit(self) -> None:
        self.begin_drain(0, "QUIT")

    def handle_hup(self) -> None:
        if self.draining:
            return
        log.info("HUP: restarting the children one pool at a time")
        self.notifier.reloading()
        self.rolling += [s.index for s in self.pools if s.index not in self.rolling]

    def handle_chld(self) -> None:
        pass  # reap() runs on every pass

    def handle_usr1(self) -> None:
        """Reopen --log-file (after logrotate moved it), here and in every child."""
        path = self.settings.log_file
        if not path:
            log.info("USR1: no --log-file to reopen; ignored")
            return
        from goodjob_mp.supervisor.logfiles import reopen_output

        if reopen_output(path):
            log.info("USR1: reopened log file %s", path)
        for child in self.children.values():
            self._signal(child, signal.SIGUSR1)

    def handle_usr2(self) -> None:
        log.info("USR2: ignored (goodjob-supervisor gives it no meaning; HUP reloads)")

    def handle_ttin(self) -> None:
        log.info("TTIN: ignored (pools and threads come from --queues; change it and restart)")

    def handle_ttou(self) -> None:
        log.info("TTOU: ignored (pools and threads come from --queues; change it and restart)")

    def begin_drain(self, timeout: float, why: str) -> None:
        now = time.monotonic()
        deadline = None if timeout < 0 else now + timeout
        if self.draining:
            # A second signal can only shorten the wait (QUIT after TERM means: now).
            if deadline is not None and (
                self.drain_deadline is None or deadline < self.drain_deadline
            ):
                self.drain_deadline = deadline
                for child in self.children.values():
                    child.kill_at = _earlier(child.kill_at, deadline)
            return
        log.info(
            "%s: stopping %d child(ren); running jobs get %s",
            why,
            len(self.children),
            "as long as they need" if deadline is None else f"{timeout:g}s",
        )
        self.draining = True
        self.drain_deadline = deadline
        self.rolling = []
        self.notifier.stopping()
        for child in self.children.values():
            self.terminate(child, "shutdown", deadline)

    # --- the child state machine: every transition goes through these -----------------------

    def mark_ready(self, child: Child) -> None:
        child.move(ChildState.RUNNING, time.monotonic())
        slot = self.pools[child.pool_index]
        if slot.current is child:
            if slot.unreachable:
                log.info("pool %s: the database is reachable again", slot.pool.text)
            slot.boot_failures = 0
            slot.unreachable = 0
            slot.last_error = None

    def retire(self, child: Child, why: str) -> None:
        """Replace ``child``: it serves until its successor is ready (rolling restart)."""
        child.move(ChildState.RETIRING, time.monotonic(), why)
        slot = self.pools[child.pool_index]
        if slot.current is child:
            slot.current = None

    def terminate(self, child: Child, why: str, kill_at: float | None) -> None:
        """TERM: stop claiming, finish running jobs; SIGKILL at ``kill_at`` (None: never)."""
        if child.state not in (ChildState.STARTING, ChildState.RUNNING, ChildState.RETIRING):
            child.kill_at = _earlier(child.kill_at, kill_at)
            return
        child.move(ChildState.STOPPING, time.monotonic(), why)
        child.kill_at = kill_at
        slot = self.pools[child.pool_index]
        if slot.current is child and not self.draining:
            slot.current = None
        self._signal(child, signal.SIGTERM)

    def kill(self, child: Child, why: str) -> None:
        if child.state in (ChildState.KILLED, ChildState.EXITED):
            return
        child.move(ChildState.KILLED, time.monotonic(), why)
        slot = self.pools[child.pool_index]
        if slot.current is child and not self.draining:
            slot.current = None
        self._signal(child, signal.SIGKILL)

    def exited(self, child: Child, status: int) -> None:
        child.exit_status = status
        child.move(ChildState.EXITED, time.monotonic())
        slot = self.pools[child.pool_index]
        current = slot.current is child
        if current:
            slot.current = None
        kind = classify_exit(child, status, draining=self.draining, current=current)
        how = describe_status(status)
        if child.error and not child.ready:
            how += f" before it was ready: {child.error}"
        level = logging.INFO if kind in (ExitKind.EXPECTED, ExitKind.CLEAN) else logging.WARNING
        if kind is ExitKind.UNREACHABLE and slot.unreachable:
            level = logging.DEBUG  # one line per outage, not one per retry
        log.log(level, "child %d (pool %s) exited: %s", child.pid, slot.pool.text, how)
        if kind is ExitKind.EXPECTED:
            return
        now = time.monotonic()
        if kind is ExitKind.CLEAN:
            # Someone stopped this child cleanly (e.g. TERM sent to it): not a crash.
            slot.crashes = 0
            slot.restart_at = now
            log.info("pool %s: its child stopped cleanly; starting a new one", slot.pool.text)
            return
        if kind is ExitKind.UNREACHABLE:
            # Not the app's fault: retry with capped back-off, never stop the supervisor for it.
            slot.unreachable += 1
            slot.restart_at = now + restart_backoff_seconds(
                slot.unreachable, cap=UNREACHABLE_BACKOFF_CAP
            )
            if slot.unreachable == 1:
                log.warning(
                    "pool %s: the database is unreachable (%s); retrying until it is back",
                    slot.pool.text,
                    child.error,
                )
            return
        if kind is ExitKind.BOOT_FAILED:
            slot.boot_failures += 1
            slot.last_error = child.error or f"the child exited during start-up ({how})"
            if slot.boot_failures >= MAX_BOOT_FAILURES:
                self._fail(
                    f"pool {slot.pool.text!r} failed to start {slot.boot_failures} times in a "
                    f"row: {slot.last_error}"
                )
                return
            failures = slot.boot_failures
        else:
            slot.boot_failures = 0
            if now - child.spawned_at >= STABLE_AFTER:
                slot.crashes = 0
            slot.crashes += 1
            failures = slot.crashes
        slot.restart_at = now + restart_backoff_seconds(failures)
        log.warning("restarting pool %s in %.1fs", slot.pool.text, max(slot.restart_at - now, 0.0))

    def _fail(self, message: str) -> None:
        log.error("goodjob-supervisor: %s", message)
        print(f"goodjob-supervisor: {message}", file=sys.stderr, flush=True)
        self.exit_code = 1
        self.begin_drain(self.settings.shutdown_timeout, "fatal error")

    # --- murder / reap ------------------------------------------------------------------------

    def murder(self) -> None:
        now = time.monotonic()
        timeout = self.settings.child_timeout
        for child in list(self.children.values()):
            silent = now - child.last_report
            if timeout > 0 and child.state in SILENCE_WATCHED and silent >= timeout:
                log.warning(
                    "killing child %d (pool %s): no status report for %.0fs (--child-timeout "
                    "%gs); its running jobs will run again",
                    child.pid,
                    self.pools[child.pool_index].pool.text,
                    silent,
                    timeout,
                )
                self.kill(child, "silent")
                continue
            due = child.kill_at is not None and now >= child.kill_at
            if child.state is ChildState.STOPPING and due:
                log.warning(
                    "killing child %d (pool %s): still running at its %s deadline",
                    child.pid,
                    self.pools[child.pool_index].pool.text,
                    child.reason or "shutdown",
                )
                self.kill(child, child.reason)

    def reap(self) -> None:
        gone: list[tuple[Child, int]] = []
        for child in list(self.children.values()):
            # Ends whatever its jobs left running in its group, then reaps (see reaping.py).
            status = reaping.collect_exited(child.pid)
            if status is None:
                continue
            self._read_status(child)
            del self.children[child.pid]
            os.close(child.fd)
            gone.append((child, status))
        if gone:
            handed = self.registry.hand_back([c.process_id for c, _ in gone])
            if handed:
                log.warning("handed back %d job(s) of exited children", handed)
        for child, status in gone:
            self.exited(child, status)

    # --- manage: which children should run ----------------------------------------------------

    def manage(self) -> None:
        if self.draining:
            return
        self._roll()
        self._check_idle(time.monotonic())

    def _roll(self) -> None:
        """HUP: one pool at a time, start a new child, and retire the old once it is ready."""
        while self.rolling:
            slot = self.pools[self.rolling[0]]
            retiring = [
                c
                for c in self.children.values()
                if c.pool_index == slot.index and c.state is ChildState.RETIRING
            ]
            if retiring:
                new = slot.current
                if new is None or new.state is not ChildState.RUNNING:
                    return  # wait for the new child (spawn() starts it, with back-off)
                for old in retiring:
                    self.terminate(old, "HUP", self._stop_deadline())
                self.rolling.pop(0)
                continue
            if slot.current is None or slot.current.state is not ChildState.RUNNING:
                self.rolling.pop(0)  # nothing running to replace; spawn() starts it anyway
                continue
            self.retire(slot.current, "HUP")
            return

    def over_memory(self, child: Child, rss_mb: float) -> None:
        slot = self.pools[child.pool_index]
        log.warning(
            "child %d (pool %s) uses %.0f MB, over --max-memory %d MB; replacing it",
            child.pid,
            slot.pool.text,
            rss_mb,
            self.settings.max_memory,
        )
        # A short deadline of its own: the child may still be growing.
        timeout = self.settings.shutdown_timeout
        drain = MEMORY_DRAIN_SECONDS if timeout < 0 else min(MEMORY_DRAIN_SECONDS, timeout)
        self.terminate(child, "memory", time.monotonic() + drain)

    def _stop_deadline(self) -> float | None:
        timeout = self.settings.shutdown_timeout
        return None if timeout < 0 else time.monotonic() + timeout

    def _check_idle(self, now: float) -> None:
        timeout = self.settings.idle_timeout
        if timeout is None:
            return
        current = [s.current for s in self.pools]
        if not all(c is not None and c.state is ChildState.RUNNING for c in current):
            return
        idle = min(now - c.last_report + c.idle for c in current if c is not None)
        busy = any(c.busy or c.coroutines for c in self.children.values())
        if not busy and idle >= timeout:
            log.info("no job performed for %.0fs (--idle-timeout): stopping", idle)
            self.begin_drain(self.settings.shutdown_timeout, "idle timeout")

    def _setup_cron(self) -> None:
        if not self.settings.enable_cron:
            return
        from goodjob_mp.cron import CronScheduler

        self.cron = CronScheduler(self.settings)

    # --- duties -------------------------------------------------------------------------------

    def run_duties(self) -> None:
        for duty in list(self.duties):
            deadline = duty.next_deadline()
            if deadline is None or time.monotonic() < deadline:
                continue
            try:
                duty.run(time.monotonic())
            except Exception as exc:
                # A bug, not the database going away (duties catch that themselves): show the
                # traceback once, stop this duty, and report it in the status line and probe.
                log.exception("supervisor duty %s failed; it is stopped", duty.name)
                self.failed_duties[duty.name] = f"{type(exc).__name__}: {exc}"
                self.duties.remove(duty)
                self._close_duty(duty)

    def _close_duty(self, duty: Any) -> None:
        try:
            duty.close()
        except Exception:
            log.exception("closing the %s duty failed", duty.name)

    # --- spawn --------------------------------------------------------------------------------

    def spawn(self) -> None:
        if self.draining:
            return
        now = time.monotonic()
        due = [s for s in self.pools if s.current is None and now >= s.restart_at]
        if not due:
            return
        # The registry connection crosses the fork (its lock must stay held); the child lets go
        # of it in _in_child without touching it. Every other connection is dropped here.
        for duty in self.duties:
            duty.before_fork()
        self._warn_about_threads()
        for slot in due:
            self._fork(slot)

    def _fork(self, slot: PoolSlot) -> None:
        read_fd, write_fd = os.pipe()
        process_id = uuid.uuid4()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        signal.pthread_sigmask(signal.SIG_BLOCK, child_mod.FORK_BLOCKED)
        try:
            pid = os.fork()
        except OSError:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, child_mod.FORK_BLOCKED)
            os.close(read_fd)
            os.close(write_fd)
            slot.restart_at = time.monotonic() + 1.0
            log.exception("fork failed for pool %s; retrying", slot.pool.text)
            return
        if pid == 0:
            self._child_side(slot, read_fd, write_fd, process_id)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, child_mod.FORK_BLOCKED)
        try:
            os.setpgid(pid, pid)  # also here: whichever of us runs first, the group exists
        except OSError:
            pass  # the child did it already (or has exited)
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        now = time.monotonic()
        child = Child(
            slot.index, pid, process_id, read_fd, spawned_at=now, state_since=now, last_report=now
        )
        self.children[pid] = child
        slot.current = child
        slot.forks += 1
        log.info("forked child %d for pool %s", pid, slot.pool.text)

    def _child_side(
        self, slot: PoolSlot, read_fd: int, write_fd: int, process_id: uuid.UUID
    ) -> NoReturn:
        """Everything the child does, from fork to exit: it must never return or raise into the
        supervisor's frames (their ``finally`` would kill the siblings and deregister the
        supervisor's row, from inside the child)."""
        try:
            # Its own process group, so that what its jobs spawn ends with it (see reap()).
            os.setpgid(0, 0)
            self._in_child(read_fd)
            child_mod.run_child(
                self.settings,
                slot.pool,
                parent_pid=self.pid,
                status_fd=write_fd,
                process_id=process_id,
                cli_flags=self.cli_flags,
            )
        except BaseException as exc:
            try:
                message = f"child set-up failed: {type(exc).__name__}: {exc}"
                os.write(write_fd, (json.dumps({"error": message}) + "\n").encode())
                traceback.print_exc()
                sys.stderr.flush()
            except BaseException:  # nothing may stop the os._exit below
                pass
        finally:
            os._exit(1)

    def _warn_about_threads(self) -> None:
        """Threads do not survive a fork, and a lock one of them held stays held in the child
        forever: say which, since an --app import (with --preload) may have started them."""
        others = sorted(t.name for t in threading.enumerate() if t is not threading.main_thread())
        if others and others != self._warned_threads:
            log.warning(
                "forking with %d thread(s) besides the main one: %s; they do not exist in the "
                "children and a lock they hold can deadlock them. Start threads after the fork "
                "(or drop --preload if the --app import starts them)",
                len(others),
                ", ".join(others),
            )
        self._warned_threads = others

    def _in_child(self, own_read_fd: int) -> None:
        """Drop everything of the supervisor's that the child must neither use nor close."""
        from goodjob_mp.supervisor import pidfile

        signal.set_wakeup_fd(-1)
        self.registry.after_fork_in_child()
        pidfile.close_after_fork()
        os.close(own_read_fd)
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)
        for other in self.children.values():
            os.close(other.fd)
        if self.probe is not None:
            self.probe.drop_after_fork()
        if self.notifier is not None:
            self.notifier.close()

    # --- wait and status pipes ----------------------------------------------------------------

    def wait(self) -> None:
        if self.signals:
            return
        now = time.monotonic()
        timeout = 0.2 if self.draining else LOOP_TICK
        for slot in self.pools:
            if slot.current is None and slot.restart_at > now:
                timeout = min(timeout, slot.restart_at - now)
        for duty in self.duties:
            deadline = duty.next_deadline()
            if deadline is not None:
                timeout = min(timeout, deadline - now)
        readers: list[Any] = [self._wake_r, *(c.fd for c in self.children.values())]
        writers: list[Any] = []
        if self.probe is not None:
            probe_r, probe_w = self.probe.sockets()
            readers += probe_r
            writers += probe_w
        try:
            ready_r, ready_w, _ = select.select(readers, writers, [], max(timeout, 0.0))
        except OSError as exc:
            if exc.errno in (errno.EINTR, errno.EBADF):
                return
            raise
        by_fd = {c.fd: c for c in self.children.values()}
        for item in ready_r + ready_w:
            if item == self._wake_r:
                self._drain_wakeup()
            elif isinstance(item, int) and item in by_fd:
                self._read_status(by_fd[item])
            elif isinstance(item, socket.socket) and self.probe is not None:
                self.probe.handle_ready(item)

    def _drain_wakeup(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def _read_status(self, child: Child) -> None:
        try:
            while True:
                chunk = os.read(child.fd, 65536)
                if not chunk:
                    break
                child.buffer += chunk
        except (BlockingIOError, OSError):
            pass
        *lines, child.buffer = child.buffer.split(b"\n")
        for line in lines:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            child.last_report = time.monotonic()
            if "error" in message:
                child.error = str(message["error"])
                child.error_kind = message.get("kind")
                continue
            child.listener = bool(message.get("listener", child.listener))
            child.busy = int(message.get("busy", child.busy))
            child.coroutines = int(message.get("coroutines", child.coroutines))
            child.idle = float(message.get("idle", child.idle))
            if message.get("ready") and child.state is ChildState.STARTING:
                self.mark_ready(child)

    # --- helpers and reporting ----------------------------------------------------------------

    def _signal(self, child: Child, signum: int) -> None:
        if signum == signal.SIGKILL:
            reaping.kill_group(child.pid)  # the child and whatever its jobs spawned
        try:
            os.kill(child.pid, signum)
        except ProcessLookupError:
            pass

    def all_started(self) -> bool:
        return report.all_started(self.pools, list(self.children.values()))

    def status_line(self) -> str:
        return report.status_line(
            self.pools,
            draining=self.draining,
            children=len(self.children),
            failed=self.failed_duties,
        )

    def probe_status(self) -> Any:
        status = report.probe_status(
            self.pools,
            list(self.children.values()),
            draining=self.draining,
            listen_notify=self.settings.enable_listen_notify,
            pid=self.pid,
            failed=self.failed_duties,
        )
        status.detail["registry"] = self.registry.status()
        return status

    def state(self) -> dict[str, Any]:
        return report.process_state(
            process_id=self.process_id,
            pid=self.pid,
            status=self.status_line() if self.duties else "starting",
            settings=self.settings,
            cron_enabled=self.cron is not None,
            pools=self.pools,
        )


def _earlier(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def run_supervisor(settings: Settings, *, cli_flags: dict[str, Any] | None = None) -> int:
    """Run the supervisor until it is told to stop; return the process exit code."""
    from goodjob_mp.db.connection import DatabaseUnavailableError
    from goodjob_mp.supervisor.pidfile import Pidfile, PidfileError
    from goodjob_mp.supervisor.probe import ProbeServerError

    handle = None
    if settings.log_file:
        # Absolute: the daemon works in /, and USR1 reopens the file by this path.
        settings = settings.replace(log_file=os.path.abspath(settings.log_file))
    if settings.daemonize:
        from goodjob_mp.supervisor.daemon import DaemonError, daemonize, under_systemd_notify

        if under_systemd_notify():
            print(
                "goodjob-supervisor: --daemonize is refused under systemd (NOTIFY_SOCKET is set): "
                "Type=notify needs the supervisor to stay in the foreground; drop --daemonize "
                "(GOOD_JOB_DAEMONIZE) from the unit",
                file=sys.stderr,
            )
            return 2
        try:
            handle = daemonize(settings.log_file)
        except DaemonError as exc:
            print(f"goodjob-supervisor: {exc}", file=sys.stderr)
            return 1
    pidfile = None
    if settings.pidfile:
        pidfile = Pidfile(settings.pidfile)
        try:
            pidfile.acquire()
        except PidfileError as exc:
            if handle is not None:
                handle.failed(str(exc))
            print(f"goodjob-supervisor: {exc}", file=sys.stderr)
            return 1
    arbiter = Arbiter(settings, daemon_handle=handle, cli_flags=cli_flags)
    try:
        return arbiter.run()
    except (DatabaseUnavailableError, SupervisorError, ProbeServerError) as exc:
        if handle is not None:
            handle.failed(str(exc))
        print(f"goodjob-supervisor: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        if handle is not None:
            handle.failed(f"{type(exc).__name__}: {exc}")
        raise
    finally:
        if pidfile is not None and os.getpid() == arbiter.pid:
            pidfile.release()
