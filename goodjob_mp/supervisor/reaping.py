"""Collecting an exited child, and ending what its jobs left behind in its process group.

Each child leads its own process group, so the group id is the child's pid. That id is safe to
signal only while the child is still an unreaped zombie (after ``waitpid`` the pid, and with it
the group id, may be reused by an unrelated process). So the order is: check with ``WNOWAIT``
that the child has exited, SIGKILL the group, and only then reap.

The check is made once, and a child found running is left untouched: a second look with a
reaping call could find it exited (its status pipe reaches EOF before it becomes a zombie, which
is what wakes the supervisor), reap it, and leave its group's survivors running for good.
"""

from __future__ import annotations

import os
import signal


def kill_group(pgid: int) -> None:
    """SIGKILL every process in group ``pgid`` (gone or not ours: nothing to do)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def collect_exited(pid: int) -> int | None:
    """The wait status of child ``pid`` once it has exited (its group killed first, then the
    child reaped); None while it runs. A pid that is no longer our child counts as exit 0."""
    try:
        exited = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return 0  # reaped already: its group id may belong to someone else now
    if exited is None:
        return None  # still running: look again on the next pass, never reap it here
    kill_group(pid)
    try:
        reaped, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return 0
    return status if reaped else None
