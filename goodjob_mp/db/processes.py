"""SQL for ``good_job_processes``: the registry row of every live process, its heartbeat, and
finding processes that are gone.

A process is alive while its session advisory lock is held (GoodJob's key for the row, so a Rails
GoodJob sharing the database agrees) and its heartbeat is fresh. The lock lives on a connection
the process keeps open; when the process dies, Postgres drops the lock with the connection.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from goodjob_mp.db.job_store import dumps, utcnow

LOCK_TYPE_ADVISORY = 0

# GoodJob's Lockable key: md5 of "<table>-<id>", first 64 bits.
_LOCK_KEY = "('x' || substr(md5('good_job_processes-' || %(id)s::text), 1, 16))::bit(64)::bigint"

REGISTER = f"""
WITH row AS (
    INSERT INTO good_job_processes (id, created_at, updated_at, state, lock_type)
    VALUES (%(id)s, %(now)s, %(now)s, %(state)s, {LOCK_TYPE_ADVISORY})
    ON CONFLICT (id) DO UPDATE SET updated_at = EXCLUDED.updated_at, state = EXCLUDED.state
    RETURNING id
)
SELECT pg_try_advisory_lock({_LOCK_KEY}) FROM row
"""
HEARTBEAT = """
UPDATE good_job_processes SET updated_at = %(now)s, state = %(state)s WHERE id = %(id)s
"""
DEREGISTER = f"""
WITH gone AS (DELETE FROM good_job_processes WHERE id = %(id)s RETURNING id)
SELECT pg_advisory_unlock({_LOCK_KEY})
"""
# Dead: no session holds the row's advisory lock and the heartbeat is older than the bound.
# (A row whose lock is held elsewhere is alive even when its heartbeat lags: a busy process.)
FIND_DEAD = """
SELECT p.id FROM good_job_processes p
WHERE p.updated_at < %(stale_before)s
  AND NOT EXISTS (
    SELECT 1 FROM pg_locks l
    WHERE l.locktype = 'advisory' AND l.granted
      AND l.objsubid = 1
      AND ((l.classid::bigint << 32) | l.objid::bigint) = (
        ('x' || substr(md5('good_job_processes-' || p.id::text), 1, 16))::bit(64)::bigint)
  )
"""
DELETE_PROCESSES = "DELETE FROM good_job_processes WHERE id = ANY(%(ids)s)"


def register_process(
    conn: psycopg.Connection, process_id: uuid.UUID, state: Mapping[str, Any]
) -> bool:
    """Insert (or refresh) the row and take its advisory lock on ``conn``; True if locked."""
    row = conn.execute(
        REGISTER, {"id": process_id, "now": utcnow(), "state": Jsonb(dict(state), dumps)}
    ).fetchone()
    return bool(row and row[0])


def heartbeat(conn: psycopg.Connection, process_id: uuid.UUID, state: Mapping[str, Any]) -> bool:
    """Refresh the row; False when it is gone (another supervisor judged us dead)."""
    cur = conn.execute(
        HEARTBEAT, {"id": process_id, "now": utcnow(), "state": Jsonb(dict(state), dumps)}
    )
    return cur.rowcount == 1


def deregister_process(conn: psycopg.Connection, process_id: uuid.UUID) -> None:
    conn.execute(DEREGISTER, {"id": process_id})


def find_dead_processes(conn: psycopg.Connection, stale_after: float) -> list[uuid.UUID]:
    stale_before = utcnow() - dt.timedelta(seconds=stale_after)
    return [row[0] for row in conn.execute(FIND_DEAD, {"stale_before": stale_before})]


def delete_processes(conn: psycopg.Connection, ids: list[uuid.UUID]) -> None:
    if ids:
        conn.execute(DELETE_PROCESSES, {"ids": ids})
