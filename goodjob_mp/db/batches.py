"""SQL for ``good_job_batches``: write, lock, read and clean up batch rows.

Owns every statement on the batch table, plus the two questions the completion logic asks of
``good_jobs`` ("is any job of this batch unfinished?", "is any callback job unfinished?"), which
the partial indexes of migration 0005 answer. Rows are GoodJob v4's: timestamps naive UTC,
``serialized_properties`` in Active Job's argument form, callbacks as class names. Callers own
the connection and the transaction; nothing here keeps one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from goodjob_mp.serialization import dumps

COLUMNS = (
    "id, created_at, updated_at, description, serialized_properties, on_finish, on_success, "
    "on_discard, callback_queue_name, callback_priority, enqueued_at, discarded_at, "
    "finished_at, jobs_finished_at"
)


@dataclass
class BatchRow:
    """One ``good_job_batches`` row, as stored."""

    id: uuid.UUID
    created_at: dt.datetime
    updated_at: dt.datetime
    description: str | None
    serialized_properties: Any
    on_finish: str | None
    on_success: str | None
    on_discard: str | None
    callback_queue_name: str | None
    callback_priority: int | None
    enqueued_at: dt.datetime | None
    discarded_at: dt.datetime | None
    finished_at: dt.datetime | None
    jobs_finished_at: dt.datetime | None


# A new batch, or a batch enqueued again: enqueueing a batch that was enqueued before clears
# discarded_at, finished_at and jobs_finished_at, so its callbacks become due once more (as
# GoodJob's Batch#enqueue on a persisted record). A batch saved but never enqueued keeps a
# discard its jobs already recorded (GoodJob would clear it too: its callback would be lost).
UPSERT = f"""
INSERT INTO good_job_batches ({COLUMNS})
VALUES (%(id)s, %(now)s, %(now)s, %(description)s, %(serialized_properties)s, %(on_finish)s,
        %(on_success)s, %(on_discard)s, %(callback_queue_name)s, %(callback_priority)s,
        %(enqueued_at)s, NULL, NULL, NULL)
ON CONFLICT (id) DO UPDATE SET
    updated_at = EXCLUDED.updated_at, description = EXCLUDED.description,
    serialized_properties = EXCLUDED.serialized_properties, on_finish = EXCLUDED.on_finish,
    on_success = EXCLUDED.on_success, on_discard = EXCLUDED.on_discard,
    callback_queue_name = EXCLUDED.callback_queue_name,
    callback_priority = EXCLUDED.callback_priority,
    enqueued_at = COALESCE(EXCLUDED.enqueued_at, good_job_batches.enqueued_at),
    discarded_at = CASE WHEN good_job_batches.enqueued_at IS NULL
                        THEN good_job_batches.discarded_at END,
    finished_at = CASE WHEN good_job_batches.enqueued_at IS NULL
                       THEN good_job_batches.finished_at END,
    jobs_finished_at = CASE WHEN good_job_batches.enqueued_at IS NULL
                            THEN good_job_batches.jobs_finished_at END
"""
INSERT_NEW = f"""
INSERT INTO good_job_batches ({COLUMNS})
VALUES (%(id)s, %(now)s, %(now)s, %(description)s, %(serialized_properties)s, %(on_finish)s,
        %(on_success)s, %(on_discard)s, %(callback_queue_name)s, %(callback_priority)s,
        NULL, NULL, NULL, NULL)
ON CONFLICT (id) DO NOTHING
"""

# GoodJob's AdvisoryLockable key for a record ("<table>-<id>", md5, first 64 bits): a Rails
# GoodJob finishing a job of the same batch takes this very lock, so the two serialise.
LOCK = (
    "SELECT pg_advisory_xact_lock(('x' || substr(md5('good_job_batches-' || %s::text), 1, 16))"
    "::bit(64)::bigint)"
)
# Read after the lock, in a statement of its own: under READ COMMITTED it sees every finish
# committed before the lock was granted.
SELECT_FOR_UPDATE = f"SELECT {COLUMNS} FROM good_job_batches WHERE id = %s FOR UPDATE"
SELECT_ONE = f"SELECT {COLUMNS} FROM good_job_batches WHERE id = %s"
# Many batches at once (one result write touches several): the advisory locks in the order of
# the array (the caller sorts it, so two writers never wait on each other in a cycle), then the
# rows; ORDER BY makes every lock be taken before the first row is locked and returned.
LOCK_MANY = f"""
WITH locks AS MATERIALIZED (
    SELECT u.id, pg_advisory_xact_lock(
        ('x' || substr(md5('good_job_batches-' || u.id::text), 1, 16))::bit(64)::bigint)
    FROM unnest(%s::uuid[]) AS u(id)
)
SELECT {COLUMNS} FROM good_job_batches WHERE id IN (SELECT id FROM locks) ORDER BY id FOR UPDATE
"""
# Per batch: is any job unfinished, is any callback job unfinished (a job waiting for its retry
# is unfinished). One statement for all batches of a write, after the locks.
UNFINISHED = """
SELECT u.id,
    EXISTS (SELECT 1 FROM good_jobs j WHERE j.batch_id = u.id AND j.finished_at IS NULL),
    EXISTS (SELECT 1 FROM good_jobs j WHERE j.batch_callback_id = u.id AND j.finished_at IS NULL)
