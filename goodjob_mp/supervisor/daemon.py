"""Detaching the supervisor from its terminal (``--daemonize``) the classic Unix way.

Owns: the double fork, the new session, umask, working directory, stdio redirection, and the
readiness pipe through which the daemon tells the original process "started" or "failed: why".
The original process exits only when told (or when the daemon dies or a deadline passes), so a
deploy script that runs ``goodjob-supervisor --daemonize --pidfile=x`` gets its answer from the
exit code: 0 means the daemon is up and x exists.

Never starts a thread, never daemonizes under systemd (``under_systemd_notify()``; Type=notify
wants the main process to stay put), and never returns in the original process: that one ends
with ``os._exit`` so the caller's ``finally`` blocks and atexit handlers run only in the daemon.
"""

from __future__ import annotations

import fcntl
import os
import select
import sys
import time
from collections.abc import Mapping

DEFAULT_UMASK = 0o027


class DaemonError(RuntimeError):
    """Daemonizing could not begin; the message names the setting to fix."""


class DaemonHandle:
    """The daemon's end of the readiness pipe: call ``ready()`` or ``failed(message)`` once.

    Call it before forking worker children: a forked child inherits the pipe, and the original
    process only learns that the daemon died when every copy of the pipe is closed.
    """

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    @property
    def reported(self) -> bool:
        return self._fd is None

    def ready(self) -> None:
        """Tell the original process the daemon is up; it exits 0."""
        self._send(b"ready\n")

    def failed(self, message: str) -> None:
        """Tell the original process the daemon could not start; it prints ``message``, exits 1."""
        self._send(b"failed " + message.encode("utf-8", "replace"))

    def _send(self, data: bytes) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except OSError:
            pass  # the original process is gone (killed?); nobody is left to tell
        finally:
            os.close(fd)


def under_systemd_notify(env: Mapping[str, str] | None = None) -> bool:
    """True when systemd started us as Type=notify (NOTIFY_SOCKET is set)."""
    return bool((os.environ if env is None else env).get("NOTIFY_SOCKET"))


def daemonize(
    log_file: str | None = None,
    workdir: str = "/",
    *,
    umask: int = DEFAULT_UMASK,
    ready_timeout: float | None = 60.0,
) -> DaemonHandle:
    """Detach; return only in the daemon, with the handle to report readiness through.

    stdin becomes /dev/null; stdout and stderr are appended to ``log_file`` (opened here, before
    detaching, so a relative path means the caller's directory and a bad path fails loudly), or
    go to /dev/null without one. The original process waits up to ``ready_timeout`` seconds
    (None: forever) for the report, then exits: 0 on ``ready()``, 1 otherwise with the reason on
    its stderr.
    """
    if not os.path.isdir(workdir):
        raise DaemonError(
            f"daemon working directory {workdir!r} does not exist; pass an existing directory"
        )
    log_fd = _above_stdio(_open_output(log_file))
    read_fd, write_fd = (_above_stdio(fd) for fd in os.pipe())
    _flush_stdio()  # buffered output must not be written twice, once per process

    first = os.fork()
    if first > 0:
        os.close(write_fd)
        os.close(log_fd)
        os._exit(_await_report(read_fd, first, log_file, ready_timeout))

    # Intermediate child: a new session with no controlling terminal, then fork again so the
    # daemon is not a session leader and can never acquire a terminal by opening one.
    os.close(read_fd)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)

    os.chdir(workdir)
    os.umask(umask)
    null_fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null_fd, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    for fd in {null_fd, log_fd} - {0, 1, 2}:
        os.close(fd)
    _ensure_python_stdio()
    _send_line(write_fd, f"pid {os.getpid()}\n")
    return DaemonHandle(write_fd)


def _above_stdio(fd: int) -> int:
    """Move ``fd`` above 0-2, where a caller started with closed stdio would have it clobbered."""
    if fd > 2:
        return fd
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    os.close(fd)
    return moved


def _open_output(log_file: str | None) -> int:
    if log_file is None:
        return os.open(os.devnull, os.O_WRONLY)
    try:
        return os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    except OSError as exc:
        raise DaemonError(
            f"cannot open log file {log_file!r} for the daemon: {exc.strerror}; "
            "fix the path or permissions of --log-file"
        ) from exc


def _ensure_python_stdio() -> None:
    """Give Python stream objects to fds 0-2 where the caller started with them closed."""
    # These streams live as long as the process, like the ones Python opens at start-up.
    if sys.stdin is None:
        sys.stdin = os.fdopen(0, "r", closefd=False)
    if sys.stdout is None:
        sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False, errors="backslashreplace")
    if sys.stderr is None:
        sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False, errors="backslashreplace")


def _flush_stdio() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass


def _send_line(fd: int, line: str) -> None:
    try:
        os.write(fd, line.encode())
    except OSError:
        pass


def _await_report(read_fd: int, child: int, log_file: str | None, timeout: float | None) -> int:
    """In the original process: wait for the daemon's report; return our exit code."""
    os.waitpid(child, 0)  # the intermediate child exits at once; reap it
    data, closed = _read_report(read_fd, timeout)
    os.close(read_fd)
    pid_line, _, report = data.partition(b"\n")
    daemon = pid_line.decode(errors="replace").removeprefix("pid ").strip() or "?"
    if report.startswith(b"ready"):
        return 0
    where = f"; see {log_file}" if log_file else " (run without --daemonize to see its output)"
    if report.startswith(b"failed "):
        message = report[len(b"failed ") :].decode("utf-8", "replace")
        problem = f"daemon failed to start: {message}"
    elif closed:
        problem = f"daemon (pid {daemon}) exited before it reported readiness{where}"
    else:
        problem = (
            f"daemon (pid {daemon}) did not report readiness within {timeout:g}s; "
            f"it may still be starting{where}"
        )
    print(f"goodjob-supervisor: {problem}", file=sys.stderr, flush=True)
    return 1


def _read_report(fd: int, timeout: float | None) -> tuple[bytes, bool]:
    """The daemon's bytes until ``ready``, end of pipe, or the deadline; and whether it ended."""
    deadline = None if timeout is None else time.monotonic() + timeout
    data = b""
    while not data.partition(b"\n")[2].startswith(b"ready"):
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not select.select([fd], [], [], wait)[0]:
            return data, False
        chunk = os.read(fd, 4096)
        if not chunk:
            return data, True
        data += chunk
    return data, False
