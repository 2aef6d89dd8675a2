"""The supervisor as a real process: forked children, signals, crash recovery, daemon, systemd.

Every test starts ``goodjob-supervisor`` through the CLI against the session's test database and
talks to it only from outside (signals, the database, files the jobs write, HTTP, a fake notify
socket). Every wait is bounded; nothing asserts on speed.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import psycopg
import pytest

from tests import jobs_for_tests as J
from tests.supervising import *  # noqa: F403 - the start and records fixtures
from tests.supervising import CLI, ROOT, execution_errors, gone, job_row, start_daemon
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(90)

# --- crash and restart ------------------------------------------------------------------------


def test_kill9_child_reruns_its_job_once_and_is_replaced(start, records, db):
    sup = start("--queues=*:2")
    [child] = sup.wait_ready()
    job = J.sleepy.perform_later("k", 1.0)
    assert wait_for(lambda: J.lines(records, "started") == ["k"])
    os.kill(child, signal.SIGKILL)
    assert wait_for(lambda: J.lines(records, "finished") == ["k"]), sup.output()
    assert J.lines(records, "started") == ["k", "k"]
    assert wait_for(lambda: sup.children() and sup.children() != [child])
    J.remember.perform_later("after")
    assert wait_for(lambda: J.lines(records, "remember") == ["after"])
    assert any(e and "Interrupt" in e for e in execution_errors(db, job.id))
    assert job_row(db, job.id)[0] is not None
    sup.signal(signal.SIGTERM)
    assert sup.wait_exit() == 0
    assert J.lines(records, "finished") == ["k"]


def test_supervisor_started_before_migrate_refuses_before_forking(start, database_url):
    info = psycopg.conninfo.conninfo_to_dict(database_url)
    empty = f"{info['dbname']}_empty"
    admin = psycopg.conninfo.make_conninfo(**{**info, "dbname": "postgres"})
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{empty}"')
    try:
        url = psycopg.conninfo.make_conninfo(**{**info, "dbname": empty})
        sup = start("--queues=*:1", env={"GOOD_JOB_DATABASE_URL": url})
        assert sup.wait_exit(60) == 1
        out = sup.output()
        # The schema is checked once before any fork: one line naming the fix, no restarts.
        assert "goodjob-supervisor migrate" in out
        assert "failed to start" not in out and "Traceback" not in out
        assert len(out.strip().splitlines()) == 1
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{empty}" WITH (FORCE)')


# --- signals ----------------------------------------------------------------------------------


def test_term_lets_short_jobs_finish_and_hands_long_ones_back(start, records, db):
    sup = start("--queues=*:3", "--shutdown-timeout=1.5")
    kids = sup.wait_ready()
    short = J.sleepy.perform_later("short", 0.6)
    long = J.sleepy.perform_later("long", 3.0)
    assert wait_for(lambda: sorted(J.lines(records, "started")) == ["long", "short"])
    sup.signal(signal.SIGTERM)
    assert sup.wait_exit() == 0
    assert gone(kids)
    assert J.lines(records, "finished") == ["short"]
    assert job_row(db, short.id)[0] is not None
    finished_at, locked_by, performed_at, _ = job_row(db, long.id)
    assert finished_at is None and locked_by is None and performed_at is not None
    assert "STOPPING" not in sup.output()  # no notify socket: nothing sent, nothing logged

    again = start("--queues=*:1", name="again")
    assert wait_for(lambda: J.lines(records, "finished") == ["short", "long"], 30), again.output()
    assert any(e and "Interrupt" in e for e in execution_errors(db, long.id))
    again.signal(signal.SIGTERM)
    assert again.wait_exit() == 0


@pytest.mark.parametrize("signum", [signal.SIGQUIT, signal.SIGINT])
def test_quit_stops_now_and_int_drains(start, records, db, signum):
    sup = start("--queues=*:1", "--shutdown-timeout=-1")
    kids = sup.wait_ready()
    seconds = 30.0 if signum == signal.SIGQUIT else 0.8
    job = J.sleepy.perform_later("x", seconds)
    assert wait_for(lambda: J.lines(records, "started") == ["x"])
    sup.signal(signum)
    assert sup.wait_exit(20) == 0
    assert gone(kids)
    finished_at, locked_by, _, _ = job_row(db, job.id)
    if signum == signal.SIGQUIT:
        assert finished_at is None and locked_by is None  # handed back, will run again
    else:
        assert finished_at is not None and J.lines(records, "finished") == ["x"]


def test_hup_restarts_pools_one_at_a_time_without_losing_or_repeating_jobs(start, records, db):
    sup = start("--queues=default:2;*:1")
    old = set(sup.wait_ready(pools=2))
    J.sleepy.perform_later("inflight", 1.0)
    for i in range(30):
        J.remember.perform_later(f"a{i}")
    assert wait_for(lambda: J.lines(records, "started") == ["inflight"])
    sup.signal(signal.SIGHUP)
    for i in range(30):
        J.remember.perform_later(f"b{i}")
    assert wait_for(lambda: len(set(sup.children()) - old) == 2, 30), sup.output()
    assert wait_for(lambda: not (set(sup.children()) & old), 30), sup.output()
    for i in range(10):
        J.remember.perform_later(f"c{i}")
    expected = sorted([f"a{i}" for i in range(30)] + [f"b{i}" for i in range(30)])
    expected += [f"c{i}" for i in range(10)]
    assert wait_for(lambda: len(J.lines(records, "remember")) >= 70, 30)
    time.sleep(0.3)
    assert sorted(J.lines(records, "remember")) == sorted(expected)
    assert J.lines(records, "started") == ["inflight"]
    assert J.lines(records, "finished") == ["inflight"]
    sup.signal(signal.SIGTERM)
    assert sup.wait_exit() == 0


WAITING_FOR_THE_REGISTRY = """
SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
WHERE NOT l.granted AND c.relname = 'good_job_processes' AND l.pid <> pg_backend_pid()
"""


def _signal_pending(pid: int, signum: int) -> bool:
    """Whether ``signum`` is pending (sent, not yet delivered) for process ``pid``."""
    fields = dict(
        line.split(":", 1)
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if ":" in line
    )
    bit = 1 << (signum - 1)
    return any(int(fields[name].strip(), 16) & bit for name in ("SigPnd", "ShdPnd"))


def test_term_during_start_up_stops_before_any_job_is_claimed(start, records, db):
    J.remember.perform_later("never")
    # Hold the registry table so the supervisor is stuck starting, then TERM it there.
    blocker = psycopg.connect(os.environ["GOOD_JOB_DATABASE_URL"])
    blocker.execute("LOCK TABLE good_job_processes IN ACCESS EXCLUSIVE MODE")
    try:
        sup = start("--queues=*:1")
        # Waiting for the lock means registering (Arbiter.start), which comes after the signal
        # handlers are installed: from here TERM is the supervisor's to handle.
        assert wait_for(lambda: db.execute(WAITING_FOR_THE_REGISTRY).fetchone()[0] == 1, 30), (
            sup.output()
        )
        assert sup.proc.poll() is None
        sup.signal(signal.SIGTERM)
        # Delivered while it still waits (the lock is held until the finally below).
        assert wait_for(lambda: not _signal_pending(sup.pid, signal.SIGTERM), 30)
    finally:
        blocker.rollback()
        blocker.close()
    assert sup.wait_exit() == 0
    assert "forked child" not in sup.output()
    assert J.lines(records, "remember") == []
    locked = db.execute("SELECT count(*) FROM good_jobs WHERE locked_by_id IS NOT NULL")
    assert locked.fetchone()[0] == 0


def test_term_while_a_child_is_starting_stops_it_before_any_job_is_claimed(
    start, records, db, tmp_path
):
    gate, mark = tmp_path / "gate", tmp_path / "booting"
    gate.touch()
    J.remember.perform_later("never")
    env = {"GJ_TEST_BOOT_GATE": str(gate), "GJ_TEST_BOOT_MARK": str(mark)}
    sup = start("--queues=*:1", "--app=tests.slow_boot_app", env=env)
    # The child says when it is stuck importing the app, and when the TERM has reached it.
    assert wait_for(lambda: J.lines(tmp_path, "booting")[:1], 30), sup.output()
    sup.signal(signal.SIGTERM)
    assert wait_for(lambda: "term" in J.lines(tmp_path, "booting"), 30), sup.output()
    os.unlink(gate)  # the import finishes; the child leaves before it starts its worker
    assert sup.wait_exit() == 0
    assert "pool(s) are up" not in sup.output()
    assert J.lines(records, "remember") == []
    assert (
        db.execute("SELECT count(*) FROM good_jobs WHERE locked_by_id IS NOT NULL").fetchone()[0]
        == 0
    )
    assert "restarting pool" not in sup.output()


def test_a_flood_of_signals_is_survived(start, records, db):
    sup = start("--queues=*:2")
    sup.wait_ready()
    for _ in range(40):
        sup.signal(signal.SIGHUP)
        sup.signal(signal.SIGCHLD)
    for i in range(20):
        J.remember.perform_later(str(i))
    assert wait_for(lambda: len(J.lines(records, "remember")) == 20, 40), sup.output()
    assert sup.proc.poll() is None
    for _ in range(10):
        sup.signal(signal.SIGTERM)
        sup.signal(signal.SIGINT)
    assert sup.wait_exit() == 0
    assert sorted(J.lines(records, "remember"), key=int) == [str(i) for i in range(20)]


# --- the supervisor dies ----------------------------------------------------------------------


def test_children_stop_when_the_supervisor_is_killed_and_next_one_recovers(start, records, db):
    env = {"GOOD_JOB_DEAD_PROCESS_TIMEOUT": "1.5", "GOOD_JOB_SHUTDOWN_TIMEOUT": "0.5"}
    sup = start("--queues=*:1", env=env)
    kids = sup.wait_ready()
    job = J.sleepy.perform_later("orphan", 2.5)
    assert wait_for(lambda: J.lines(records, "started") == ["orphan"])
    sup.signal(signal.SIGKILL)
    sup.wait_exit()
    assert wait_for(lambda: gone(kids), 15)
    assert job_row(db, job.id)[1] is not None  # still locked by the dead child
    nxt = start("--queues=*:1", env=env, name="next")
    assert wait_for(lambda: J.lines(records, "finished") == ["orphan"], 40), nxt.output()
    assert J.lines(records, "started") == ["orphan", "orphan"]
    nxt.signal(signal.SIGTERM)
    assert nxt.wait_exit() == 0


def test_two_supervisors_share_one_database_without_running_a_job_twice(start, records, db):
    first = start("--queues=*:2;*:2", name="one")
    second = start("--queues=*:2", name="two")
    first.wait_ready(pools=2)
    second.wait_ready()
    for i in range(300):
        J.remember.perform_later(str(i))
    assert wait_for(lambda: len(J.lines(records, "remember")) >= 300, 60)
    time.sleep(0.5)
    assert sorted(J.lines(records, "remember"), key=int) == [str(i) for i in range(300)]
    for sup in (first, second):
        sup.signal(signal.SIGTERM)
    assert first.wait_exit() == 0 and second.wait_exit() == 0
    assert db.execute("SELECT count(*) FROM good_job_processes").fetchone()[0] == 0


# --- pidfile and daemon -----------------------------------------------------------------------


def test_pidfile_refuses_a_live_supervisor_and_replaces_a_stale_one(start, tmp_path):
    pidfile = tmp_path / "gj.pid"
    dead = subprocess.Popen(["true"])
    dead.wait()
    pidfile.write_text(f"{dead.pid}\n")
    sup = start("--queues=*:1", f"--pidfile={pidfile}")
    sup.wait_ready()
    assert pidfile.read_text().strip() == str(sup.pid)
    second = start("--queues=*:1", f"--pidfile={pidfile}", name="second")
    assert second.wait_exit() == 1
    assert "already running" in second.output()
    assert pidfile.read_text().strip() == str(sup.pid)
    sup.signal(signal.SIGTERM)
    assert sup.wait_exit() == 0
    assert not pidfile.exists()


def test_daemonize_detaches_writes_the_pidfile_and_is_refused_under_systemd(tmp_path, db):
    daemon, pidfile, log_file = start_daemon(tmp_path, "*:1")
    try:
        assert psutil.pid_exists(daemon)
        J.remember.perform_later("from-daemon")
        assert wait_for(lambda: J.lines(tmp_path, "remember") == ["from-daemon"])
    finally:
        os.kill(daemon, signal.SIGTERM)
    assert wait_for(lambda: not psutil.pid_exists(daemon), 30)
    assert not pidfile.exists()
    assert "all 1 pool(s) are up" in log_file.read_text()

    args = [*CLI, "--app", "tests.jobs_for_tests", "--queues=*:1", "--daemonize"]
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "nowhere.sock")}
    refused = subprocess.run(args, cwd=ROOT, env=env, timeout=60, capture_output=True, text=True)
    assert refused.returncode != 0
    assert "systemd" in refused.stderr and "--daemonize" in refused.stderr


# --- systemd, probe, memory, idle -------------------------------------------------------------


def test_notify_socket_receives_ready_status_watchdog_and_stopping(start, tmp_path):
    path = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(path)
    listener.settimeout(0.5)
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"}
    sup = start("--queues=*:1;*:1", env=env)
    seen: list[str] = []

    def receive_until(word: str, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                seen.extend(listener.recv(4096).decode().splitlines())
            except TimeoutError:
                continue
            if any(line.startswith(word) for line in seen):
                return True
        return False

    try:
        assert receive_until("READY=1"), seen
        assert receive_until("WATCHDOG=1"), seen
        assert any(line.startswith("STATUS=2 pools") for line in seen), seen
        assert any("running" in line for line in seen if line.startswith("STATUS="))
        sup.signal(signal.SIGTERM)
        assert receive_until("STOPPING=1"), seen
        assert sup.wait_exit() == 0
    finally:
        listener.close()


def _get(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_probe_endpoints_flip_to_503_while_a_child_is_down(start):
    sup = start("--queues=*:1;*:1", "--probe-port=0")
    kids = sup.wait_ready(pools=2)
    port = int(re.search(r"probe server listening on port (\d+)", sup.output()).group(1))
    for path in ("/", "/status", "/status/started", "/status/connected"):
        assert wait_for(lambda p=path: _get(port, p) == 200, 10), path
    os.kill(kids[0], signal.SIGKILL)
    assert wait_for(lambda: _get(port, "/status/started") == 503, 10, step=0.005)
    assert _get(port, "/status") == 200
    assert wait_for(lambda: _get(port, "/status/started") == 200, 20)
    assert wait_for(lambda: _get(port, "/status/connected") == 200, 20)
    sup.signal(signal.SIGTERM)
    assert sup.wait_exit() == 0


def test_child_over_max_memory_is_drained_and_replaced(start, records):
    sup = start("--queues=*:1", "--max-memory=1")
    [first] = sup.wait_ready()
    assert wait_for(lambda: "over --max-memory" in sup.output(), 20), sup.output()
    assert wait_for(lambda: sup.children() and first not in sup.children(), 20)
    J.remember.perform_later("still-works")
    assert wait_for(lambda: J.lines(records, "remember") == ["still-works"], 20)
    sup.signal(signal.SIGTERM)
    assert sup.wait_exit() == 0
    assert "restarting pool" not in sup.output()  # replaced, not counted as a crash


def test_idle_timeout_exits_cleanly(start, records):
    J.remember.perform_later("one")
    sup = start("--queues=*:1", "--idle-timeout=1.5")
    assert sup.wait_exit(30) == 0
    assert J.lines(records, "remember") == ["one"]
    assert "idle-timeout" in sup.output()