FROM unnest(%s::uuid[]) AS u(id)
"""
MARK = {
    name: f"UPDATE good_job_batches SET {name} = %(now)s, updated_at = %(now)s WHERE id = %(id)s"
    for name in ("enqueued_at", "discarded_at", "jobs_finished_at", "finished_at")
}
# Batch#retry: the batch is unfinished again before its discarded jobs rerun.
REOPEN = """
UPDATE good_job_batches
SET discarded_at = NULL, finished_at = NULL, jobs_finished_at = NULL, updated_at = %(now)s
WHERE id = %(id)s
"""
BATCH_OF_JOB = "SELECT batch_id FROM good_jobs WHERE id = %s"
ADD_JOBS = "UPDATE good_jobs SET batch_id = %s WHERE id = ANY(%s)"
DISCARDED_JOB_IDS = """
SELECT id FROM good_jobs
WHERE batch_id = %s AND finished_at IS NOT NULL AND error IS NOT NULL
ORDER BY created_at
"""


def lock_key(batch_id: uuid.UUID) -> int:
    """The advisory lock key of ``LOCK``, computed here (for tests and pg_locks lookups)."""
    digest = hashlib.md5(f"good_job_batches-{batch_id}".encode(), usedforsecurity=False).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _jsonb(value: Any) -> Jsonb:
    return Jsonb(value, dumps)


def row_params(row: BatchRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "description": row.description,
        "serialized_properties": _jsonb(row.serialized_properties),
        "on_finish": row.on_finish,
        "on_success": row.on_success,
        "on_discard": row.on_discard,
        "callback_queue_name": row.callback_queue_name,
        "callback_priority": row.callback_priority,
    }


def insert_new(conn: psycopg.Connection, row: BatchRow, now: dt.datetime) -> None:
    """Write a batch that is not enqueued yet (a no-op when it exists)."""
    conn.execute(INSERT_NEW, {**row_params(row), "now": now})


def upsert_enqueued(conn: psycopg.Connection, row: BatchRow, now: dt.datetime) -> None:
    """Write the batch with ``enqueued_at = now``, reopening it if it was enqueued before."""
    conn.execute(UPSERT, {**row_params(row), "now": now, "enqueued_at": now})


def lock(conn: psycopg.Connection, batch_id: uuid.UUID) -> BatchRow | None:
    """Take the batch's lock (advisory, GoodJob's key, and the row) for this transaction."""
    conn.execute(LOCK, (batch_id,))
    with conn.cursor(row_factory=class_row(BatchRow)) as cur:
        return cur.execute(SELECT_FOR_UPDATE, (batch_id,)).fetchone()


def find(conn: psycopg.Connection, batch_id: uuid.UUID) -> BatchRow | None:
    with conn.cursor(row_factory=class_row(BatchRow)) as cur:
        return cur.execute(SELECT_ONE, (batch_id,)).fetchone()


def lock_many(
    conn: psycopg.Connection, batch_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, BatchRow]:
    """``lock`` for several batches in one statement; ids must be sorted. Missing ids are left
    out (a batch that cleanup removed)."""
    with conn.cursor(row_factory=class_row(BatchRow)) as cur:
        return {row.id: row for row in cur.execute(LOCK_MANY, (list(batch_ids),))}


def unfinished(
    conn: psycopg.Connection, batch_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, tuple[bool, bool]]:
    """Per batch: (a job is unfinished, a callback job is unfinished)."""
    return {r[0]: (r[1], r[2]) for r in conn.execute(UNFINISHED, (list(batch_ids),))}


def mark(conn: psycopg.Connection, batch_id: uuid.UUID, column: str, now: dt.datetime) -> None:
    conn.execute(MARK[column], {"id": batch_id, "now": now})


def reopen(conn: psycopg.Connection, batch_id: uuid.UUID, now: dt.datetime) -> None:
    conn.execute(REOPEN, {"id": batch_id, "now": now})


def add_jobs(conn: psycopg.Connection, batch_id: uuid.UUID, job_ids: Sequence[uuid.UUID]) -> int:
    return conn.execute(ADD_JOBS, (batch_id, list(job_ids))).rowcount


def discarded_job_ids(conn: psycopg.Connection, batch_id: uuid.UUID) -> list[uuid.UUID]:
    return [row[0] for row in conn.execute(DISCARDED_JOB_IDS, (batch_id,))]


# --- reads for the CLI and the dashboard --------------------------------------------------------

# Counts per batch come from the batch_id index, one batch at a time (LATERAL), so a page of
# batches costs a page of index scans however large good_jobs is.
LIST = """
SELECT b.id, b.created_at, b.description, b.enqueued_at, b.discarded_at, b.jobs_finished_at,
    b.finished_at, b.on_finish, b.on_success, b.on_discard,
    c.jobs, c.finished, c.discarded, c.callbacks
