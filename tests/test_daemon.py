"""daemonize(): a real launcher process under a real pseudo-terminal detaches a real daemon.

The launcher script records its own pid, session and terminal, daemonizes, and the daemon takes
a pidfile and records the same facts about itself; the tests compare the two.
"""

from __future__ import annotations

import json
import os
import pty
import select
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from goodjob_mp.supervisor.daemon import DaemonError, daemonize, under_systemd_notify

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}

SCRIPT = textwrap.dedent(
    """
    import json, os, signal, sys, time
    from goodjob_mp.supervisor.daemon import daemonize
    from goodjob_mp.supervisor.pidfile import Pidfile, PidfileError

    mode, workdir, pidfile_path, info_path, log_file, ready_timeout = sys.argv[1:7]

    def has_tty():
        try:
            os.close(os.open("/dev/tty", os.O_RDWR))
            return True
        except OSError:
            return False

    def record(path, **facts):
        with open(path + ".tmp", "w") as f:
            json.dump(facts, f)
        os.replace(path + ".tmp", path)

    record(info_path + ".launcher", pid=os.getpid(), sid=os.getsid(0), tty=has_tty())
    handle = daemonize(log_file=log_file or None, workdir=workdir,
                       ready_timeout=float(ready_timeout))
    if mode == "die":
        os._exit(3)
    if mode == "fail":
        handle.failed("could not connect to the database: test reason")
        sys.exit(1)
    if mode == "slow":
        time.sleep(60)
        sys.exit(0)
    pidfile = Pidfile(pidfile_path)
    try:
        pidfile.acquire()
    except PidfileError as exc:
        handle.failed(str(exc))
        sys.exit(1)

    def stop(signum, frame):
        pidfile.release()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    print("daemon stdout line", flush=True)
    print("daemon stderr line", file=sys.stderr, flush=True)
    umask = os.umask(0)
    os.umask(umask)
    record(info_path, pid=os.getpid(), ppid=os.getppid(), sid=os.getsid(0), pgid=os.getpgid(0),
           tty=has_tty(), cwd=os.getcwd(), umask=umask)
    handle.ready()
    time.sleep(60)  # bounded: a daemon the test forgot still goes away
    """
)


