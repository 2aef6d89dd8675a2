"""A child whose status reports stop (it hangs) is killed and replaced after --child-timeout,
and its running job runs again, recorded as interrupted."""

from __future__ import annotations

import os
import signal

import pytest

from tests import jobs_for_tests as J
from tests.supervising import *  # noqa: F403 - the start and records fixtures
from tests.supervising import execution_errors, gone, job_row
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(120)


def test_a_silent_child_is_killed_replaced_and_its_job_rerun(start, records, db):
    sup = start("--queues=*:2", "--child-timeout=2")
    [child] = sup.wait_ready()
    job = J.sleepy.perform_later("hung", 3.0)
    assert wait_for(lambda: J.lines(records, "started") == ["hung"], 20)
    os.kill(child, signal.SIGSTOP)  # alive, but silent: what a deadlocked child looks like
    assert wait_for(lambda: "no status report for" in sup.output(), 30), sup.output()
    assert wait_for(lambda: gone([child]), 20)
    assert wait_for(lambda: sup.children() and child not in sup.children(), 20)
    assert wait_for(lambda: J.lines(records, "finished") == ["hung"], 40), sup.output()
    assert J.lines(records, "started") == ["hung", "hung"]
    assert wait_for(lambda: job_row(db, job.id)[0] is not None, 20)
    assert any(e and "Interrupt" in e for e in execution_errors(db, job.id))
    assert "restarting pool" not in sup.output()  # replaced at once, not backed off as a crash
    sup.signal(signal.SIGTERM)
    assert sup.wait_exit() == 0


def test_child_timeout_is_validated(start):
    sup = start("--queues=*:1", "--child-timeout=0.5")
    assert sup.wait_exit(30) != 0
    assert "child_timeout" in sup.output() and "-1 to disable" in sup.output()
