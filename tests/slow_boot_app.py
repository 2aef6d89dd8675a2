"""A test --app whose import waits while the file named by GJ_TEST_BOOT_GATE exists: a child
started then is stuck before it is ready (the supervisor imports the app only in children).

With GJ_TEST_BOOT_MARK set too, the stuck child tells the test where it is, in that file:
``booting <pid>`` once it is waiting (its signal handlers are installed by then), and ``term``
when a SIGTERM reaches it (then the child's own handler runs, unchanged).
"""

from __future__ import annotations

import os
import signal
import time

from tests.jobs_for_tests import *  # noqa: F403 - the jobs

_gate = os.environ.get("GJ_TEST_BOOT_GATE")
_mark = os.environ.get("GJ_TEST_BOOT_MARK")


def _note(line: str) -> None:
    assert _mark is not None
    with open(_mark, "a") as fh:
        fh.write(f"{line}\n")


if _gate and _mark and os.path.exists(_gate):
    _theirs = signal.getsignal(signal.SIGTERM)

    def _on_term(signum: int, frame: object) -> None:
        _note("term")
        if callable(_theirs):
            _theirs(signum, frame)

    signal.signal(signal.SIGTERM, _on_term)
    _note(f"booting {os.getpid()}")

while _gate and os.path.exists(_gate):
    time.sleep(0.05)
