"""A test --app whose import waits while the file named by GJ_TEST_BOOT_GATE exists: a child
started then is stuck before it is ready (the supervisor imports the app only in children)."""

from __future__ import annotations

import os
import time

from tests.jobs_for_tests import *  # noqa: F403 - the jobs

_gate = os.environ.get("GJ_TEST_BOOT_GATE")
while _gate and os.path.exists(_gate):
    time.sleep(0.05)
