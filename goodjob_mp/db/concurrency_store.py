"""SQL of the concurrency checks (policy: ``features/concurrency.py``; design:
docs/concurrency.md).

Both checks take GoodJob's advisory lock for the key (``advisory_lock_key(key)``: the first 64
bits of ``md5(key)``), so every check of one key, ours or a Rails GoodJob's, is serialised, and
count with a statement that starts after the lock is held (a fresh READ COMMITTED snapshot: it
sees what the previous holder committed).
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

import psycopg

from goodjob_mp.features import concurrency as policy

if TYPE_CHECKING:
    from goodjob_mp.db.job_store import NewJob

T = TypeVar("T")

KEY_LOCK = "('x' || substr(md5({key}), 1, 16))::bit(64)::bigint"
GOODJOB_JOB_LOCK = "('x' || substr(md5('good_jobs' || '-' || {id}::text), 1, 16))::bit(64)::bigint"

# --- enqueue -----------------------------------------------------------------------------------

LOCK_KEYS = f"SELECT pg_advisory_xact_lock({KEY_LOCK.format(key='k')}) FROM unnest(%s::text[]) k"

# Per key: waiting jobs (enqueue_limit: GoodJob's `unfinished.advisory_unlocked.where(locked_by_id:
# nil)`), unfinished jobs (total_limit), jobs created since (throttle). Each count stops at its
# cap (the limit: all a decision needs), so a key with a deep backlog costs no more than its limit;
# a cap of 0 skips the count. The advisory locks held (GoodJob's advisory strategy) are read once.
ENQUEUE_COUNTS = f"""
SELECT
    (SELECT count(*) FROM (
        SELECT 1 FROM good_jobs j
        WHERE j.concurrency_key = %(key)s AND j.finished_at IS NULL AND j.locked_by_id IS NULL
          AND NOT ({GOODJOB_JOB_LOCK.format(id="j.id")} = ANY (ARRAY(
              SELECT (l.classid::bigint << 32) | l.objid::bigint FROM pg_locks l
              WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
                AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
          )))
        LIMIT %(waiting_cap)s) w),
    (SELECT count(*) FROM (
        SELECT 1 FROM good_jobs
        WHERE concurrency_key = %(key)s AND finished_at IS NULL
        LIMIT %(unfinished_cap)s) u),
    (SELECT count(*) FROM (
        SELECT 1 FROM good_jobs
        WHERE concurrency_key = %(key)s AND created_at > %(since)s
        LIMIT %(recent_cap)s) r)
"""


def enqueue_refusals(
    conn: psycopg.Connection,
    rows: Sequence[NewJob],
    rules: Sequence[policy.EnqueueRule | None],
    now: dt.datetime,
) -> list[str | None]:
    """For each row (with its key set), why it is refused, or None. Locks the keys until the
    caller's transaction ends, so the rows written after this check hold the places counted."""
    keys = sorted(
        {
            r.concurrency_key
            for r, rule in zip(rows, rules, strict=True)
            if rule and r.concurrency_key
        }
    )
    if not keys:
        return [None] * len(rows)
    conn.execute(LOCK_KEYS, (keys,))
    counts: dict[str, list[int]] = {}
    out: list[str | None] = []
    for row, rule in zip(rows, rules, strict=True):
        key = row.concurrency_key
        if rule is None or key is None:
            out.append(None)
            continue
        if key not in counts:
            limit = rule.limit or 0
            params = {
                "key": key,
                "since": rule.throttle.since(now) if rule.throttle else now,
                "waiting_cap": limit if rule.waiting_only else 0,
                "unfinished_cap": 0 if rule.waiting_only else limit,
                "recent_cap": rule.throttle.count if rule.throttle else 0,
            }
            found = conn.execute(ENQUEUE_COUNTS, params).fetchone()
            counts[key] = list(found) if found else [0, 0, 0]
        waiting, unfinished, recent = counts[key]
        refusal = policy.enqueue_refusal(
            rule, waiting if rule.waiting_only else unfinished, recent if rule.throttle else 0
        )
        out.append(refusal)
        if refusal is None:  # the next row of this key in the batch counts this one
            counts[key] = [waiting + 1, unfinished + 1, recent + 1]
    return out


# --- perform -----------------------------------------------------------------------------------

LOCK_JOB_KEY = f"""
SELECT concurrency_key, pg_advisory_xact_lock({KEY_LOCK.format(key="concurrency_key")})
FROM good_jobs WHERE id = %(id)s AND concurrency_key IS NOT NULL AND concurrency_key <> ''
"""

