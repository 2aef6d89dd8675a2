"""Pidfile: stale and live holders, pid reuse, racing starters, and who may delete the file.

Every "other process" here is a real process; identity is decided by its real process title.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from goodjob_mp.supervisor.pidfile import Pidfile, PidfileError

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}

SUPERVISOR_LOOKALIKE = (
    "import setproctitle, sys; setproctitle.setproctitle('goodjob-supervisor: test'); "
    "print('up', flush=True); sys.stdin.read()"
)


def _spawn(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=ENV,
    )


@pytest.fixture
def lookalike():
    """A live process titled like a supervisor; it exits when its stdin closes."""
    proc = _spawn(SUPERVISOR_LOOKALIKE)
    assert proc.stdout is not None and proc.stdout.readline() == "up\n"
    yield proc
    proc.stdin.close()
    proc.wait(timeout=10)


@pytest.fixture
def sleeper():
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait(timeout=10)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=10)
    assert not psutil.pid_exists(proc.pid) or psutil.Process(proc.pid).status() == "zombie"
    return proc.pid


def test_acquire_writes_our_pid_and_release_removes_it(tmp_path: Path) -> None:
    path = tmp_path / "sup.pid"
    pidfile = Pidfile(path)
    pidfile.acquire()
    assert path.read_text() == f"{os.getpid()}\n"
    assert pidfile.read() == os.getpid()
    assert pidfile.release() is True
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary files left behind


HOLDER = textwrap.dedent(
    """
    import sys
    from goodjob_mp.supervisor.pidfile import Pidfile
    Pidfile(sys.argv[1]).acquire()
    print("up", flush=True)
    sys.stdin.read()  # hold the pidfile (and its lock) until the test closes stdin
    """
)


@pytest.fixture
def holder(tmp_path: Path):
    """A live process that holds tmp_path/sup.pid as a supervisor does (pid and lock)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "sup.pid")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "up\n"
    yield proc
    proc.stdin.close()
    proc.wait(timeout=10)


