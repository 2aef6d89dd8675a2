"""Reopening ``--log-file`` on USR1 (for logrotate), in the supervisor and in each child.

Owns one operation: open the log file again by its (absolute) path and put it on stdout and
stderr, where every log handler of this process writes. Never called from a signal handler (the
arbiter's loop and the child's supervise loop call it); a failure keeps the old file.
"""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger("goodjob_mp.supervisor")


def reopen_output(path: str) -> bool:
    """Append stdout and stderr to a freshly opened ``path``; False (logged) if it cannot."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    except OSError as exc:
        log.warning(
            "USR1: cannot reopen log file %s (%s); still writing to the old one; fix the path "
            "or permissions of --log-file",
            path,
            exc.strerror,
        )
        return False
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    return True
