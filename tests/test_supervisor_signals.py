"""USR1, USR2, TTIN and TTOU sent to a real supervisor (the table in docs/operations.md)."""

from __future__ import annotations

import os
import signal

import psutil
import pytest

from tests import jobs_for_tests as J
from tests.supervising import *  # noqa: F403 - the start and records fixtures
from tests.supervising import start_daemon
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(120)


def test_usr1_reopens_the_log_file_in_the_supervisor_and_its_children(tmp_path, db):
    daemon, _, log_file = start_daemon(tmp_path, "*:1;*:1")
    rotated = tmp_path / "d.log.1"
    try:
        assert wait_for(lambda: "all 2 pool(s) are up" in log_file.read_text(), 30)
        log_file.rename(rotated)  # what logrotate does before it sends USR1
        os.kill(daemon, signal.SIGUSR1)
        assert wait_for(lambda: log_file.exists() and "reopened" in log_file.read_text(), 20)
        assert wait_for(lambda: log_file.read_text().count("reopened log file") == 3, 20), (
            log_file.read_text()
        )  # the supervisor and both children
        for signum in (signal.SIGUSR2, signal.SIGTTIN, signal.SIGTTOU):
            os.kill(daemon, signum)
        assert wait_for(lambda: "TTOU: ignored" in log_file.read_text(), 20)
        text = log_file.read_text()
        assert "USR2: ignored" in text and "TTIN: ignored" in text
        J.remember.perform_later("after-usr1")
        assert wait_for(lambda: J.lines(tmp_path, "remember") == ["after-usr1"], 20)
        assert psutil.pid_exists(daemon)
        assert "reopened" not in rotated.read_text()
    finally:
        os.kill(daemon, signal.SIGTERM)
    assert wait_for(lambda: not psutil.pid_exists(daemon), 30)
    assert "exited" in log_file.read_text()  # output goes on to the new file until the end


def test_usr1_without_a_log_file_and_usr2_are_logged_and_survived(start, records):
    sup = start("--queues=*:1")
    [child] = sup.wait_ready()
    for signum in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTTIN, signal.SIGTTOU):
        sup.signal(signum)
    os.kill(child, signal.SIGUSR2)  # a child ignores it too
    assert wait_for(lambda: "TTOU: ignored" in sup.output(), 20), sup.output()
    assert "USR1: no --log-file to reopen" in sup.output()
    J.remember.perform_later("alive")
    assert wait_for(lambda: J.lines(records, "remember") == ["alive"], 20)
    assert sup.children() == [child]
    sup.signal(signal.SIGTERM)
    assert sup.wait_exit() == 0
