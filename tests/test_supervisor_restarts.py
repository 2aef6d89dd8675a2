"""Restart policy seen from outside: the back-off between restarts of a pool that keeps failing,
and a rolling restart (HUP) that keeps the old child until the new one is ready."""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import urllib.request

import pytest

from tests import jobs_for_tests as J
from tests.supervising import *  # noqa: F403 - the start and records fixtures
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(120)

STAMP = r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) "


def stamped(output: str, pattern: str) -> list[tuple[dt.datetime, re.Match]]:
    found = []
    for line in output.splitlines():
        m = re.match(STAMP + r".*?" + pattern, line)
        if m:
            found.append((dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f"), m))
    return found


def test_a_pool_crashing_at_boot_is_restarted_after_a_growing_back_off(start):
    sup = start("--queues=*:1", "--app=tests.broken_app")
    assert sup.wait_exit(60) == 1
    out = sup.output()
    assert "failed to start 3 times in a row" in out and "broken on purpose" in out
    delays = stamped(out, r"restarting pool \S+ in ([\d.]+)s")
    forks = stamped(out, r"forked child")
    assert len(forks) == 3 and len(delays) == 2, out
    # restart_backoff_seconds: 0.25-0.5 s after the first failure, 0.5-1 s after the second.
    for (logged_at, _), (forked_at, _), least in zip(delays, forks[1:], (0.25, 0.5), strict=True):
        waited = (forked_at - logged_at).total_seconds()
        assert waited >= least - 0.002, out  # log stamps are whole milliseconds


def test_hup_keeps_the_old_child_serving_until_the_new_one_is_ready(start, records, tmp_path):
    gate = tmp_path / "gate"
    env = {"GJ_TEST_BOOT_GATE": str(gate)}
    sup = start("--queues=*:1", "--app=tests.slow_boot_app", "--probe-port=0", env=env)
    [old] = sup.wait_ready()
    port = int(re.search(r"probe server listening on port (\d+)", sup.output()).group(1))
    gate.touch()  # the next child is stuck importing the app
    sup.signal(signal.SIGHUP)
    assert wait_for(lambda: len(stamped(sup.output(), "forked child")) == 2, 20), sup.output()
    # The probe is answered from the loop: after a few answers the loop has made full passes
    # (manage() included) since the new child was forked.
    for _ in range(3):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as resp:
            assert resp.status == 200
    J.remember.perform_later("during")
    assert wait_for(lambda: J.lines(records, "remember") == ["during"], 20), sup.output()
    assert old in sup.children()
    assert f"child {old} (pool" not in sup.output()  # never killed, never exited
    os.unlink(gate)
    assert wait_for(lambda: sup.output().count("pool(s) are up") == 2, 30), sup.output()
    assert wait_for(lambda: old not in sup.children(), 30)
    J.remember.perform_later("after")
    assert wait_for(lambda: J.lines(records, "remember") == ["during", "after"], 20)
    sup.signal(signal.SIGTERM)
    assert sup.wait_exit() == 0
