"""SQL for ``good_job_processes``: the registry row of every live process, its heartbeat, and
finding processes that are gone.

Each row is judged by its writer's own rule (``is_dead``), so goodjob_mp and a Rails GoodJob
sharing the database agree on who is alive:

- ``lock_type`` 0 (advisory; every goodjob_mp process, and GoodJob with
  ``advisory_lock_heartbeat``): alive while a session holds the row's advisory lock (GoodJob's
  key for the row). The lock lives on a connection the process keeps open; when the process dies,
  Postgres drops the lock with the connection. We also wait for the heartbeat to go stale
  (``dead_process_timeout``), which covers a process that is reconnecting after a blip and only
  makes us more patient than GoodJob's own cleanup.
- ``lock_type`` NULL (GoodJob in production: no lock, the row is refreshed every 30-33 s): alive
  until GoodJob's own expiry, ``GoodJob::Process::EXPIRED_INTERVAL`` (5 minutes) after
  ``updated_at``.

A row says ``lock_type`` 0 only while its lock is held: ``REGISTER`` takes the lock first and
writes the row in the same statement, so GoodJob's ``Process.cleanup`` (which deletes an advisory
row the moment its lock is free) never sees a live process's row without its lock.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from goodjob_mp.db.job_store import dumps, utcnow

LOCK_TYPE_ADVISORY = 0
# GoodJob::Process::EXPIRED_INTERVAL: how long GoodJob keeps a row without a lock alive.
GOODJOB_EXPIRED_INTERVAL = 300.0


def lock_key_sql(id_sql: str) -> str:
    """GoodJob's AdvisoryLockable key (hash function md5): the first 64 bits of
    md5('good_job_processes-<id>') as a bigint."""
    return f"('x' || substr(md5('good_job_processes-' || {id_sql}::text), 1, 16))::bit(64)::bigint"


def _lock_held_sql(id_sql: str, *, by_this_session: bool = False) -> str:
    # Advisory locks are per database; pg_locks shows the whole cluster.
    own = "AND l.pid = pg_backend_pid()" if by_this_session else ""
    return f"""EXISTS (
        SELECT 1 FROM pg_locks l
        WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 {own}
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND ((l.classid::bigint << 32) | l.objid::bigint) = {lock_key_sql(id_sql)})"""


_HELD_HERE = _lock_held_sql("%(id)s", by_this_session=True)

# Lock first (unless this session already holds it: advisory locks count re-entries, and one
# unlock must release it), then write the row saying what is true: lock_type 0 only if locked.
# One statement: in autocommit the row becomes visible only at commit, with the lock already held.
REGISTER = f"""
WITH lock AS (
    SELECT CASE WHEN {_HELD_HERE} THEN true
                ELSE pg_try_advisory_lock({lock_key_sql("%(id)s")}) END AS locked
), row AS (
    INSERT INTO good_job_processes (id, created_at, updated_at, state, lock_type)
    SELECT %(id)s, %(now)s, %(now)s, %(state)s,
           CASE WHEN lock.locked THEN {LOCK_TYPE_ADVISORY} END
    FROM lock
    ON CONFLICT (id) DO UPDATE SET updated_at = EXCLUDED.updated_at, state = EXCLUDED.state,
        lock_type = EXCLUDED.lock_type
    RETURNING id
)
SELECT lock.locked FROM lock, row
"""
HEARTBEAT = """
UPDATE good_job_processes SET updated_at = %(now)s, state = %(state)s WHERE id = %(id)s
"""
# The row goes only when no unfinished job is still locked by it: a process that could not hand
# its jobs back keeps its row, and the sweep frees them once the row is judged dead (deleting
# the row would leave the jobs locked by an owner no sweep ever looks at). The lock is released
# only by the session that holds it (unlocking elsewhere makes Postgres log a warning).
DEREGISTER = f"""
WITH gone AS (
    DELETE FROM good_job_processes WHERE id = %(id)s
      AND NOT EXISTS (
        SELECT 1 FROM good_jobs WHERE locked_by_id = %(id)s AND finished_at IS NULL)
    RETURNING id
), unlock AS (
    SELECT CASE WHEN {_HELD_HERE} THEN pg_advisory_unlock({lock_key_sql("%(id)s")}) END
)
SELECT (SELECT count(*) FROM gone), (SELECT * FROM unlock)
"""
LIST_PROCESSES = f"""
SELECT p.id, p.lock_type, p.updated_at, {_lock_held_sql("p.id")} AS locked
FROM good_job_processes p
"""
# Delete only rows still as we judged them (not refreshed, lock still free), so a process that
# heartbeats or locks between the judgement and the delete is never removed.
DELETE_IF_STILL_DEAD = f"""
DELETE FROM good_job_processes p
USING unnest(%(ids)s::uuid[], %(seen)s::timestamp[]) AS d(id, updated_at)
WHERE p.id = d.id AND p.updated_at IS NOT DISTINCT FROM d.updated_at
  AND NOT {_lock_held_sql("p.id")}