def test_live_supervisor_is_refused(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    path = tmp_path / "sup.pid"
    with pytest.raises(PidfileError) as err:
        Pidfile(path).acquire()
    message = str(err.value)
    assert f"already running with pid {holder.pid}" in message
    assert str(path) in message
    assert "remove the pidfile" in message
    assert path.read_text() == f"{holder.pid}\n"


def test_a_lookalike_without_the_lock_is_stale(
    tmp_path: Path, lookalike: subprocess.Popen[str], caplog: pytest.LogCaptureFixture
) -> None:
    # A process whose title says goodjob-supervisor but that holds no lock (tail -f ...log).
    path = tmp_path / "sup.pid"
    path.write_text(f"{lookalike.pid}\n")
    with caplog.at_level(logging.WARNING, logger="goodjob_mp.supervisor.pidfile"):
        Pidfile(path).acquire()
    assert path.read_text() == f"{os.getpid()}\n"
    assert "no process holds its lock" in caplog.text
    assert lookalike.poll() is None


def test_a_forked_child_does_not_keep_the_lock_after_close_after_fork(tmp_path: Path) -> None:
    from goodjob_mp.supervisor.pidfile import close_after_fork

    path = tmp_path / "sup.pid"
    pidfile = Pidfile(path)
    pidfile.acquire()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child lives on after the parent lets go of the file
        close_after_fork()
        os.close(write_end)
        os.read(read_end, 1)
        os._exit(0)
    os.close(read_end)
    try:
        # The parent "dies" without removing the file: drop its lock the way death does.
        os.close(pidfile._lock_fd)
        pidfile._lock_fd = None
        other = subprocess.run(
            [sys.executable, "-c", HOLDER.replace("sys.stdin.read()", "pass"), str(path)],
            env=ENV,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert other.returncode == 0, other.stderr  # the child's copy did not keep it locked
    finally:
        os.close(write_end)
        os.waitpid(pid, 0)


def test_dead_pid_is_replaced_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "sup.pid"
    dead = _dead_pid()
    path.write_text(f"{dead}\n")
    with caplog.at_level(logging.WARNING, logger="goodjob_mp.supervisor.pidfile"):
        Pidfile(path).acquire()
    assert path.read_text() == f"{os.getpid()}\n"
    assert f"pid {dead}" in caplog.text and "stale" in caplog.text


def test_pid_reused_by_unrelated_process_is_stale(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    path = tmp_path / "sup.pid"
    path.write_text(f"{sleeper.pid}\n")
    Pidfile(path).acquire()
    assert path.read_text() == f"{os.getpid()}\n"
    assert sleeper.poll() is None  # an unrelated process is never touched


def test_our_own_pid_in_the_file_is_stale(tmp_path: Path) -> None:
    path = tmp_path / "sup.pid"
    path.write_text(f"{os.getpid()}\n")
    Pidfile(path).acquire()
    assert path.read_text() == f"{os.getpid()}\n"


@pytest.mark.parametrize("content", ["", "garbage\n", "0\n", "-5\n"])
def test_file_without_a_pid_is_stale(tmp_path: Path, content: str) -> None:
    path = tmp_path / "sup.pid"
    path.write_text(content)
    Pidfile(path).acquire()
    assert path.read_text() == f"{os.getpid()}\n"


def test_release_by_non_owner_leaves_the_file(
    tmp_path: Path, lookalike: subprocess.Popen[str]
) -> None:
    path = tmp_path / "sup.pid"
    path.write_text(f"{lookalike.pid}\n")
    assert Pidfile(path).release() is False
    assert path.read_text() == f"{lookalike.pid}\n"


def test_release_in_a_forked_child_leaves_the_file(tmp_path: Path) -> None:
    path = tmp_path / "sup.pid"
    pidfile = Pidfile(path)
    pidfile.acquire()
    code = textwrap.dedent(
        f"""
        import os, sys
        from goodjob_mp.supervisor.pidfile import Pidfile
        p = Pidfile({str(path)!r})
        sys.exit(0 if p.release() is False and os.path.exists({str(path)!r}) else 1)
        """
    )
    assert subprocess.run([sys.executable, "-c", code], env=ENV, timeout=30).returncode == 0
    assert path.read_text() == f"{os.getpid()}\n"
    pidfile.release()


def test_rewrite_records_the_new_pid(tmp_path: Path, sleeper: subprocess.Popen[bytes]) -> None:
    path = tmp_path / "sup.pid"
    pidfile = Pidfile(path)
    with pytest.raises(PidfileError, match="before acquire"):
        pidfile.rewrite()
    pidfile.acquire()
    pidfile.rewrite(sleeper.pid)
    assert path.read_text() == f"{sleeper.pid}\n"
    assert pidfile.owner_pid == sleeper.pid
    assert pidfile.release() is False  # the file now belongs to that pid, not to us
    pidfile.rewrite()
    assert pidfile.release() is True
    assert list(tmp_path.iterdir()) == []


def test_missing_directory_names_the_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(PidfileError, match=f"directory {missing} does not exist"):
        Pidfile(missing / "sup.pid").acquire()


def test_context_manager(tmp_path: Path) -> None:
    path = tmp_path / "sup.pid"
    with Pidfile(path):
        assert path.exists()
    assert not path.exists()


RACER = textwrap.dedent(
    """
    import setproctitle, sys
    setproctitle.setproctitle("goodjob-supervisor: racer")
    from goodjob_mp.supervisor.pidfile import Pidfile, PidfileError
    print("ready", flush=True)
    sys.stdin.readline()
    try:
        Pidfile(sys.argv[1]).acquire()
    except PidfileError as exc:
        print("lost", exc, flush=True)
        sys.exit(0)
    print("won", flush=True)
    sys.stdin.read()  # hold the pidfile while alive, until the test closes stdin
    """
)


@pytest.mark.parametrize("stale_first", [False, True], ids=["no-file", "stale-file"])
def test_two_simultaneous_starts_exactly_one_wins(tmp_path: Path, stale_first: bool) -> None:
    for round_no in range(8):
        path = tmp_path / f"race{round_no}.pid"
        if stale_first:
            path.write_text(f"{_dead_pid()}\n")
        racers = [
            subprocess.Popen(
                [sys.executable, "-c", RACER, str(path)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=ENV,
            )
            for _ in range(2)
        ]
        try:
            for racer in racers:
                assert racer.stdout.readline() == "ready\n"
            for racer in racers:  # release both as close together as we can
                racer.stdin.write("go\n")
            for racer in racers:
                racer.stdin.flush()
            results = [racer.stdout.readline() for racer in racers]
            winners = [r for r, line in zip(racers, results, strict=True) if line == "won\n"]
            assert len(winners) == 1, results
            loser_line = next(line for line in results if line != "won\n")
            expected = f"lost goodjob-supervisor already running with pid {winners[0].pid}"
            assert loser_line.startswith(expected)
            assert path.read_text() == f"{winners[0].pid}\n"
        finally:
            for racer in racers:
                racer.stdin.close()
            for racer in racers:
                racer.wait(timeout=10)
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            f"race{i}.pid" for i in range(round_no + 1)
        )


def test_lookalike_fixture_is_seen_as_supervisor(lookalike: subprocess.Popen[str]) -> None:
    # Guards the tests above: if setproctitle stopped working they would pass for the wrong reason.
    deadline = time.monotonic() + 10
    while "goodjob-supervisor" not in " ".join(psutil.Process(lookalike.pid).cmdline()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
