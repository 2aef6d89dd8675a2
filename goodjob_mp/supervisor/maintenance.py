"""The supervisor's database duties: its registry row and heartbeat lock, handing back the jobs
of dead processes, and sweeping processes that died anywhere (any host).

Owns one connection, opened at start-up and kept for the life of the supervisor, so the row's
advisory lock is held without a gap (GoodJob's ``Process.cleanup`` deletes an advisory row the
moment its lock is free). The connection stays open across the arbiter's forks: the child calls
``after_fork_in_child()``, which drops its copy of the socket and keeps a reference to the
connection object until the child's ``os._exit``, so the child never sends anything on the
parent's session (closing it there would end the parent's session and release the lock).

Never raises a database error at its caller after start-up: an outage is logged once when it
starts and once when it ends, and each duty is retried on later passes. Anything else is a bug:
it is logged with its traceback and reported in ``status()`` (the probe shows it).
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from goodjob_mp.db import job_store, processes
from goodjob_mp.db.connection import DatabaseUnavailableError, connect

log = logging.getLogger("goodjob_mp.supervisor")

# Errors that mean "the database is unreachable or restarting": retried quietly.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    DatabaseUnavailableError,
)
RECONNECT_BACKOFF_MAX = 10.0

# Connections inherited from the parent by a forked child: referenced until the child exits so
# that nothing (garbage collection included) ever tries to finish them there.
_INHERITED: list[psycopg.Connection] = []


class Registry:
    """The supervisor's ``good_job_processes`` row and the dead-process sweep."""

    def __init__(self, process_id: uuid.UUID, state: Callable[[], dict[str, Any]]) -> None:
        self.process_id = process_id
        self._state = state
        self._pid = os.getpid()
        self._conn: psycopg.Connection | None = None
        self.registered = False  # our row is written
        self.locked = False  # our session holds the row's advisory lock
        self.outage: str | None = None  # the database error of the current outage
        self._failures: dict[str, str] = {}  # duty -> its unexpected error (a bug), for the probe
        self._reconnect_at = 0.0
        self._reconnect_delay = 0.0

    # --- connection ---------------------------------------------------------------------------

    def open(self) -> None:
        """Connect and register; a connection failure raises (start-up must know)."""
        self._conn = connect()
        self._register()

    def close(self) -> None:
        if self._forked():
            return
        conn, self._conn = self._conn, None
        self.locked = False
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass

    def after_fork_in_child(self) -> None:
        """In a forked child: let go of the parent's connection without touching its session."""
        conn, self._conn = self._conn, None
        self._pid = -1  # nothing in this process may use or close the parent's connection
        if conn is not None:
            _INHERITED.append(conn)
            try:
                # The parent's descriptor stays open; ours would only keep the parent's session
                # (and its lock) alive if the parent died before this child.
                os.close(conn.fileno())
            except (OSError, psycopg.Error):
                pass

    def _forked(self) -> bool:
        if self._pid == os.getpid():
            return False
        if self._pid != -1:
            self.after_fork_in_child()
        return True

    def _connection(self) -> psycopg.Connection:
        if self._conn is not None and not (self._conn.closed or self._conn.broken):
            return self._conn
        self.close()
        now = time.monotonic()
        if now < self._reconnect_at:
            raise DatabaseUnavailableError(self.outage or "waiting to reconnect")
        try:
            self._conn = connect()
        except DatabaseUnavailableError:
            self._reconnect_delay = min(max(self._reconnect_delay * 2, 0.5), RECONNECT_BACKOFF_MAX)
            self._reconnect_at = now + self._reconnect_delay
            raise
        self._reconnect_delay = 0.0
        self._register()
        return self._conn

    def _register(self) -> None:
        assert self._conn is not None
        try:
            self.locked = processes.register_process(self._conn, self.process_id, self._state())
            self.registered = True
        except psycopg.errors.UndefinedTable:
            # No schema yet: the children report it with the fix (run migrate); keep going.
            self.registered = self.locked = False

    # --- running a duty -----------------------------------------------------------------------

    def _run(self, what: str, action: Callable[[psycopg.Connection], Any]) -> Any:
        if self._forked():
            return None
        try:
            result = action(self._connection())
        except TRANSIENT_ERRORS as exc:
            self._outage_began(what, exc)
            if self._conn is not None and (self._conn.closed or self._conn.broken):
                self.close()
            return None
        except Exception as exc:
            self._bug(what, exc)
            return None
        self._failures.pop(what, None)
        if self.outage is not None:
            log.info("supervisor: the database is reachable again")
            self.outage = None
        return result

    def _outage_began(self, what: str, exc: BaseException) -> None:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if self.outage is None:
            log.warning(
                "supervisor: the database is unavailable (%s failed: %s); retrying until it is "
                "back",
                what,
                message,
            )
            self.outage = message
        else:
            log.debug("supervisor: %s failed: %s", what, message)

    def _bug(self, what: str, exc: BaseException) -> None:
        failure = f"{what} failed: {type(exc).__name__}: {exc}"
        if self._failures.get(what) != failure:
            log.exception("supervisor: %s (a bug: please report it)", failure)
        self._failures[what] = failure

    @property
    def failure(self) -> str | None:
        """The unexpected errors of duties that have not succeeded since, or None."""
        return "; ".join(self._failures.values()) or None

    def status(self) -> dict[str, Any]:
        """For the probe: whether the row is registered and locked, and what went wrong."""
        return {
            "registered": self.registered,
            "locked": self.locked,
            "database_error": self.outage,
            "error": self.failure,
        }

    # --- duties -------------------------------------------------------------------------------

    def read(self, what: str, action: Callable[[psycopg.Connection], Any]) -> Any:
        """Run a read for the supervisor itself (the metrics' queue stats) on this connection;
        None when the database is away."""
        return self._run(what, action)

    def heartbeat(self) -> None:
        def beat(conn: psycopg.Connection) -> None:
            if not self.locked or not processes.heartbeat(conn, self.process_id, self._state()):
                self._register()

        self._run("heartbeat", beat)

    def hand_back(self, process_ids: Sequence[uuid.UUID]) -> int:
        """Unlock the unfinished jobs of processes known to be dead and delete their rows."""
        ids = list(process_ids)

        def act(conn: psycopg.Connection) -> int:
            with conn.transaction():
                count = job_store.hand_back_jobs(conn, ids)
                processes.delete_processes(conn, ids)
            return count

        return self._run("handing back jobs", act) or 0

    def sweep(self, dead_process_timeout: float) -> int:
        """Remove the rows that are dead by their writer's rule and hand their jobs back, then
        free jobs whose owner has no row at all; returns how many jobs were handed back."""

        def act(conn: psycopg.Connection) -> int:
            dead = [
                row
                for row in processes.find_dead_processes(conn, dead_process_timeout)
                if row.id != self.process_id
            ]
            count = 0
            if dead:
                with conn.transaction():
                    gone = processes.delete_if_still_dead(conn, dead)
                    count = job_store.hand_back_jobs(conn, gone)
                if gone:
                    log.warning(
                        "supervisor: %d dead process(es) found; handed back %d job(s)",
                        len(gone),
                        count,
                    )
            rowless = processes.find_rowless_owners(conn, dead_process_timeout)
            if rowless:
                freed = job_store.hand_back_jobs(conn, rowless)
                count += freed
                log.warning(
                    "supervisor: handed back %d job(s) locked by %d process id(s) with no "
                    "good_job_processes row",
                    freed,
                    len(rowless),
                )
            return count

        return self._run("dead-process sweep", act) or 0

    def deregister(self) -> None:
        self._run("deregistering", lambda conn: processes.deregister_process(conn, self.process_id))
        self.close()
