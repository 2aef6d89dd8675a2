"""What runs inside one forked worker child: one pool's ``Worker``, and its reports to the parent.

Owns: the child's signal handlers (TERM/INT drain, QUIT exit now, USR1 reopen --log-file; HUP,
USR2, TTIN, TTOU ignored), the parent-death signal and parent check, the process title, and
the status line written to the supervisor's pipe. Status lines are JSON, one per change or per
second::

    {"ready": true, "listener": true, "busy": 1, "idle": 3.2, "stopping": false, ...}
    {"error": "the database schema is behind ..."}      # start() failed; the child exits 3

Never returns: it ends with ``os._exit`` so the parent's atexit handlers and finalizers never run
in a child. Never uses or closes anything inherited from the supervisor (the supervisor holds no
database connection at fork time; sockets it passes are closed, not shut down).
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import sys
import threading
import time
import uuid
from typing import Any, NoReturn

from goodjob_mp.config import Settings
from goodjob_mp.queues import PoolSpec
from goodjob_mp.supervisor.gc_tuning import tune_for_worker

log = logging.getLogger("goodjob_mp.supervisor.child")

BOOT_FAILED_EXIT = 3
REPORT_EVERY = 1.0
PARENT_CHECK_EVERY = 0.5
_PR_SET_PDEATHSIG = 1
# Signals the arbiter blocks around fork(); the child unblocks them once its handlers are set.
FORK_BLOCKED = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGHUP,
    signal.SIGCHLD,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGTTIN,
    signal.SIGTTOU,
)


# SQLSTATE classes of a server that is there but cannot take us now: connection exceptions,
# "too many connections", and operator intervention (shutting down, starting up).
_TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57")


def start_failure_kind(exc: BaseException) -> str:
    """ "database" when start-up failed only because the database could not be reached (retry
    without counting it against the app); "app" when the app, schema or configuration is broken
    (a wrong password or database name is broken configuration, not a blip)."""
    import psycopg

    from goodjob_mp.db.connection import DatabaseUnavailableError

    cause: BaseException | None = exc
    if isinstance(exc, DatabaseUnavailableError):
        cause = exc.__cause__
        if not isinstance(cause, psycopg.Error):
            return "database"
    if isinstance(cause, psycopg.OperationalError):
        state = cause.sqlstate
        return "database" if state is None or state[:2] in _TRANSIENT_SQLSTATE_CLASSES else "app"
    return "app"


def worker_title(pool: PoolSpec, threads: int, busy: int, extra: str = "") -> str:
    suffix = f", {extra}" if extra else ""
    return f"goodjob-worker: {pool.text} ({threads} threads, {busy} busy{suffix})"


def set_parent_death_signal(signum: int = signal.SIGTERM) -> bool:
    """Ask Linux to send ``signum`` when the parent dies; False where prctl is unavailable."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def set_title(title: str) -> None:
    try:
        import setproctitle

        setproctitle.setproctitle(title)
    except Exception:  # a missing title is cosmetic; never a reason to stop
        pass