RETURNING p.id
"""
DELETE_PROCESSES = "DELETE FROM good_job_processes WHERE id = ANY(%(ids)s)"
# Owners of locked, unfinished jobs that have no row (e.g. left by an older inline mode, or a row
# deleted by hand): nothing else would ever free their jobs. Only owners whose newest lock is
# older than the timeout, so a process between claiming and re-registering is left alone.
FIND_ROWLESS_OWNERS = """
SELECT j.locked_by_id FROM good_jobs j
WHERE j.locked_by_id IS NOT NULL AND j.finished_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM good_job_processes p WHERE p.id = j.locked_by_id)
GROUP BY j.locked_by_id
HAVING max(COALESCE(j.locked_at, j.updated_at)) < %(stale_before)s
"""


@dataclass(frozen=True)
class ProcessRow:
    """What liveness needs to know about one ``good_job_processes`` row."""

    id: uuid.UUID
    lock_type: int | None
    updated_at: dt.datetime | None  # naive UTC
    locked: bool  # some session holds the row's advisory lock


def is_dead(row: ProcessRow, now: dt.datetime, dead_process_timeout: float) -> bool:
    """The row's writer's own rule (see the module docstring)."""
    if row.locked:
        return False
    if row.updated_at is None:
        # GoodJob never expires a lock-less row without a timestamp; an advisory one without
        # its lock is gone by GoodJob's rule.
        return row.lock_type == LOCK_TYPE_ADVISORY
    age = (now - row.updated_at).total_seconds()
    if row.lock_type == LOCK_TYPE_ADVISORY:
        return age > dead_process_timeout
    return age > max(GOODJOB_EXPIRED_INTERVAL, dead_process_timeout)


def register_process(
    conn: psycopg.Connection, process_id: uuid.UUID, state: Mapping[str, Any]
) -> bool:
    """Take the row's advisory lock on ``conn`` and insert (or refresh) the row; True if locked."""
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


def deregister_process(conn: psycopg.Connection, process_id: uuid.UUID) -> bool:
    """Delete the row (unless jobs are still locked by it) and release its lock if this session
    holds it; True if the row was deleted."""
    row = conn.execute(DEREGISTER, {"id": process_id}).fetchone()
    return bool(row and row[0])


def list_processes(conn: psycopg.Connection) -> list[ProcessRow]:
    return [ProcessRow(*row) for row in conn.execute(LIST_PROCESSES)]


def find_dead_processes(
    conn: psycopg.Connection, dead_process_timeout: float, now: dt.datetime | None = None
) -> list[ProcessRow]:
    """The rows that are dead by their writer's rule."""
    now = now or utcnow()
    return [r for r in list_processes(conn) if is_dead(r, now, dead_process_timeout)]


def delete_if_still_dead(conn: psycopg.Connection, rows: Sequence[ProcessRow]) -> list[uuid.UUID]:
    """Delete the rows judged dead that nobody refreshed or locked since; returns their ids."""
    if not rows:
        return []
    cur = conn.execute(
        DELETE_IF_STILL_DEAD,
        {"ids": [r.id for r in rows], "seen": [r.updated_at for r in rows]},
    )
    return [row[0] for row in cur]


def find_rowless_owners(conn: psycopg.Connection, stale_after: float) -> list[uuid.UUID]:
    stale_before = utcnow() - dt.timedelta(seconds=stale_after)
    return [row[0] for row in conn.execute(FIND_ROWLESS_OWNERS, {"stale_before": stale_before})]


def delete_processes(conn: psycopg.Connection, ids: list[uuid.UUID]) -> None:
    if ids:
        conn.execute(DELETE_PROCESSES, {"ids": ids})
