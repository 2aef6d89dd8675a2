"""Collecting an exited child ends its process group first (goodjob_mp.supervisor.reaping).

Real processes: a child leading its own group, with a ``sleep`` it started in that group. The
one race that matters (the child exits between the supervisor's look and its reap, as it does
when the status pipe's EOF wakes the supervisor before the child is a zombie) is forced by
wrapping ``os.waitid`` so that the child dies right after a look that found it running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from goodjob_mp.supervisor import reaping
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(60)

FAMILY = (
    "import subprocess, time\n"
    "p = subprocess.Popen(['sleep', '1000'])\n"
    "print(p.pid, flush=True)\n"
    "time.sleep(1000)\n"
)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _zombie(pid: int) -> bool:
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state == "Z"


@pytest.fixture()
def family():
    """(child, grandchild): the child leads its own group; the grandchild is in it."""
    child = subprocess.Popen(
        [sys.executable, "-c", FAMILY], stdout=subprocess.PIPE, text=True, process_group=0
    )
    grandchild = int(child.stdout.readline())
    assert os.getpgid(grandchild) == child.pid
    yield child, grandchild
    for pid in (grandchild, child.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        os.waitpid(child.pid, 0)
    except ChildProcessError:
        pass


def test_a_running_child_is_left_alone(family):
    child, grandchild = family
    assert reaping.collect_exited(child.pid) is None
    assert _alive(child.pid) and _alive(grandchild)
    assert not _zombie(child.pid)


def test_a_child_that_exits_after_the_look_still_has_its_group_ended(family, monkeypatch):
    child, grandchild = family
    real_waitid = os.waitid
    fired: list[bool] = []

    def waitid_then_the_child_dies(*args):
        result = real_waitid(*args)
        if result is None and not fired:
            fired.append(True)
            os.kill(child.pid, signal.SIGKILL)
            assert wait_for(lambda: _zombie(child.pid), 20)
        return result

    monkeypatch.setattr(os, "waitid", waitid_then_the_child_dies)
    status = None
    for _ in range(3):  # one look per supervisor pass
        status = reaping.collect_exited(child.pid)
        if status is not None:
            break
    assert fired
    assert status is not None and os.WIFSIGNALED(status)
    assert os.WTERMSIG(status) == signal.SIGKILL
    assert wait_for(lambda: not _alive(grandchild), 20)  # not left running for good


def test_an_exited_child_is_reaped_after_its_group_is_killed(family):
    child, grandchild = family
    os.kill(child.pid, signal.SIGKILL)
    assert wait_for(lambda: _zombie(child.pid), 20)
    assert _alive(grandchild)
    status = reaping.collect_exited(child.pid)
    assert status is not None and os.WTERMSIG(status) == signal.SIGKILL
    assert wait_for(lambda: not _alive(grandchild), 20)
    assert reaping.collect_exited(child.pid) == 0  # no longer our child