FROM good_job_batches b
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE j.batch_id = b.id) AS jobs,
        count(*) FILTER (WHERE j.batch_id = b.id AND j.finished_at IS NOT NULL) AS finished,
        count(*) FILTER (WHERE j.batch_id = b.id AND j.finished_at IS NOT NULL
                         AND j.error IS NOT NULL) AS discarded,
        count(*) FILTER (WHERE j.batch_callback_id = b.id) AS callbacks
    FROM good_jobs j WHERE j.batch_id = b.id OR j.batch_callback_id = b.id
) AS c
{where}
ORDER BY b.created_at DESC, b.id DESC
LIMIT %(limit)s
"""
LIST_WHERE = {
    None: "",
    "before": "WHERE (b.created_at, b.id) < (%(before_at)s, %(before_id)s)",
}


@dataclass(frozen=True)
class BatchSummary:
    id: uuid.UUID
    created_at: dt.datetime
    description: str | None
    enqueued_at: dt.datetime | None
    discarded_at: dt.datetime | None
    jobs_finished_at: dt.datetime | None
    finished_at: dt.datetime | None
    on_finish: str | None
    on_success: str | None
    on_discard: str | None
    jobs: int
    finished: int
    discarded: int
    callbacks: int

    @property
    def state(self) -> str:
        return batch_state(self.enqueued_at, self.discarded_at, self.finished_at)


def batch_state(
    enqueued_at: dt.datetime | None,
    discarded_at: dt.datetime | None,
    finished_at: dt.datetime | None,
) -> str:
    """GoodJob's words for a batch: pending (not enqueued), running, succeeded, discarded
    (finished with a discarded job; "discarding" while others still run)."""
    if finished_at is not None:
        return "discarded" if discarded_at is not None else "succeeded"
    if enqueued_at is None:
        return "pending"
    return "discarding" if discarded_at is not None else "running"


def list_batches(
    conn: psycopg.Connection,
    limit: int = 25,
    before: tuple[dt.datetime, uuid.UUID] | None = None,
) -> list[BatchSummary]:
    """The most recent batches, newest first, with their job counts; ``before`` is the
    (created_at, id) of the last row of the previous page (keyset pagination)."""
    params: dict[str, Any] = {"limit": limit}
    if before is not None:
        params.update(before_at=before[0], before_id=before[1])
    query = LIST.format(where=LIST_WHERE["before" if before is not None else None])
    with conn.cursor(row_factory=class_row(BatchSummary)) as cur:
        return cur.execute(query, params).fetchall()  # type: ignore[arg-type]


BATCH_JOBS = """
SELECT id, job_class, queue_name, priority, scheduled_at, performed_at, finished_at, error,
    batch_callback_id IS NOT NULL AS callback,
    CASE WHEN finished_at IS NOT NULL AND error IS NOT NULL THEN 'discarded'
         WHEN finished_at IS NOT NULL THEN 'succeeded'
         WHEN locked_by_id IS NOT NULL THEN 'running'
         WHEN scheduled_at > %(now)s THEN 'scheduled'
         ELSE 'queued' END AS state
FROM good_jobs WHERE batch_id = %(id)s OR batch_callback_id = %(id)s
ORDER BY batch_callback_id IS NOT NULL, created_at, id
LIMIT %(limit)s
"""


@dataclass(frozen=True)
class BatchJob:
    id: uuid.UUID
    job_class: str | None
    queue_name: str | None
    priority: int | None
    scheduled_at: dt.datetime | None
    performed_at: dt.datetime | None
    finished_at: dt.datetime | None
    error: str | None
    callback: bool
    state: str


def batch_jobs(
    conn: psycopg.Connection, batch_id: uuid.UUID, now: dt.datetime, limit: int = 500
) -> list[BatchJob]:
    """The batch's jobs, then its callback jobs, in enqueue order."""
    with conn.cursor(row_factory=class_row(BatchJob)) as cur:
        return cur.execute(BATCH_JOBS, {"id": batch_id, "now": now, "limit": limit}).fetchall()


# --- cleanup ------------------------------------------------------------------------------------

# GoodJob's cleanup_preserved_jobs: batches finished before the cutoff go, in bounded batches;
# discarded ones only when discarded jobs are cleaned up too.
DELETE_FINISHED = """
DELETE FROM good_job_batches WHERE id IN (
    SELECT id FROM good_job_batches
    WHERE finished_at <= %(before)s AND (%(include_discarded)s OR discarded_at IS NULL)
    LIMIT %(limit)s
)
"""


def delete_finished(
    conn: psycopg.Connection, before: dt.datetime, include_discarded: bool, limit: int
) -> int:
    params = {"before": before, "include_discarded": include_discarded, "limit": limit}
    return conn.execute(DELETE_FINISHED, params).rowcount