@pytest.fixture
def daemons() -> Iterator[list[int]]:
    """Pids of daemons a test started; any still running afterwards are killed."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _argv(tmp_path: Path, mode: str, *, log: bool = True, ready_timeout: float = 30) -> list[str]:
    script = tmp_path / "launcher.py"
    script.write_text(SCRIPT)
    workdir = tmp_path / "work"
    workdir.mkdir(exist_ok=True)
    return [
        sys.executable,
        str(script),
        mode,
        str(workdir),
        str(tmp_path / "sup.pid"),
        str(tmp_path / "info.json"),
        str(tmp_path / "daemon.log") if log else "",
        str(ready_timeout),
    ]


def _run_in_pty(argv: list[str], timeout: float = 60) -> tuple[int, str]:
    """Run ``argv`` as a session leader with a pseudo-terminal as its controlling terminal."""
    pid, master = pty.fork()
    if pid == 0:
        try:
            os.execve(argv[0], argv, ENV)
        finally:
            os._exit(127)
    output = b""
    status: int | None = None
    deadline = time.monotonic() + timeout
    try:
        while True:
            chunk = b""
            if select.select([master], [], [], 0.1)[0]:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: every copy of the terminal's other end is closed
                    chunk = b""
                output += chunk
            if status is None:
                done, status_now = os.waitpid(pid, os.WNOHANG)
                if done:
                    status = status_now
            if status is not None and not chunk:
                return os.waitstatus_to_exitcode(status), output.decode(errors="replace")
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail(f"launcher did not exit within {timeout}s; output: {output!r}")
    finally:
        os.close(master)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_gone(pid: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not _gone(pid):
        assert time.monotonic() < deadline, f"pid {pid} still running after {timeout}s"
        time.sleep(0.05)


def test_daemon_detaches_and_launcher_returns_after_pidfile_exists(
    tmp_path: Path, daemons: list[int]
) -> None:
    code, output = _run_in_pty(_argv(tmp_path, "ok"))
    assert code == 0, output

    # The launcher returned only after the daemon took the pidfile and reported ready.
    pidfile = tmp_path / "sup.pid"
    assert pidfile.exists()
    info = json.loads((tmp_path / "info.json").read_text())
    launcher = json.loads((tmp_path / "info.json.launcher").read_text())
    daemons.append(info["pid"])
    assert pidfile.read_text() == f"{info['pid']}\n"
    assert not _gone(info["pid"])

    assert launcher["tty"] is True  # the test really gave the launcher a terminal
    assert info["pid"] != launcher["pid"]
    assert info["tty"] is False
    assert psutil.Process(info["pid"]).terminal() is None
    assert info["sid"] != launcher["sid"]
    assert info["sid"] != info["pid"]  # not a session leader: can never regain a terminal
    # Reparented away from the launcher (to init or a subreaper), since the launcher has exited.
    ppid = psutil.Process(info["pid"]).ppid()
    assert ppid not in (launcher["pid"], os.getpid())
    assert info["cwd"] == str(tmp_path / "work")
    assert info["umask"] == 0o027

    log = (tmp_path / "daemon.log").read_text()
    assert "daemon stdout line" in log and "daemon stderr line" in log
    assert "daemon stdout line" not in output  # daemon output never reaches the terminal

    os.kill(info["pid"], signal.SIGTERM)
    _wait_gone(info["pid"])
    assert not pidfile.exists()  # the daemon, as owner, removed it


def test_daemon_without_log_file_detaches_stdio(tmp_path: Path, daemons: list[int]) -> None:
    # Pipes as stdio: if the daemon kept them, run() would wait for it and time out.
    result = subprocess.run(
        _argv(tmp_path, "ok", log=False), env=ENV, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    info = json.loads((tmp_path / "info.json").read_text())
    daemons.append(info["pid"])
    assert result.stdout == "" and result.stderr == ""
    os.kill(info["pid"], signal.SIGTERM)
    _wait_gone(info["pid"])


def test_launcher_started_with_closed_stdio(tmp_path: Path, daemons: list[int]) -> None:
    # cron and some init scripts start programs with stdin/stdout closed; the readiness pipe
    # must not land on fd 0 or 1 and be overwritten by the stdio redirection.
    argv = " ".join(shlex.quote(a) for a in _argv(tmp_path, "ok"))
    result = subprocess.run(
        ["sh", "-c", f"exec {argv} 0<&- 1>&-"], env=ENV, stderr=subprocess.PIPE, timeout=60
    )
    assert result.returncode == 0, result.stderr
    info = json.loads((tmp_path / "info.json").read_text())
    daemons.append(info["pid"])
    assert "daemon stdout line" in (tmp_path / "daemon.log").read_text()
    os.kill(info["pid"], signal.SIGTERM)
    _wait_gone(info["pid"])


def test_failure_reported_by_daemon_makes_launcher_fail(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from goodjob_mp.supervisor.pidfile import Pidfile; "
            f"Pidfile({str(tmp_path / 'sup.pid')!r}).acquire(); "
            "print('up', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        assert holder.stdout.readline() == "up\n"  # a live supervisor holds the pidfile
        result = subprocess.run(
            _argv(tmp_path, "ok"), env=ENV, capture_output=True, text=True, timeout=60
        )
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)
    assert result.returncode != 0
    assert "daemon failed to start" in result.stderr
    assert f"already running with pid {holder.pid}" in result.stderr
    assert (tmp_path / "sup.pid").read_text() == f"{holder.pid}\n"


def test_explicit_failure_message_reaches_launcher(tmp_path: Path) -> None:
    code, output = _run_in_pty(_argv(tmp_path, "fail"))
    assert code == 1
    assert "daemon failed to start: could not connect to the database: test reason" in output


def test_daemon_dying_before_report_fails_launcher(tmp_path: Path) -> None:
    result = subprocess.run(
        _argv(tmp_path, "die"), env=ENV, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "exited before it reported readiness" in result.stderr
    assert str(tmp_path / "daemon.log") in result.stderr


def test_silent_daemon_hits_ready_timeout(tmp_path: Path, daemons: list[int]) -> None:
    result = subprocess.run(
        _argv(tmp_path, "slow", ready_timeout=1),
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "did not report readiness within 1s" in result.stderr
    pid = int(result.stderr.split("(pid ", 1)[1].split(")", 1)[0])
    daemons.append(pid)
    assert not _gone(pid)  # still starting, as the message says


def test_bad_settings_fail_before_forking(tmp_path: Path) -> None:
    with pytest.raises(DaemonError, match="working directory .* does not exist"):
        daemonize(workdir=str(tmp_path / "missing"))
    with pytest.raises(DaemonError, match="cannot open log file .*--log-file"):
        daemonize(log_file=str(tmp_path / "missing" / "daemon.log"))


def test_under_systemd_notify() -> None:
    assert under_systemd_notify({"NOTIFY_SOCKET": "/run/systemd/notify"}) is True
    assert under_systemd_notify({"NOTIFY_SOCKET": ""}) is False
    assert under_systemd_notify({}) is False