class _StatusPipe:
    """Non-blocking writer of status lines: a full pipe drops a line instead of stalling us."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        os.set_blocking(fd, False)

    def send(self, message: dict[str, Any]) -> None:
        data = (json.dumps(message, separators=(",", ":")) + "\n").encode()
        try:
            os.write(self.fd, data)
        except (BlockingIOError, BrokenPipeError, OSError):
            pass


class ChildRunner:
    """One pool's worker in this (forked) process; ``run()`` returns the exit code."""

    def __init__(
        self,
        settings: Settings,
        pool: PoolSpec,
        *,
        parent_pid: int,
        status_fd: int,
        process_id: uuid.UUID,
        cli_flags: dict[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self.cli_flags = cli_flags
        self.pool = pool
        self.threads = pool.thread_count(settings.max_threads)
        self.parent_pid = parent_pid
        self.status = _StatusPipe(status_fd)
        self.process_id = process_id
        self.stop_requested = threading.Event()
        self.reopen_requested = False
        self.worker: Any = None

    # Handlers only set flags (request_stop is an Event.set); the loop below does the rest.
    def _on_term(self, signum: int, frame: object) -> None:
        self.stop_requested.set()
        if self.worker is not None:
            self.worker.request_stop()

    def _on_quit(self, signum: int, frame: object) -> None:
        os._exit(0)

    def _on_usr1(self, signum: int, frame: object) -> None:
        self.reopen_requested = True

    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        signal.signal(signal.SIGQUIT, self._on_quit)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGUSR1, self._on_usr1)
        for ignored in (signal.SIGUSR2, signal.SIGTTIN, signal.SIGTTOU):
            signal.signal(ignored, signal.SIG_IGN)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, FORK_BLOCKED)

    def run(self) -> int:
        from goodjob_mp.worker.worker import Worker

        set_parent_death_signal(signal.SIGTERM)
        self.install_signals()
        if os.getppid() != self.parent_pid:
            return 1  # the supervisor died before we set the death signal
        set_title(worker_title(self.pool, self.threads, 0, "starting"))
        if self.settings.app and not self.settings.preload:
            failure = self._load_app(self.settings.app)
            if failure is not None:
                self.status.send({"error": failure, "kind": "app"})
                log.error("goodjob-worker %s failed to start: %s", self.pool.text, failure)
                return BOOT_FAILED_EXIT
        tune_for_worker(self.settings.worker_gc_threshold)  # after the app's imports
        self.worker = Worker(
            self.settings,
            self.pool,
            process_id=self.process_id,
            name=f"goodjob-worker: {self.pool.text}",
        )
        if self.stop_requested.is_set():
            return 0  # TERM during start-up: leave before claiming anything
        try:
            self.worker.start()
        except BaseException as exc:
            kind = start_failure_kind(exc)
            self.status.send({"error": f"{type(exc).__name__}: {exc}", "kind": kind})
            # The supervisor logs an unreachable database once per outage, not once per retry.
            level = logging.DEBUG if kind == "database" else logging.ERROR
            log.log(level, "goodjob-worker %s failed to start: %s", self.pool.text, exc)
            return BOOT_FAILED_EXIT
        if self.stop_requested.is_set():
            self.worker.request_stop()
        return self._supervise()

    def _load_app(self, app: str) -> str | None:
        """Import --app here, after the fork, so a new child runs the code on disk now; then
        merge the settings again so ``configure()`` in the app applies. The error, or None."""
        from goodjob_mp import config
        from goodjob_mp.supervisor.appload import AppImportError, forget_app_modules, import_app

        try:
            forget_app_modules(app)
            import_app(app)
            if self.cli_flags is not None:
                self.settings = config.load_settings(self.cli_flags)
                config.set_current_settings(self.settings)
        except (AppImportError, config.ConfigError) as exc:
            return str(exc)
        except Exception as exc:  # the app's own code failed while importing: show where
            log.exception("goodjob-worker %s: importing --app %r failed", self.pool.text, app)
            return f"importing --app {app!r} failed: {type(exc).__name__}: {exc}"
        return None

    def _supervise(self) -> int:
        worker = self.worker
        orphan_deadline: float | None = None
        last: dict[str, Any] = {}
        last_sent = 0.0
        while True:
            if orphan_deadline is None and os.getppid() != self.parent_pid:
                # The supervisor is gone: drain; what is still running at the deadline is
                # recovered by the next supervisor's dead-process check.
                log.warning("goodjob-worker %s: supervisor died; stopping", self.pool.text)
                worker.request_stop()
                timeout = self.settings.shutdown_timeout
                orphan_deadline = float("inf") if timeout < 0 else time.monotonic() + timeout
            if orphan_deadline is not None and time.monotonic() >= orphan_deadline:
                return 1
            if self.reopen_requested:
                self.reopen_requested = False
                self._reopen_log_file()
            state = {
                "ready": True,
                "listener": bool(worker.listener_connected),
                "busy": worker.busy,
                "stopping": worker.stopping,
            }
            now = time.monotonic()
            if state != last or now - last_sent >= REPORT_EVERY:
                if state["busy"] != last.get("busy") or state["stopping"] != last.get("stopping"):
                    extra = "stopping" if state["stopping"] else ""
                    set_title(worker_title(self.pool, self.threads, state["busy"], extra))
                last, last_sent = state, now
                self.status.send(
                    {
                        **state,
                        "idle": round(now - worker.last_activity, 3),
                        "succeeded": worker.succeeded,
                        "errored": worker.errored,
                        "coroutines": getattr(worker, "coroutines", 0),
                    }
                )
            if worker.join_stopped(PARENT_CHECK_EVERY):
                break
        if worker.fatal_error is not None and not self.stop_requested.is_set():
            return 1
        return 0 if self.stop_requested.is_set() or orphan_deadline is not None else 1

    def _reopen_log_file(self) -> None:
        from goodjob_mp.supervisor.logfiles import reopen_output

        if self.settings.log_file and reopen_output(self.settings.log_file):
            log.info("goodjob-worker %s: reopened log file", self.pool.text)


def _end_own_group() -> None:
    """TERM what our jobs spawned into our process group (the supervisor SIGKILLs the group
    once we have exited; this covers a supervisor that is gone)."""
    try:
        if os.getpgid(0) != os.getpid():
            return  # not our own group (never the supervisor's)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        os.killpg(0, signal.SIGTERM)
    except OSError:
        pass


def run_child(
    settings: Settings,
    pool: PoolSpec,
    *,
    parent_pid: int,
    status_fd: int,
    process_id: uuid.UUID,
    cli_flags: dict[str, Any] | None = None,
) -> NoReturn:
    """The body of a forked child; never returns."""
    code = 1
    try:
        code = ChildRunner(
            settings,
            pool,
            parent_pid=parent_pid,
            status_fd=status_fd,
            process_id=process_id,
            cli_flags=cli_flags,
        ).run()
    except BaseException:
        log.exception("goodjob-worker %s crashed", pool.text)
    finally:
        _end_own_group()
        for stream in (sys.stdout, sys.stderr):
            try:
                if stream is not None:
                    stream.flush()
            except Exception:
                pass
        os._exit(code)
