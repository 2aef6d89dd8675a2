"""Operations edges: memory over the limit, process groups, TERM to one child, the stale
pidfile held by a lookalike, and the probe's address."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import psutil
import pytest

from tests import jobs_for_tests as J
from tests.supervising import *  # noqa: F403 - the start and records fixtures
from tests.supervising import execution_errors, gone, job_row
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(120)


def test_over_max_memory_a_child_gets_a_short_deadline_then_sigkill(start, records, db):
    job = J.sleepy.perform_later("big", 60.0)
    sup = start("--queues=*:1", "--max-memory=1", "--shutdown-timeout=60")
    assert wait_for(lambda: J.lines(records, "started") == ["big"], 30), sup.output()
    assert wait_for(lambda: "over --max-memory" in sup.output(), 20), sup.output()
    # Not the 60 s shutdown timeout: its own short deadline, then SIGKILL.
    assert wait_for(lambda: "still running at its memory deadline" in sup.output(), 20)
    assert wait_for(lambda: any(e and "Interrupt" in e for e in execution_errors(db, job.id)), 30)
    assert "restarting pool" not in sup.output()  # replaced, not counted as a crash
    sup.signal(signal.SIGQUIT)
    assert sup.wait_exit() == 0


def _sleepers(records) -> dict[str, list[int]]:
    """The pids of the subprocesses each spawn_sleeper job started, by the job's tag."""
    found: dict[str, list[int]] = {}
    for line in J.lines(records, "sleeper"):
        tag, pid = line.split()
        found.setdefault(tag, []).append(int(pid))
    return found


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_what_a_job_spawns_ends_with_its_child(start, records, db):
    # max_interrupts=1: the job cut off by the SIGKILL is discarded when it is next claimed, not
    # run again. Run again it would wait on a new sleeper, and the TERM at the end would wait out
    # the 25 s shutdown timeout (the flaky "did not exit within 30s" under load).
    sup = start("--queues=*:1", "--app=tests.spawning_app", env={"GOOD_JOB_MAX_INTERRUPTS": "1"})
    [child] = sup.wait_ready()
    from tests import spawning_app

    killed = spawning_app.spawn_sleeper.perform_later("killed", True)
    assert wait_for(lambda: "killed" in _sleepers(records), 20), sup.output()
    [first] = _sleepers(records)["killed"]
    assert psutil.Process(first).ppid() == child
    os.kill(child, signal.SIGKILL)
    assert wait_for(lambda: not _alive(first), 20)  # the group is ended (reaping.py)

    # A job that leaves its subprocess behind and returns: it ends when its child stops.
    assert wait_for(lambda: [p for p in sup.children() if p != child], 30), sup.output()
    spawning_app.spawn_sleeper.perform_later("left-behind", False)
    assert wait_for(lambda: "left-behind" in _sleepers(records), 20), sup.output()
    [second] = _sleepers(records)["left-behind"]
    assert _alive(second)
    assert _sleepers(records)["killed"] == [first]  # discarded, never run a second time
    assert wait_for(lambda: "max_interrupts" in (job_row(db, killed.id)[3] or ""), 20)
    sup.signal(signal.SIGTERM)
    assert sup.wait_exit() == 0
    assert "still running at its shutdown deadline" not in sup.output()
    assert wait_for(lambda: not _alive(second), 20)


def test_term_sent_to_one_child_is_a_clean_stop_replaced_at_once(start, records):
    sup = start("--queues=*:1;*:1")
    first, second = sup.wait_ready(pools=2)
    os.kill(first, signal.SIGTERM)
    assert wait_for(lambda: gone([first]), 20)
    assert wait_for(lambda: "stopped cleanly" in sup.output(), 20), sup.output()
    assert wait_for(lambda: len(sup.children()) == 2, 20)
    assert second in sup.children()
    out = sup.output()
    assert "restarting pool" not in out and f"child {first} (pool *:1) exited: exit code 0" in out
    J.remember.perform_later("still-served")
    assert wait_for(lambda: J.lines(records, "remember") == ["still-served"], 20)
    sup.signal(signal.SIGTERM)
    assert sup.wait_exit() == 0


def test_a_lookalike_process_in_a_stale_pidfile_does_not_block_the_start(start, tmp_path):
    # An unrelated process whose command line says goodjob-supervisor (tail -f ...log).
    lookalike = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(1000)", "goodjob-supervisor"]
    )
    try:
        assert wait_for(
            lambda: "goodjob-supervisor" in " ".join(psutil.Process(lookalike.pid).cmdline()), 10
        )
        pidfile = tmp_path / "gj.pid"
        pidfile.write_text(f"{lookalike.pid}\n")
        sup = start("--queues=*:1", f"--pidfile={pidfile}")
        sup.wait_ready()
        assert pidfile.read_text().strip() == str(sup.pid)
        assert "replacing stale pidfile" in sup.output()
        assert lookalike.poll() is None  # never touched
        sup.signal(signal.SIGTERM)
        assert sup.wait_exit() == 0
    finally:
        lookalike.kill()
        lookalike.wait()


def _listening(pid: int, port: int) -> set[str]:
    return {
        c.laddr.ip
        for c in psutil.Process(pid).net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    }


@pytest.mark.parametrize(
    ("args", "address"), [((), "127.0.0.1"), (("--probe-bind=0.0.0.0",), "0.0.0.0")]
)
def test_probe_listens_on_loopback_unless_told(start, args, address):
    sup = start("--queues=*:1", "--probe-port=0", *args)
    sup.wait_ready()
    port = int(re.search(r"probe server listening on port (\d+)", sup.output()).group(1))
    assert _listening(sup.pid, port) == {address}
    sup.signal(signal.SIGTERM)
    assert sup.wait_exit() == 0
