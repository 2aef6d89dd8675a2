"""SystemdNotifier against a real datagram socket standing in for systemd's NOTIFY_SOCKET."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from goodjob_mp.supervisor.sdnotify import SystemdNotifier

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify.sock")
    sock.bind(path)
    sock.settimeout(5)
    yield sock, path
    sock.close()


def _received(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def test_disabled_without_notify_socket() -> None:
    notifier = SystemdNotifier({})
    assert notifier.enabled is False
    assert notifier.ready() is False
    assert notifier.watchdog() is False
    assert notifier.watchdog_interval() is None


def test_sends_ready_status_stopping_watchdog(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    assert notifier.ready() is True
    assert _received(sock) == "READY=1"
    assert notifier.status("3 pools running\nsecond line") is True
    assert _received(sock) == "STATUS=3 pools running second line"
    assert notifier.reloading() is True
    assert _received(sock) == "RELOADING=1"
    assert notifier.ready(status="reloaded") is True
    assert _received(sock) == "READY=1\nSTATUS=reloaded"
    assert notifier.watchdog() is True
    assert _received(sock) == "WATCHDOG=1"
    assert notifier.stopping() is True
    assert _received(sock) == "STOPPING=1"
    assert notifier.notify(mainpid=1234, errno=5) is True
    assert _received(sock) == "MAINPID=1234\nERRNO=5"
    notifier.close()


def test_abstract_socket() -> None:
    name = f"goodjob-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(5)
    try:
        notifier = SystemdNotifier({"NOTIFY_SOCKET": "@" + name})
        assert notifier.ready() is True
        assert _received(sock) == "READY=1"
    finally:
        sock.close()


def test_from_another_process_via_environment(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    code = "from goodjob_mp.supervisor.sdnotify import SystemdNotifier as N; N().stopping()"
    env = {**os.environ, "PYTHONPATH": str(REPO), "NOTIFY_SOCKET": path}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=30)
    assert _received(sock) == "STOPPING=1"


def test_send_errors_are_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens.sock")})
    with caplog.at_level(logging.DEBUG, logger="goodjob_mp.supervisor.sdnotify"):
        assert notifier.ready() is False
        assert notifier.watchdog() is False
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # repeats are quiet
    assert "nobody-listens.sock" in warnings[0].getMessage()


def test_full_socket_does_not_block(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path})
    results = [notifier.status("x" * 1000) for _ in range(5000)]  # nobody reads: fills up
    assert results[0] is True
    assert results[-1] is False


def test_unsupported_address_disables(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="goodjob_mp.supervisor.sdnotify"):
        notifier = SystemdNotifier({"NOTIFY_SOCKET": "vsock:2:1234"})
    assert notifier.enabled is False
    assert "vsock:2:1234" in caplog.text


def test_watchdog_interval(listener: tuple[socket.socket, str]) -> None:
    _, path = listener
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000"}
    assert SystemdNotifier(env).watchdog_timeout() == 30.0
    assert SystemdNotifier(env).watchdog_interval() == 15.0
    ours = {**env, "WATCHDOG_PID": str(os.getpid())}
    assert SystemdNotifier(ours).watchdog_interval() == 15.0
    someone_elses = {**env, "WATCHDOG_PID": str(os.getpid() + 1)}
    assert SystemdNotifier(someone_elses).watchdog_interval() is None
    assert SystemdNotifier({**env, "WATCHDOG_USEC": "0"}).watchdog_interval() is None
    assert SystemdNotifier({**env, "WATCHDOG_USEC": "soon"}).watchdog_interval() is None
    assert SystemdNotifier({"WATCHDOG_USEC": "30000000"}).watchdog_interval() is None
