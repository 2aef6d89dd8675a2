"""Faults inside the supervisor: a child's set-up that raises after the fork, threads at fork
time, and a bug in a timed duty (which must show its traceback and the probe, not loop)."""

from __future__ import annotations

import json
import os
import re
import signal
import urllib.error
import urllib.request

import pytest

from tests.supervising import *  # noqa: F403 - the start and records fixtures
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(120)

APP = ("--app=tests.fork_fault_app", "--preload")


def supervisor_row_count(db, pid: int) -> int:
    return db.execute(
        "SELECT count(*) FROM good_job_processes WHERE (state->>'pid')::int = %s", (pid,)
    ).fetchone()[0]


def test_an_exception_in_the_childs_set_up_never_reaches_the_supervisors_frames(
    start, tmp_path, db
):
    flag = tmp_path / "fault"
    sup = start("--queues=*:1;*:1", *APP, env={"GJ_TEST_FORK_FAULT": str(flag)})
    first, second = sup.wait_ready(pools=2)
    assert wait_for(lambda: supervisor_row_count(db, sup.pid) == 1, 20)
    flag.touch()
    os.kill(first, signal.SIGKILL)  # its replacement's set-up raises
    assert wait_for(lambda: not flag.exists(), 20), sup.output()
    assert wait_for(lambda: "child set-up failed" in sup.output(), 20), sup.output()
    # The pool comes back, the sibling was never touched, the supervisor's row is still there.
    assert wait_for(lambda: len(sup.children()) == 2 and first not in sup.children(), 30)
    assert second in sup.children()
    assert supervisor_row_count(db, sup.pid) == 1
    assert "injected fault" in sup.output()
    sup.signal(signal.SIGTERM)
    assert sup.wait_exit() == 0


def test_forking_with_threads_warns_naming_them(start):
    sup = start("--queues=*:1", *APP, env={"GJ_TEST_STRAY_THREAD": "1"})
    sup.wait_ready()
    assert re.search(
        r"forking with 1 thread\(s\) besides the main one: stray-app-thread", sup.output()
    )
    sup.signal(signal.SIGTERM)
    assert sup.wait_exit() == 0


def _status(port: int, path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_bug_in_the_cron_tick_shows_its_traceback_once_and_surfaces_in_the_probe(start):
    cron = {"never": {"cron": "0 0 1 1 *", "class": "tests.jobs_for_tests.noop"}}
    env = {"GJ_TEST_CRON_BUG": "1", "GOOD_JOB_CRON": json.dumps(cron)}
    sup = start("--queues=*:1", "--enable-cron", "--probe-port=0", *APP, env=env)
    sup.wait_ready()
    port = int(re.search(r"probe server listening on port (\d+)", sup.output()).group(1))
    assert wait_for(lambda: "ZeroDivisionError" in sup.output(), 20), sup.output()
    assert "Traceback" in sup.output()
    code, body = _status(port, "/status/connected")
    assert code == 503
    assert "cron" in body["detail"]["failed_duties"]
    assert _status(port, "/status")[0] == 200
    sup.signal(signal.SIGTERM)
    assert sup.wait_exit() == 0
    assert sup.output().count("supervisor duty cron failed") == 1
