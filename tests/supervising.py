"""Helpers for tests that run ``goodjob-supervisor`` as a real process (fixtures included).

Every test starts the supervisor through the CLI against the session's test database and talks
to it only from outside (signals, the database, files the jobs write, HTTP, a notify socket).
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import psutil
import pytest

from goodjob_mp.cli import supervisor_command
from tests import jobs_for_tests as J
from tests.waiting import wait_for

# What ``from tests.supervising import *`` brings: the fixtures (helpers are imported by name).
__all__ = ["records", "start"]

ROOT = Path(__file__).resolve().parent.parent
CLI = supervisor_command()


class Supervisor:
    """One ``goodjob-supervisor`` process; its output goes to a file the test can read."""

    def __init__(self, tmp: Path, *args: str, env: dict[str, str] | None = None, name="sup"):
        self.log_path = tmp / f"{name}.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        full_env = {**os.environ, "GOOD_JOB_POLL_INTERVAL": "1", **(env or {})}
        self.proc = subprocess.Popen(
            [*CLI, "--app", "tests.jobs_for_tests", *args],
            cwd=ROOT,
            env=full_env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.pid = self.proc.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def children(self) -> list[int]:
        try:
            kids = psutil.Process(self.pid).children()
        except psutil.NoSuchProcess:
            return []
        pids = []
        for kid in kids:
            try:
                if "goodjob-worker" in " ".join(kid.cmdline()) and kid.status() != "zombie":
                    pids.append(kid.pid)
            except psutil.Error:
                continue
        return pids

    def wait_ready(self, pools: int = 1, timeout: float = 30.0) -> list[int]:
        assert wait_for(lambda: "pool(s) are up" in self.output(), timeout), self.output()
        assert wait_for(lambda: len(self.children()) >= pools, timeout), self.output()
        return self.children()

    def signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def wait_exit(self, timeout: float = 30.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"supervisor did not exit within {timeout}s:\n{self.output()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


@pytest.fixture()
def records(tmp_path, monkeypatch):
    monkeypatch.setenv(J.RECORD_DIR_ENV, str(tmp_path))
    return tmp_path


@pytest.fixture()
def start(tmp_path, records, db):
    started: list[Supervisor] = []

    def run(*args: str, env: dict[str, str] | None = None, name: str = "sup") -> Supervisor:
        sup = Supervisor(tmp_path, *args, env=env, name=name)
        started.append(sup)
        return sup

    yield run
    for sup in started:
        kids = sup.children()
        sup.stop()
        for pid in kids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def gone(pids: list[int]) -> bool:
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            continue
    return True


def job_row(db, job_id):
    return db.execute(
        "SELECT finished_at, locked_by_id, performed_at, error FROM good_jobs WHERE id = %s",
        (job_id,),
    ).fetchone()


def execution_errors(db, job_id) -> list[str | None]:
    rows = db.execute(
        "SELECT error FROM good_job_executions WHERE active_job_id = %s ORDER BY created_at",
        (job_id,),
    ).fetchall()
    return [r[0] for r in rows]


def start_daemon(tmp_path: Path, queues: str) -> tuple[int, Path, Path]:
    """``goodjob-supervisor --daemonize`` with a pidfile and a log file in ``tmp_path``: the
    daemon's pid (read from the pidfile once the launcher has exited 0), the pidfile, the log."""
    pidfile, log_file = tmp_path / "d.pid", tmp_path / "d.log"
    args = [*CLI, "--app", "tests.jobs_for_tests", f"--queues={queues}", "--daemonize"]
    args += [f"--pidfile={pidfile}", f"--log-file={log_file}"]
    env = {**os.environ, J.RECORD_DIR_ENV: str(tmp_path)}
    env.pop("NOTIFY_SOCKET", None)
    done = subprocess.run(args, cwd=ROOT, env=env, timeout=60, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return int(pidfile.read_text()), pidfile, log_file
