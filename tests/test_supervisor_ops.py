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
from tests.supervising import execution_errors, gone
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


def _sleepers(records) -> list[int]:
    return [int(p) for p in J.lines(records, "sleeper")]


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_what_a_job_spawns_ends_with_its_child(start, records):
    sup = start("--queues=*:1", "--app=tests.spawning_app")
    [child] = sup.wait_ready()
    from tests import spawning_app

    spawning_app.spawn_sleeper.perform_later("killed", True)
    assert wait_for(lambda: len(_sleepers(records)) == 1, 20), sup.output()
    [first] = _sleepers(records)
    assert psutil.Process(first).ppid() == child
    os.kill(child, signal.SIGKILL)
    assert wait_for(lambda: not _alive(first), 20)

    # A job that leaves its subprocess behind and returns: it ends when its child stops.
    sup.wait_ready()
    spawning_app.spawn_sleeper.perform_later("left-behind", False)
    assert wait_for(lambda: len(_sleepers(records)) >= 2, 20), sup.output()
    second = _sleepers(records)[-1]
    assert _alive(second)
    sup.signal(signal.SIGTERM)
    assert sup.wait_exit() == 0
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
