"""A test --app (used with --preload) that breaks the supervisor from inside, on request.

- ``GJ_TEST_FORK_FAULT=<file>``: while the file exists, the next child's set-up after the fork
  (``Arbiter._in_child``) raises once (the file is removed).
- ``GJ_TEST_STRAY_THREAD=1``: importing this module starts a thread (as some libraries do).
- ``GJ_TEST_CRON_BUG=1``: the cron tick raises a ZeroDivisionError (a bug, not the database).
"""

from __future__ import annotations

import os
import threading
import time

from goodjob_mp import cron
from goodjob_mp.supervisor import arbiter
from tests.jobs_for_tests import *  # noqa: F403 - the jobs

_in_child = arbiter.Arbiter._in_child


def _faulty_in_child(self, own_read_fd):
    flag = os.environ.get("GJ_TEST_FORK_FAULT")
    if flag and os.path.exists(flag):
        os.unlink(flag)
        raise RuntimeError("injected fault in the child's set-up")
    return _in_child(self, own_read_fd)


arbiter.Arbiter._in_child = _faulty_in_child

if os.environ.get("GJ_TEST_STRAY_THREAD"):
    threading.Thread(target=time.sleep, args=(3600,), name="stray-app-thread", daemon=True).start()

if os.environ.get("GJ_TEST_CRON_BUG"):

    def _buggy_tick(self):
        return 1 / 0

    cron.CronScheduler.tick = _buggy_tick
