"""Where the database is and how to open a connection to it.

Owns the database URL resolution (GOOD_JOB_DATABASE_URL, else DATABASE_URL, else
``configure(database_url=...)``, else the embedded server) and the session settings every
connection of ours gets. A connection belongs to exactly one thread of one process: nothing here
is shared across a fork (the enqueue connection is keyed by pid and thread).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import psycopg

from goodjob_mp.config import current_settings

# Timestamps are stored as UTC in ``timestamp without time zone`` columns, as Rails does.
# The server-side keepalives make PostgreSQL notice within ~25 s that a host has vanished
# (power loss, network cut: no FIN ever arrives), end its sessions and so release the process
# advisory locks that keep its jobs from being handed back; the default is two hours.
SESSION_OPTIONS = (
    "-c timezone=UTC -c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5"
    " -c tcp_keepalives_count=3"
)
# The same on our side, and a bounded wait for an unreachable server. A value in the URL wins.
CLIENT_DEFAULTS = {
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "connect_timeout": "10",
}

_resolved: tuple[int, str] | None = None
_embedded = None  # keeps the EmbeddedServer (and its child process) alive for this process


class DatabaseUnavailableError(RuntimeError):
    """The database cannot be reached; the message names the URL (without password) and the fix."""


def database_url() -> str:
    """The conninfo to use in this process; starts or attaches to the embedded server if needed."""
    global _resolved, _embedded
    if _resolved is not None and _resolved[0] == os.getpid():
        return _resolved[1]
    url = (
        os.environ.get("GOOD_JOB_DATABASE_URL")
        or os.environ.get("DATABASE_URL")
        or current_settings().database_url
    )
    if not url:
        from goodjob_mp.db.embedded import ensure_embedded_server

        server = ensure_embedded_server(Path(current_settings().state_dir).absolute())
        if server.process is not None:
            _embedded = server
        url = server.conninfo
    _resolved = (os.getpid(), url)
    return url


def reset_database_url() -> None:
    global _resolved
    _resolved = None


def redact(url: str) -> str:
    """The URL without its password, for error messages."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "<unparsable database URL>"
    info.pop("password", None)
    return " ".join(f"{k}={v}" for k, v in info.items())


def connect(url: str | None = None, *, autocommit: bool = True) -> psycopg.Connection:
    """A new connection with our session settings; a failure names the database and the fix."""
    url = url or database_url()
    try:
        return psycopg.connect(session_conninfo(url), autocommit=autocommit)
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailableError(
            f"cannot connect to the database ({redact(url)}): {str(exc).strip()}\n"
            "Check that PostgreSQL is running and GOOD_JOB_DATABASE_URL / DATABASE_URL is right."
        ) from exc


def session_conninfo(url: str) -> str:
    """``url`` with our session settings added; the URL's own ``options`` are kept (ours go
    first, so a setting the URL repeats wins)."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    extra = {k: v for k, v in CLIENT_DEFAULTS.items() if k not in info}
    options = f"{SESSION_OPTIONS} {info['options']}" if info.get("options") else SESSION_OPTIONS
    return psycopg.conninfo.make_conninfo(url, options=options, **extra)


class _ThreadConnections(threading.local):
    conn: psycopg.Connection | None = None
    pid: int = 0


_local = _ThreadConnections()


def thread_connection() -> psycopg.Connection:
    """This thread's own autocommit connection, reopened after a fork or a broken connection.

    Used by enqueue from application code and from jobs. A connection inherited across a fork is
    dropped, never closed: closing it would end the parent's session.
    """
    conn = _local.conn
    if conn is None or _local.pid != os.getpid() or conn.closed or conn.broken:
        if conn is not None and _local.pid == os.getpid():
            conn.close()
        _local.conn = connect()
        _local.pid = os.getpid()
    return _local.conn


def close_thread_connection() -> None:
    conn = _local.conn
    _local.conn = None
    if conn is not None and _local.pid == os.getpid():
        conn.close()
