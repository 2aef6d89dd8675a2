"""The supervisor (arbiter): forks one child per pool and keeps them running.

Owns the one loop of the supervisor process. Each pass: take queued signals and call
``handle_<name>`` for each, then the housekeeping verbs in fixed order — ``murder`` (kill
children past their drain deadline), ``reap`` (collect exited children, hand their jobs back),
``manage`` (memory limit, rolling restart, idle timeout, registry, dead-process sweep,
systemd), ``spawn`` (start what should run) — then ``wait`` in select() on the signal wake-up
pipe, every child's status pipe and the probe sockets.

Never does work in a signal handler (handlers append to a queue; ``signal.set_wakeup_fd`` wakes
the loop) and never starts a thread. The registry connection stays open across forks, so the
row's advisory lock is never released (the child lets go of it untouched,
``Registry.after_fork_in_child``); no other connection is open at the moment of a fork. Only pids
it forked are waited for: an embedded PostgreSQL started by this process is never reaped here.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import signal
import socket
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from goodjob_mp.backoff import restart_backoff_seconds
from goodjob_mp.config import Settings
from goodjob_mp.queues import PoolSpec, parse_pools
from goodjob_mp.supervisor import child as child_mod
from goodjob_mp.supervisor.maintenance import Registry

log = logging.getLogger("goodjob_mp.supervisor")

# A pool whose child fails this many times in a row before reporting ready stops the supervisor.
MAX_BOOT_FAILURES = 3
# A child that ran at least this long before crashing starts its pool's back-off afresh.
STABLE_AFTER = 30.0
# A child must be this old before the memory limit applies (start-up allocates).
MEMORY_GRACE = 2.0
MAX_QUEUED_SIGNALS = 32
LOOP_TICK = 1.0

SIGNAL_NAMES = {
    signal.SIGTERM: "term",
    signal.SIGINT: "int",
    signal.SIGQUIT: "quit",
    signal.SIGHUP: "hup",
    signal.SIGCHLD: "chld",
}


@dataclass
class Child:
    """One forked worker process and what it last reported."""

    pool_index: int
    pid: int
    process_id: uuid.UUID
    fd: int
    spawned_at: float
    buffer: bytes = b""
    ready: bool = False
    listener: bool = False
    busy: int = 0
    idle: float = 0.0
    idle_at: float = 0.0
    error: str | None = None
    term_at: float | None = None
    kill_sent: bool = False
    retiring: bool = False  # replaced (HUP, memory): its exit is expected, not a crash
    exit_status: int | None = None


@dataclass
class PoolSlot:
    index: int
    pool: PoolSpec
    threads: int
    current: Child | None = None
    old: list[Child] = field(default_factory=list)
    boot_failures: int = 0
    crashes: int = 0
    restart_at: float = 0.0
    last_error: str | None = None


class SupervisorError(RuntimeError):
    """The supervisor cannot go on; the message says why and what to fix."""


class Arbiter:
    """The supervisor loop; ``run()`` returns the process exit code."""

    def __init__(self, settings: Settings, *, daemon_handle: Any = None) -> None:
        self.settings = settings
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
        self.cron: Any = None  # the cron helper wires goodjob_mp.cron.CronScheduler in here
        self.notifier: Any = None
        self.announced_ready = False
        self.last_status = ""
        self.started_at = time.monotonic()
        self.next_heartbeat = 0.0
        self.next_sweep = 0.0
        self.next_watchdog = 0.0
        self.next_memory = 0.0
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

            self.probe = ProbeServer(self.settings.probe_port, status=self.probe_status)
            log.info("probe server listening on port %d", self.probe.port)
        self.registry.open()  # DB unreachable: fails here, before anything is forked
        self._setup_cron()
        if self.daemon_handle is not None:
            self.daemon_handle.ready()
        log.info(
            "goodjob-supervisor %d starting %d pool(s): %s",
            self.pid,
            len(self.pools),
            "; ".join(f"{s.pool.text} ({s.threads} threads)" for s in self.pools),
        )

    def stop(self) -> None:
        # Normal paths reach here with no children; an exception must not leave orphans behind.
        for child in list(self.children.values()):
            self._signal(child, signal.SIGKILL)
        while self.children:
            self.reap()
            time.sleep(0.05)
        self.registry.deregister()
        if self.cron is not None:
            try:
                self.cron.close()
            except Exception:
                log.exception("closing the cron scheduler failed")
        if self.probe is not None:
            self.probe.close()
        if self.notifier is not None:
            self.notifier.close()
        signal.set_wakeup_fd(-1)
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)

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
        self.rolling = [s.index for s in self.pools if s.index not in self.rolling]

    def handle_chld(self) -> None:
        pass  # reap() runs on every pass

    def begin_drain(self, timeout: float, why: str) -> None:
        now = time.monotonic()
        deadline = None if timeout < 0 else now + timeout
        if self.draining:
            # A second signal can only shorten the wait (QUIT after TERM means: now).
            if deadline is not None and (
                self.drain_deadline is None or deadline < self.drain_deadline
            ):
                self.drain_deadline = deadline
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
            self._terminate(child)

    # --- murder / reap ------------------------------------------------------------------------

    def murder(self) -> None:
        now = time.monotonic()
        for child in list(self.children.values()):
            if child.kill_sent:
                continue
            if self.draining:
                due = self.drain_deadline is not None and now >= self.drain_deadline
            else:
                timeout = self.settings.shutdown_timeout
                due = child.term_at is not None and timeout >= 0 and now >= child.term_at + timeout
            if due:
                log.warning(
                    "killing child %d (pool %s): still running at its shutdown deadline",
                    child.pid,
                    self.pools[child.pool_index].pool.text,
                )
                self._signal(child, signal.SIGKILL)
                child.kill_sent = True

    def reap(self) -> None:
        gone: list[Child] = []
        for child in list(self.children.values()):
            try:
                pid, status = os.waitpid(child.pid, os.WNOHANG)
            except ChildProcessError:
                pid, status = child.pid, 0
            if pid == 0:
                continue
            self._read_status(child)
            child.exit_status = status
            del self.children[child.pid]
            os.close(child.fd)
            gone.append(child)
        if gone:
            handed = self.registry.hand_back([c.process_id for c in gone])
            if handed:
                log.warning("handed back %d job(s) of exited children", handed)
        for child in gone:
            self._child_exited(child)

    def _child_exited(self, child: Child) -> None:
        slot = self.pools[child.pool_index]
        status = child.exit_status or 0
        how = (
            f"signal {signal.Signals(os.WTERMSIG(status)).name}"
            if os.WIFSIGNALED(status)
            else f"exit code {os.waitstatus_to_exitcode(status)}"
        )
        if child in slot.old:
            slot.old.remove(child)
        expected = self.draining or child.retiring or child.term_at is not None
        if slot.current is child:
            slot.current = None
        log_level = logging.INFO if expected else logging.WARNING
        log.log(log_level, "child %d (pool %s) exited: %s", child.pid, slot.pool.text, how)
        if expected:
            return
        now = time.monotonic()
        if not child.ready:
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

    # --- manage -------------------------------------------------------------------------------

    def manage(self) -> None:
        now = time.monotonic()
        if not self.draining:
            self._roll(now)
            if now >= self.next_memory:
                self.next_memory = now + 1.0
                self._check_memory(now)
            self._check_idle(now)
        if now >= self.next_heartbeat:
            self.next_heartbeat = now + self.settings.heartbeat_interval
            self.registry.heartbeat()
        if now >= self.next_sweep and self.settings.dead_process_timeout > 0:
            self.next_sweep = now + min(5.0, max(self.settings.dead_process_timeout / 2, 0.5))
            self.registry.sweep(self.settings.dead_process_timeout)
        self._cron_tick()
        self._notify(now)

    def _roll(self, now: float) -> None:
        """HUP: one pool at a time, start a new child, and retire the old once it is ready."""
        while self.rolling:
            slot = self.pools[self.rolling[0]]
            if slot.old and slot.old[-1].retiring and slot.old[-1].term_at is None:
                new = slot.current
                if new is None or not new.ready:
                    return  # wait for the new child (spawn() starts it, with back-off)
                self._terminate(slot.old[-1])
                self.rolling.pop(0)
                continue
            if slot.current is None:
                self.rolling.pop(0)  # nothing running to replace; spawn() starts it anyway
                continue
            old = slot.current
            old.retiring = True
            slot.old.append(old)
            slot.current = None
            return

    def _check_memory(self, now: float) -> None:
        limit = self.settings.max_memory
        if limit is None:
            return
        import psutil

        for slot in self.pools:
            child = slot.current
            if child is None or not child.ready or now - child.spawned_at < MEMORY_GRACE:
                continue
            try:
                rss_mb = psutil.Process(child.pid).memory_info().rss / (1024 * 1024)
            except psutil.Error:
                continue
            if rss_mb > limit:
                log.warning(
                    "child %d (pool %s) uses %.0f MB, over --max-memory %d MB; replacing it",
                    child.pid,
                    slot.pool.text,
                    rss_mb,
                    limit,
                )
                child.retiring = True
                slot.old.append(child)
                slot.current = None
                self._terminate(child)

    def _check_idle(self, now: float) -> None:
        timeout = self.settings.idle_timeout
        if timeout is None or not all(s.current and s.current.ready for s in self.pools):
            return
        idle = min(now - c.idle_at + c.idle for s in self.pools if (c := s.current) is not None)
        busy = any(c.busy for c in self.children.values())
        if not busy and idle >= timeout:
            log.info("no job performed for %.0fs (--idle-timeout): stopping", idle)
            self.begin_drain(self.settings.shutdown_timeout, "idle timeout")

    def _cron_tick(self) -> None:
        if self.cron is None or self.draining:
            return
        try:
            self.cron.tick()
        except Exception:
            log.exception("cron tick failed")

    def _setup_cron(self) -> None:
        if not self.settings.enable_cron:
            return
        try:
            from goodjob_mp.cron import CronScheduler  # type: ignore[attr-defined]
        except ImportError:
            log.warning("--enable-cron: goodjob_mp.cron is not available; cron is off")
            return
        self.cron = CronScheduler(self.settings)

    def _notify(self, now: float) -> None:
        started = self.all_started()
        if started and not self.draining and not self.rolling and not self.announced_ready:
            self.announced_ready = True
            self.notifier.ready()
            log.info("all %d pool(s) are up", len(self.pools))
        elif self.rolling:
            self.announced_ready = False  # READY=1 again once the rolling restart is done
        status = self.status_line()
        if status != self.last_status:
            self.last_status = status
            self.notifier.status(status)
            child_mod.set_title(f"goodjob-supervisor: {status}")
        interval = self.notifier.watchdog_interval()
        if interval is not None and now >= self.next_watchdog and self.exit_code == 0:
            self.next_watchdog = now + interval
            self.notifier.watchdog()

    # --- spawn --------------------------------------------------------------------------------

    def spawn(self) -> None:
        if self.draining:
            return
        now = time.monotonic()
        due = [s for s in self.pools if s.current is None and now >= s.restart_at]
        if not due:
            return
        # The registry connection crosses the fork (its lock must stay held); the child lets go
        # of it in _in_child without touching it.
        if self.cron is not None:
            # The cron leader's connection must not cross a fork either: close() releases the
            # lock and the connection, and the next tick() takes leadership again.
            getattr(self.cron, "before_fork", self.cron.close)()
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
            self._in_child(read_fd)
            child_mod.run_child(
                self.settings,
                slot.pool,
                parent_pid=self.pid,
                status_fd=write_fd,
                process_id=process_id,
            )
        signal.pthread_sigmask(signal.SIG_UNBLOCK, child_mod.FORK_BLOCKED)
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        now = time.monotonic()
        child = Child(slot.index, pid, process_id, read_fd, spawned_at=now, idle_at=now)
        self.children[pid] = child
        slot.current = child
        log.info("forked child %d for pool %s", pid, slot.pool.text)

    def _in_child(self, own_read_fd: int) -> None:
        """Drop everything of the supervisor's that the child must neither use nor close."""
        signal.set_wakeup_fd(-1)
        self.registry.after_fork_in_child()
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
        timeout = LOOP_TICK
        now = time.monotonic()
        if self.draining:
            timeout = 0.2
        for slot in self.pools:
            if slot.current is None and slot.restart_at > now:
                timeout = min(timeout, slot.restart_at - now)
        if self.cron is not None and hasattr(self.cron, "next_wakeup"):
            try:
                wake = self.cron.next_wakeup()
                if wake is not None:
                    timeout = min(timeout, max(wake - time.time(), 0.0))
            except Exception:
                log.exception("cron next_wakeup failed")
        readers: list[Any] = [self._wake_r, *(c.fd for c in self.children.values())]
        writers: list[Any] = []
        if self.probe is not None:
            probe_r, probe_w = self.probe.sockets()
            readers += probe_r
            writers += probe_w
            deadline = self.probe.next_deadline()
            if deadline is not None:
                timeout = min(timeout, max(deadline - now, 0.0))
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
        if self.probe is not None:
            self.probe.expire()

    def _drain_wakeup(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def _read_status(self, child: Child) -> None:
        import json

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
            if "error" in message:
                child.error = str(message["error"])
                continue
            child.ready = bool(message.get("ready", child.ready))
            child.listener = bool(message.get("listener", child.listener))
            child.busy = int(message.get("busy", child.busy))
            child.idle = float(message.get("idle", child.idle))
            child.idle_at = time.monotonic()
            slot = self.pools[child.pool_index]
            if child.ready and slot.current is child:
                slot.boot_failures = 0

    # --- helpers and reporting ----------------------------------------------------------------

    def _terminate(self, child: Child) -> None:
        if child.term_at is None:
            child.term_at = time.monotonic()
            self._signal(child, signal.SIGTERM)

    def _signal(self, child: Child, signum: int) -> None:
        try:
            os.kill(child.pid, signum)
        except ProcessLookupError:
            pass

    def _serving(self, slot: PoolSlot) -> list[Child]:
        # During a rolling restart the old child serves until its replacement is ready.
        children = [slot.current] if slot.current is not None else []
        children += [c for c in slot.old if c.term_at is None]
        return [c for c in children if c.ready]

    def all_started(self) -> bool:
        return all(self._serving(s) for s in self.pools)

    def all_connected(self) -> bool:
        if not self.settings.enable_listen_notify:
            return self.all_started()
        return all(any(c.listener for c in self._serving(s)) for s in self.pools)

    def pool_states(self) -> list[dict[str, Any]]:
        states = []
        for slot in self.pools:
            child = slot.current
            if child is None:
                state = "failed" if slot.last_error else "stopped"
            elif child.ready:
                state = "running"
            else:
                state = "starting"
            states.append(
                {
                    "pool": slot.pool.text,
                    "threads": slot.threads,
                    "state": state,
                    "pid": child.pid if child else None,
                    "busy": child.busy if child else 0,
                    "listener": child.listener if child else False,
                }
            )
        return states

    def status_line(self) -> str:
        if self.draining:
            return f"stopping: {len(self.children)} child(ren) left"
        parts = [f"{p['pool']}={p['state']}" for p in self.pool_states()]
        return f"{len(self.pools)} pools: " + ", ".join(parts)

    def probe_status(self) -> Any:
        from goodjob_mp.supervisor.probe import ProbeStatus

        return ProbeStatus(
            started=self.all_started() and not self.draining,
            connected=self.all_connected() and not self.draining,
            detail={
                "pools": self.pool_states(),
                "pid": self.pid,
                "registry": self.registry.status(),
            },
        )

    def state(self) -> dict[str, Any]:
        """GoodJob's ``good_job_processes.state`` shape, for the supervisor's row."""
        try:
            import psutil

            memory = psutil.Process().memory_info().rss // 1024
        except Exception:
            memory = None
        return {
            "id": str(self.process_id),
            "pid": self.pid,
            "hostname": socket.gethostname(),
            "proctitle": f"goodjob-supervisor: {self.last_status or 'starting'}",
            "memory": memory,
            "preserve_job_records": self.settings.preserve_job_records
            if isinstance(self.settings.preserve_job_records, (bool, str))
            else "callable",
            "retry_on_unhandled_error": self.settings.retry_on_unhandled_error,
            "cron_enabled": self.cron is not None,
            "schedulers": [
                {
                    "name": f"goodjob_mp.Supervisor(pool={p['pool']})",
                    "queues": p["pool"],
                    "max_threads": p["threads"],
                    "active_threads": p["busy"],
                    "available_threads": p["threads"] - p["busy"],
                    "child_pid": p["pid"],
                    "state": p["state"],
                }
                for p in self.pool_states()
            ],
        }


def run_supervisor(settings: Settings) -> int:
    """Run the supervisor until it is told to stop; return the process exit code."""
    from goodjob_mp.db.connection import DatabaseUnavailableError
    from goodjob_mp.supervisor.pidfile import Pidfile, PidfileError

    handle = None
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
    arbiter = Arbiter(settings, daemon_handle=handle)
    try:
        return arbiter.run()
    except (DatabaseUnavailableError, SupervisorError) as exc:
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