# Admitted: performed_at moved past locked_at by this check (our claim sets them equal), or a
# running row of a Rails GoodJob (no locked_at, or performed_at set after locking).
_ADMITTED = "(locked_at IS NULL OR performed_at > locked_at)"
# The key is read from the row here too, so this statement can go in the same round trip as the
# lock (it still starts after the lock statement has finished).
_KEY = "(SELECT k.concurrency_key FROM good_jobs k WHERE k.id = %(id)s)"
PERFORM_COUNTS = f"""
SELECT (SELECT count(*) FROM good_jobs
        WHERE concurrency_key = {_KEY} AND finished_at IS NULL AND performed_at IS NOT NULL
          AND id <> %(id)s AND {_ADMITTED}),
       CASE WHEN %(since)s::timestamp IS NULL THEN 0 ELSE (
           SELECT count(*) FROM (
               SELECT 1 FROM good_job_executions e
               JOIN good_jobs j ON j.active_job_id = e.active_job_id
               WHERE j.concurrency_key = {_KEY} AND e.created_at > %(since)s
                 AND e.error IS DISTINCT FROM %(throttle_error)s
               LIMIT %(throttle_cap)s) e
       ) + (
           SELECT count(*) FROM good_jobs
           WHERE concurrency_key = {_KEY} AND finished_at IS NULL AND id <> %(id)s
             AND performed_at > %(since)s AND {_ADMITTED}
       ) END
"""
# The admission mark (see _ADMITTED): later than locked_at whatever the clocks say.
MARK_ADMITTED = """
UPDATE good_jobs SET performed_at = GREATEST(%(now)s, locked_at + interval '1 microsecond')
WHERE id = %(id)s AND locked_by_id IS NOT NULL
"""


def admit(
    conn: psycopg.Connection, job_id: uuid.UUID, rule: policy.PerformRule, now: dt.datetime
) -> str | None:
    """Admit a claimed job to run now (marking it admitted), or say why not ("limit" /
    "throttle"). A job without a stored key is not limited.

    Pipelined into two round trips: BEGIN, the lock and the counts; then the mark and COMMIT.
    The server runs each statement after the previous one has finished, so the counts take their
    snapshot with the lock held."""
    params = {
        "id": job_id,
        "now": now,
        "since": rule.throttle.since(now) if rule.throttle else None,
        "throttle_cap": rule.throttle.count if rule.throttle else 0,
        "throttle_error": policy.THROTTLE_ERROR,
    }
    with conn.pipeline(), conn.transaction():
        locked = conn.execute(LOCK_JOB_KEY, params)
        counted = conn.execute(PERFORM_COUNTS, params)
        if locked.fetchone() is None:
            return None  # no key: not limited
        running, started = counted.fetchone()  # type: ignore[misc]
        refused = policy.perform_refusal(rule, running, started)
        if refused is None:
            conn.execute(MARK_ADMITTED, params)
    return refused


# The attempt ended (its result is not written yet): no longer admitted, so not counted.
RELEASE = """
UPDATE good_jobs SET performed_at = locked_at
WHERE id = %(id)s AND locked_by_id IS NOT NULL AND performed_at > locked_at
"""


def release(conn: psycopg.Connection, job_id: uuid.UUID) -> None:
    conn.execute(RELEASE, {"id": job_id})


def check_session(conn: psycopg.Connection) -> psycopg.Connection:
    """The check connection's session settings. Its writes are only the admission mark and its
    release, which matter only while the job runs: they need not wait for the WAL flush (an fsync
    per check, 5-10 ms on a slow disk, serialised per key). A database server crash could lose
    the last marks; every session, the workers' included, is cut off by that crash anyway."""
    conn.execute("SET synchronous_commit TO off")
    return conn


class CheckConnection:
    """This process's connection for perform checks: opened on first use (after any fork),
    shared by the executor threads one check at a time (a check is a few milliseconds, and only
    jobs with perform rules make one)."""

    def __init__(self, connect: Callable[[], psycopg.Connection]) -> None:
        self._connect = connect
        self._conn: psycopg.Connection | None = None
        self._pid = 0
        self._lock = threading.Lock()
        # A child starts with a fresh lock (one held by a parent's thread at the fork would never
        # be released there) and drops the parent's connection without closing it.
        os.register_at_fork(after_in_child=self._after_fork)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._conn = None

    def run(self, fn: Callable[[psycopg.Connection], T]) -> T:
        with self._lock:
            conn = self._conn
            if conn is None or self._pid != os.getpid() or conn.closed or conn.broken:
                self._pid = os.getpid()
                self._conn = conn = self._connect()
            try:
                return fn(conn)
            except psycopg.OperationalError:
                self._conn = None
                try:
                    conn.close()
                except Exception:
                    pass
                raise

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None
