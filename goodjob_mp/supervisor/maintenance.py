"""The supervisor's database duties: its registry row and heartbeat lock, handing back the jobs
of dead processes, and sweeping processes that died anywhere (any host).

Owns one connection, opened on demand. The arbiter calls ``close()`` before every fork and the
next duty reopens it (re-registering the row and retaking the advisory lock), so no connection
ever crosses a fork. Never raises a database error at its caller after start-up: a failing
duty is logged and retried on the next pass (the database may be restarting).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from goodjob_mp.db import job_store, processes
from goodjob_mp.db.connection import connect

log = logging.getLogger("goodjob_mp.supervisor")


class Registry:
    """The supervisor's ``good_job_processes`` row and the dead-process sweep."""

    def __init__(self, process_id: uuid.UUID, state: Callable[[], dict[str, Any]]) -> None:
        self.process_id = process_id
        self._state = state
        self._conn: psycopg.Connection | None = None
        self.registered = False

    def open(self) -> None:
        """Connect and register; a connection failure raises (start-up must know)."""
        self._conn = connect()
        self._register()

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self.close()
            self._conn = connect()
            self._register()
        return self._conn

    def _register(self) -> None:
        assert self._conn is not None
        try:
            self.registered = processes.register_process(self._conn, self.process_id, self._state())
        except psycopg.errors.UndefinedTable:
            # No schema yet: the children report it with the fix (run migrate); keep going.
            self.registered = False

    def _run(self, what: str, action: Callable[[psycopg.Connection], Any]) -> Any:
        try:
            return action(self._connection())
        except Exception as exc:
            log.warning("supervisor: %s failed (%s); will retry", what, str(exc).strip())
            if self._conn is not None and (self._conn.closed or self._conn.broken):
                self.close()
            return None

    def heartbeat(self) -> None:
        def beat(conn: psycopg.Connection) -> None:
            if not self.registered or not processes.heartbeat(conn, self.process_id, self._state()):
                self._register()

        self._run("heartbeat", beat)

    def hand_back(self, process_ids: Sequence[uuid.UUID]) -> int:
        """Unlock the unfinished jobs of processes known to be dead and delete their rows."""

        def act(conn: psycopg.Connection) -> int:
            count = job_store.hand_back_jobs(conn, list(process_ids))
            processes.delete_processes(conn, list(process_ids))
            return count

        return self._run("handing back jobs", act) or 0

    def sweep(self, stale_after: float) -> int:
        """Find processes whose lock is gone and heartbeat is stale; hand their jobs back."""

        def act(conn: psycopg.Connection) -> int:
            dead = processes.find_dead_processes(conn, stale_after)
            if not dead:
                return 0
            count = job_store.hand_back_jobs(conn, dead)
            processes.delete_processes(conn, dead)
            log.warning(
                "supervisor: %d dead process(es) found; handed back %d job(s)", len(dead), count
            )
            return count

        return self._run("dead-process sweep", act) or 0

    def deregister(self) -> None:
        self._run("deregistering", lambda conn: processes.deregister_process(conn, self.process_id))
        self.close()
