"""The supervisor's pidfile: one running supervisor per pidfile path.

Owns: creating the file atomically, refusing to start while a live supervisor holds it, replacing
stale files, and removing the file on exit. Never removes a file that holds another process's pid
(a forked worker child that inherits a Pidfile object cannot delete the supervisor's file), and
never starts a thread.

How a live holder is told from a stale file: the holder keeps an exclusive ``flock`` on the
file for as long as it runs (the kernel drops it when the process dies, however it dies). A file
whose lock anyone can take is stale, whatever process its pid now names, even one whose command
line says "goodjob-supervisor" (``tail -f goodjob-supervisor.log``). Only where the file system
refuses locks is the process title of the pid consulted instead. Forked children close their
copy of the lock (``close_after_fork``), so a dead supervisor's draining children never make
its file look live.

How "two starts at once" is decided: the pid is written to a private temporary file in the same
directory, locked, and then hard-linked onto the final name; link() fails if the name exists, so
exactly one starter creates it, and a reader never sees a half-written file. A stale file is moved
aside with rename() before it is removed, and put back if what was moved turned out to be a newer
owner's file. The one race this does not close is three starters over a stale file with the third
arriving in the instant the file is moved aside; that needs a stale pidfile and three simultaneous
starts on one host.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import secrets
from types import TracebackType

import psutil

log = logging.getLogger(__name__)

# The process title every supervisor sets (and the console script's name): how a pid in the file
# is told apart from an unrelated process that reused that pid.
PROCESS_MARKER = "goodjob-supervisor"

_MAX_ATTEMPTS = 20
# The lock descriptors of the pidfiles this process holds (closed in forked children).
_held_fds: set[int] = set()


def close_after_fork() -> None:
    """In a forked child: drop our copies of the parent's pidfile locks (closing a copy never
    releases the parent's lock; only its last copy would)."""
    for fd in list(_held_fds):
        try:
            os.close(fd)
        except OSError:
            pass
    _held_fds.clear()


class PidfileError(RuntimeError):
    """The pidfile could not be taken; the message says why and what to do."""


