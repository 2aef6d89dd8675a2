"""Where the database is and how to open a connection to it.

Owns the database URL resolution (GOOD_JOB_DATABASE_URL, else DATABASE_URL, else
``configure(database_url=...)``; with none, the embedded server only when asked for with
``embedded``, else a one-line refusal), the session settings every connection of ours gets, and
the bounded pool that enqueue borrows from. Nothing here is shared across a fork: the pool and
the thread connections are keyed by pid, and a child drops (never closes) what it inherited.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from goodjob_mp.config import ConfigError, current_settings, database_url_problem
from goodjob_mp.db.jsonb import use_safe_loads

log = logging.getLogger("goodjob_mp.db")

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
_embedded: Any = None  # keeps the EmbeddedServer (and its child process) alive for this process

NO_DATABASE = (
    "no database configured: set GOOD_JOB_DATABASE_URL (or DATABASE_URL) to "
    "postgresql://user:password@host:5432/dbname, or for a throwaway local database use "
    "--embedded / GOOD_JOB_EMBEDDED=1"
)


class DatabaseUnavailableError(RuntimeError):
    """The database cannot be reached; the message names the URL (without password) and the fix."""


class DatabaseNotConfiguredError(ConfigError):
    """No database URL is set (and the embedded one was not asked for), or the URL is malformed."""


def _configured_url() -> tuple[str | None, str]:
    """The URL and the name of the place it came from."""
    for variable in ("GOOD_JOB_DATABASE_URL", "DATABASE_URL"):
        if os.environ.get(variable):
            return os.environ[variable], variable
    return current_settings().database_url, "configure(database_url=...)"


def database_url() -> str:
    """The conninfo to use in this process; starts or attaches to the embedded server only
    when ``embedded`` is on. A missing or malformed URL is a DatabaseNotConfiguredError."""
    global _resolved, _embedded
    if _resolved is not None and _resolved[0] == os.getpid():
        return _resolved[1]
    url, source = _configured_url()
    if url:
        problem = database_url_problem(url)
        if problem:
            raise DatabaseNotConfiguredError(f"{source} is invalid: {problem}")
    else:
        settings = current_settings()
        if not settings.embedded:
            raise DatabaseNotConfiguredError(NO_DATABASE)
        from goodjob_mp.db.embedded import ensure_embedded_server

        state_dir = Path(settings.state_dir).absolute()
        server = ensure_embedded_server(state_dir)
        if server.process is not None:
            _embedded = server
            log.warning(
                "EMBEDDED PostgreSQL started in %s (--embedded / GOOD_JOB_EMBEDDED): a private "
                "database for demos and experiments, stopped when this process ends; set "
                "GOOD_JOB_DATABASE_URL for real work",
                state_dir,
            )
        else:
            log.warning("using the EMBEDDED PostgreSQL in %s (--embedded)", state_dir)
        url = server.conninfo
    _resolved = (os.getpid(), url)
    return url


def reset_database_url() -> None:
    global _resolved
    _resolved = None
    close_enqueue_pool()


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
        conn = psycopg.connect(session_conninfo(url), autocommit=autocommit)
    except psycopg.OperationalError as exc:
        reason = " ".join(str(exc).split())
        raise DatabaseUnavailableError(
            f"cannot connect to the database ({redact(url)}): {reason}; check that PostgreSQL "
            "is running and GOOD_JOB_DATABASE_URL / DATABASE_URL is right"
        ) from exc
    # A jsonb value too deep to decode must not fail a whole fetch (see goodjob_mp.db.jsonb).
    use_safe_loads(conn)
    return conn


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
        conn = _local.conn = connect()
        _local.pid = os.getpid()
    return conn


def close_thread_connection() -> None:
    conn = _local.conn
    _local.conn = None
    if conn is not None and _local.pid == os.getpid():
        conn.close()


# --- the enqueue pool -------------------------------------------------------------------------

# Enqueue borrows a connection for one write and gives it back, so many application threads share
# a few sessions instead of holding one each for their whole life. Not psycopg_pool: its pool
# opens connections from worker threads (a process that enqueues would gain threads, and the
# supervisor must have none when it forks), and an unreachable database surfaces as a PoolTimeout
# after 30 s instead of the connection error at once. This one connects on the caller's thread.
POOL_WAIT_SECONDS = 30.0


class EnqueuePool:
    """At most ``size`` connections of this process; idle ones are reused, newest first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.pid = os.getpid()
        self._slots = threading.BoundedSemaphore(size)
        self._idle: list[psycopg.Connection] = []
        self._lock = threading.Lock()
        # One RawCursor per pooled connection, kept with it: the plain single enqueue reuses it
        # instead of building a cursor per write.
        self._raw_cursors: dict[int, psycopg.RawCursor] = {}

    def take(self, wait: float = POOL_WAIT_SECONDS) -> psycopg.Connection:
        """A connection for one write; hand it back with ``give_back``, whatever happens."""
        if not self._slots.acquire(timeout=wait):
            raise DatabaseUnavailableError(
                f"all {self.size} enqueue connections stayed busy for {wait:g}s; raise "
                "enqueue_pool_size (GOOD_JOB_ENQUEUE_POOL_SIZE) or enqueue from fewer threads"
            )
        try:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            return connect() if conn is None else conn
        except BaseException:
            self._slots.release()  # a failed connect holds no slot
            raise

    def give_back(self, conn: psycopg.Connection) -> None:
        try:
            idle = psycopg.pq.TransactionStatus.IDLE
            if conn.closed or conn.broken or conn.info.transaction_status != idle:
                self._raw_cursors.pop(id(conn), None)
                conn.close()
                return
            with self._lock:
                self._idle.append(conn)
        finally:
            self._slots.release()

    @contextmanager
    def connection(self, wait: float = POOL_WAIT_SECONDS) -> Iterator[psycopg.Connection]:
        conn = self.take(wait)
        try:
            yield conn
        finally:
            self.give_back(conn)

    def raw_cursor(self, conn: psycopg.Connection) -> psycopg.RawCursor:
        """``conn``'s kept RawCursor (``conn`` taken from this pool)."""
        cur = self._raw_cursors.get(id(conn))
        if cur is None or cur.connection is not conn or cur.closed:
            cur = self._raw_cursors[id(conn)] = psycopg.RawCursor(conn)
        return cur

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
            self._raw_cursors = {}
        if self.pid == os.getpid():  # a child drops the parent's sessions, never closes them
            for conn in idle:
                conn.close()

    @property
    def idle_count(self) -> int:
        return len(self._idle)


_pool: EnqueuePool | None = None
_pool_lock = threading.Lock()


def enqueue_pool() -> EnqueuePool:
    """This process's pool (a new one after a fork; the inherited one is dropped)."""
    global _pool
    pool = _pool
    if pool is not None and pool.pid == os.getpid():
        return pool
    with _pool_lock:
        if _pool is None or _pool.pid != os.getpid():
            _pool = EnqueuePool(current_settings().enqueue_pool_size)
        return _pool


@contextmanager
def enqueue_connection() -> Iterator[psycopg.Connection]:
    """An autocommit connection from this process's bounded enqueue pool, for one write."""
    with enqueue_pool().connection() as conn:
        yield conn


def close_enqueue_pool() -> None:
    global _pool
    pool, _pool = _pool, None
    if pool is not None:
        pool.close()
