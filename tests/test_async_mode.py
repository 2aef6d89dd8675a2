"""execution_mode = "async": a web server process starts its in-process workers at its first
enqueue (as GoodJob's :async runs jobs in the web server only), other processes leave the jobs
to a worker, and ``goodjob_mp.restart()`` restarts the workers, in a forked child too.

Real processes: the web server is the standard library's wsgiref serving tests/async_web_app.py;
jobs record the pid that performed them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest

from goodjob_mp.async_autostart import SUPERVISOR_MODULE, should_start
from tests import jobs_for_tests as J
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parent.parent


def _env(records: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        J.RECORD_DIR_ENV: str(records),
        "GOOD_JOB_EXECUTION_MODE": "async",
        "GOOD_JOB_POLL_INTERVAL": "1",
        **extra,
    }


def _performed(records: Path) -> dict[str, int]:
    return {line.split()[0]: int(line.split()[1]) for line in J.lines(records, "async_pid")}


def test_the_start_rule():
    web = {"uvicorn.server"}
    assert should_start("async", web)
    assert not should_start("external", web)
    assert not should_start("inline", web)
    assert not should_start("async", {"goodjob_mp", "flask"})  # a shell, a script, a migration
    assert not should_start("async", web | {SUPERVISOR_MODULE})  # the supervisor's children


def test_a_web_server_process_starts_async_workers_at_its_first_enqueue(db, tmp_path):
    port_file = tmp_path / "port"
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.async_web_app", str(port_file)],
        cwd=ROOT,
        env=_env(tmp_path),
    )
    try:
        assert wait_for(port_file.exists, 30)
        base = f"http://127.0.0.1:{port_file.read_text()}"
        assert db.execute("SELECT count(*) FROM good_job_processes").fetchone()[0] == 0
        for tag in ("first", "second"):
            with urllib.request.urlopen(f"{base}/?tag={tag}", timeout=30) as resp:
                assert resp.status == 200
            assert wait_for(lambda t=tag: t in _performed(tmp_path), 30)
        assert _performed(tmp_path) == {"first": server.pid, "second": server.pid}
        # One worker per pool of the queue string ("*"): one process row, the server's.
        rows = db.execute("SELECT state->>'pid' FROM good_job_processes").fetchall()
        assert rows == [(str(server.pid),)]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)


NOT_A_SERVER = """
import sys
import goodjob_mp as gj
from tests.async_web_app import record_pid

job = record_pid.perform_later("script")
print(job.id, "goodjob_mp.worker.worker" in sys.modules, flush=True)
"""


def test_a_process_that_is_not_a_web_server_leaves_the_job_to_a_worker(db, tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", NOT_A_SERVER],
        cwd=ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    job_id, worker_loaded = done.stdout.split()
    assert worker_loaded == "False"  # no worker was even imported, let alone started
    row = db.execute("SELECT performed_at FROM good_jobs WHERE id = %s", (job_id,)).fetchone()
    assert row == (None,)
    assert db.execute("SELECT count(*) FROM good_job_processes").fetchone()[0] == 0


RESTART = """
import os, sys, time
from pathlib import Path
import goodjob_mp as gj
from tests.async_web_app import record_pid
from tests.jobs_for_tests import lines

RECORDS = Path(os.environ["GJ_TEST_RECORD_DIR"])

def wait_for(tag):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(l.startswith(tag + " ") for l in lines(RECORDS, "async_pid")):
            return
        time.sleep(0.05)
    sys.exit(f"{tag} was never performed")

before = {w.process_id for w in gj.start_async()}
record_pid.perform_later("parent")
wait_for("parent")
after = {w.process_id for w in gj.restart()}
assert after and not after & before, (before, after)
record_pid.perform_later("restarted")
wait_for("restarted")
gj.shutdown()

pid = os.fork()
if pid == 0:
    code = 1
    try:
        assert gj.restart(), "restart() started nothing in the child"
        record_pid.perform_later("child")
        wait_for("child")
        gj.shutdown()
        code = 0
    finally:
        os._exit(code)
_, status = os.waitpid(pid, 0)
print(pid, os.waitstatus_to_exitcode(status), flush=True)
"""


def test_restart_replaces_the_workers_and_starts_new_ones_after_a_fork(db, tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(RESTART)],
        cwd=ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert done.returncode == 0, done.stderr
    child_pid, child_code = (int(x) for x in done.stdout.split())
    assert child_code == 0, done.stderr
    performed = _performed(tmp_path)
    assert performed["parent"] == performed["restarted"] != child_pid
    assert performed["child"] == child_pid