class Pidfile:
    """A pidfile at ``path``; ``acquire()`` it at start-up and ``release()`` it on exit."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self._owner_pid: int | None = None
        self._lock_fd: int | None = None

    @property
    def owner_pid(self) -> int | None:
        """The pid this object last wrote, or None before ``acquire()``."""
        return self._owner_pid

    def acquire(self) -> None:
        """Write our pid, or raise PidfileError if a live supervisor already holds the file."""
        pid = os.getpid()
        for _ in range(_MAX_ATTEMPTS):
            if self._create(pid):
                self._owner_pid = pid
                return
            seen = self._inspect()
            if seen is None:
                continue  # removed between our link() and read: try again
            text, reason = seen
            holder = _parse_pid(text)
            if reason is None:
                raise PidfileError(
                    f"goodjob-supervisor already running with pid {holder} "
                    f"(pidfile {self.path}); stop it first or remove the pidfile if you are sure"
                )
            log.warning("replacing stale pidfile %s: %s", self.path, reason)
            self._discard_if_unchanged(text)
        raise PidfileError(
            f"could not take pidfile {self.path} after {_MAX_ATTEMPTS} attempts: other processes "
            "keep creating and removing it; make sure only one supervisor uses this --pidfile"
        )

    def rewrite(self, pid: int | None = None) -> None:
        """Record ``pid`` (default: ours) in a pidfile we already hold, e.g. after daemonizing."""
        if self._owner_pid is None:
            raise PidfileError(f"rewrite() of pidfile {self.path} before acquire()")
        new_pid = os.getpid() if pid is None else pid
        tmp, fd = self._write_temp(new_pid)
        try:
            os.replace(tmp, self.path)
        except OSError as exc:
            _unlink_quietly(tmp)
            os.close(fd)
            raise PidfileError(f"cannot rewrite pidfile {self.path}: {exc.strerror}") from exc
        self._hold(fd)
        self._owner_pid = new_pid

    def release(self) -> bool:
        """Delete the file if it still holds this process's pid; return whether it was deleted."""
        text = self._read_text()
        if text is None or _parse_pid(text) != os.getpid():
            return False
        _unlink_quietly(self.path)
        self._owner_pid = None
        self._hold(None)
        return True

    def read(self) -> int | None:
        """The pid recorded in the file, or None when there is no file or it holds no pid."""
        text = self._read_text()
        return None if text is None else _parse_pid(text)

    def __enter__(self) -> Pidfile:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def _hold(self, fd: int | None) -> None:
        """Keep ``fd`` (locked) open for as long as we hold the file; close the previous one."""
        old, self._lock_fd = self._lock_fd, fd
        if old is not None:
            _held_fds.discard(old)
            os.close(old)
        if fd is not None:
            _held_fds.add(fd)

    def _create(self, pid: int) -> bool:
        """Create the file holding ``pid`` unless it exists; True if we created it."""
        tmp, fd = self._write_temp(pid)
        try:
            os.link(tmp, self.path)  # already locked: no instant in which it looks stale
            self._hold(fd)
            return True
        except FileExistsError:
            os.close(fd)
            return False
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS):
                return self._create_exclusive(pid)  # file system without hard links
            raise self._error("create", exc) from exc
        finally:
            _unlink_quietly(tmp)

    def _create_exclusive(self, pid: int) -> bool:
        # Fallback for file systems without hard links: O_EXCL still lets one starter win, but a
        # racer that reads the file between create and write sees it empty and takes it as stale.
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        except OSError as exc:
            raise self._error("create", exc) from exc
        _lock(fd)
        os.write(fd, f"{pid}\n".encode())
        self._hold(fd)
        return True

    def _write_temp(self, pid: int) -> tuple[str, int]:
        """A private file holding ``pid``, and its descriptor, locked."""
        directory, name = os.path.split(self.path)
        tmp = os.path.join(directory, f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError as exc:
            raise self._error("create", exc) from exc
        _lock(fd)
        os.write(fd, f"{pid}\n".encode())
        return tmp, fd

    def _inspect(self) -> tuple[str, str | None] | None:
        """The file's text and why it is stale (None while a live holder keeps its lock), both
        read through one descriptor: the pid named and the lock tested belong to the same file,
        even when a racer replaces the file in between. None when there is no file."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._error("read", exc) from exc
        try:
            text = os.read(fd, 64).decode(errors="replace")
            holder = _parse_pid(text)
            if holder == os.getpid():
                return text, _stale_reason(holder)
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return text, None  # its holder is alive
            except OSError:
                return text, _stale_reason(holder)  # no locks here: judge by the process
            return text, f"no process holds its lock (pid {holder} is not a running supervisor)"
        finally:
            os.close(fd)

    def _read_text(self) -> str | None:
        try:
            with open(self.path) as f:
                return f.read(64)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._error("read", exc) from exc

    def _discard_if_unchanged(self, expected: str) -> None:
        """Remove the file if it still holds ``expected``; leave a newer owner's file in place."""
        aside = f"{self.path}.stale.{os.getpid()}.{secrets.token_hex(4)}"
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise self._error("replace", exc) from exc
        try:
            with open(aside) as f:
                moved = f.read(64)
            if moved != expected:
                try:
                    os.link(aside, self.path)  # a newer owner's file: put it back
                except FileExistsError:
                    pass
        finally:
            _unlink_quietly(aside)

    def _error(self, action: str, exc: OSError) -> PidfileError:
        directory = os.path.dirname(self.path)
        if exc.errno == errno.ENOENT and not os.path.isdir(directory):
            return PidfileError(
                f"cannot {action} pidfile {self.path}: directory {directory} does not exist; "
                "create it (under systemd: RuntimeDirectory=) or choose another --pidfile"
            )
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return PidfileError(
                f"cannot {action} pidfile {self.path}: {exc.strerror}; give the supervisor's "
                f"user write access to {directory} or choose another --pidfile"
            )
        return PidfileError(f"cannot {action} pidfile {self.path}: {exc.strerror}")


def _lock(fd: int) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise
        # A file system without locks: the process title of the pid decides (see above).


def _parse_pid(text: str) -> int | None:
    first = text.strip().split("\n", 1)[0].strip()
    if not first.isdigit():
        return None
    pid = int(first)
    return pid if pid > 0 else None


def _stale_reason(pid: int | None) -> str | None:
    """Why the pidfile holding ``pid`` is stale, or None if a live supervisor holds it."""
    if pid is None:
        return "it holds no pid"
    if pid == os.getpid():
        return f"it holds our own pid {pid} (left by an earlier process that had this pid)"
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return f"pid {pid} has exited"
        try:
            words = [proc.name(), *proc.cmdline()]
        except psutil.AccessDenied:
            words = [proc.name()]
    except psutil.NoSuchProcess:
        return f"pid {pid} is not running"
    except psutil.AccessDenied:
        # Cannot tell what it is; refusing is safer than running two supervisors.
        return None
    if any(PROCESS_MARKER in word for word in words):
        return None
    return f"pid {pid} now belongs to an unrelated process ({words[0]!r})"


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
