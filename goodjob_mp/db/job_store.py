"""SQL for ``good_jobs`` and ``good_job_executions``: insert, claim, finish, release.

Owns every statement the hot path runs against the two job tables. Each call is one statement
(one round trip) for a whole batch: claims with ``FOR NO KEY UPDATE SKIP LOCKED``, results with
``unnest`` arrays, bulk inserts with COPY. Callers own the connection; nothing here keeps one.
Timestamps are naive UTC, as Rails stores them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import os
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg.types.string import TextLoader

from goodjob_mp import features
from goodjob_mp.db import start_journal
from goodjob_mp.db.jsonb import loads as json_loads
from goodjob_mp.queues import QueueSelector
from goodjob_mp.serialization import dumps as json_text

if TYPE_CHECKING:
    from goodjob_mp.features import ClaimCondition

NOTIFY_CHANNEL = "good_job"
LOCK_TYPE_SKIPLOCKED = 1


_EPOCH = dt.datetime(1970, 1, 1)
_after_epoch = dt.timedelta
_time_ns = time.time_ns


def utcnow() -> dt.datetime:
    """Naive UTC now, the form stored in ``timestamp without time zone`` columns."""
    # datetime.now(utc).replace(tzinfo=None) in a third of the time (replace's keyword is what
    # costs): called a few times per job on the hot paths, hence the bound names.
    return _EPOCH + _after_epoch(microseconds=_time_ns() // 1000)


_urandom = os.urandom
_new_object = object.__new__
_set_slot = object.__setattr__
_VERSION_7 = (7 << 76) | (0x8000 << 48)  # version 7, RFC 9562 variant
_RANDOM_BITS = ((1 << 76) - 1) & ~(0xC000 << 48)  # rand_a and rand_b: all below the version


def _uuid7_int() -> int:
    """A UUID version 7 (RFC 9562) as its 128-bit integer: the Unix time in milliseconds, then
    74 random bits.

    Ids that grow with time are inserted at the right-hand edge of the primary key and of
    ``index_good_jobs_on_unfinished_or_errored`` (a few hot pages), where random version 4 ids
    touch a page anywhere in the index for every new job: the difference grows with the table.
    """
    return (
        (_time_ns() // 1_000_000) << 80
        | int.from_bytes(_urandom(10), "big") & _RANDOM_BITS
        | _VERSION_7
    )


def _fast_uuid7() -> uuid.UUID:
    job_id = _new_object(uuid.UUID)
    _set_slot(job_id, "int", _uuid7_int())  # what UUID.__init__ stores, without its checks
    _set_slot(job_id, "is_safe", uuid.SafeUUID.unknown)
    return job_id


def _slow_uuid7() -> uuid.UUID:
    return uuid.UUID(int=_uuid7_int())


def _pick_new_job_id() -> Callable[[], uuid.UUID]:
    """``_fast_uuid7`` where this Python's UUID is laid out as expected (it skips the
    constructor's checks: one enqueue makes one id), else the same value through the
    constructor."""
    try:
        probe = _fast_uuid7()
        same = uuid.UUID(str(probe))
        if probe == same and probe.version == 7 and probe.variant == uuid.RFC_4122:
            return _fast_uuid7
    except (AttributeError, TypeError, ValueError):
        pass
    return _slow_uuid7


new_job_id = _pick_new_job_id()


def to_naive_utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        return value
    return value.astimezone(dt.timezone.utc).replace(tzinfo=None)


def dumps(value: Any) -> str:
    # serialization.dumps keeps floats >= 1e16 floats in jsonb (see there).
    return json_text(value)


def notify_payload(queue_name: str | None, scheduled_at: dt.datetime) -> str:
    # GoodJob's payload shape, so a Rails GoodJob listening on the same database wakes up too.
    # Same text as dumps({"queue_name": ..., "scheduled_at": ...}); the queue's part is cached
    # (every single enqueue sends one) and an ISO time needs no escaping.
    return _notify_prefix(queue_name) + scheduled_at.isoformat() + 'Z"}'


@functools.lru_cache(maxsize=256)
def _notify_prefix(queue_name: str | None) -> str:
    return '{"queue_name":' + dumps(queue_name) + ',"scheduled_at":"'


# --- insert -----------------------------------------------------------------------------------

INSERT_COLUMNS = (
    "id",
    "active_job_id",
    "job_class",
    "queue_name",
    "priority",
    "serialized_params",
    "scheduled_at",
    "created_at",
    "updated_at",
    "labels",
    "cron_key",
    "cron_at",
    "batch_id",
    "batch_callback_id",
    "concurrency_key",
)

_INSERT_VALUES = """
INSERT INTO good_jobs (id, active_job_id, job_class, queue_name, priority, serialized_params,
                       scheduled_at, created_at, updated_at, labels, cron_key, cron_at, batch_id,
                       batch_callback_id, concurrency_key)
VALUES (%(id)s, %(id)s, %(job_class)s, %(queue_name)s, %(priority)s, %(serialized_params)s,
        %(scheduled_at)s, %(created_at)s, %(created_at)s, %(labels)s, %(cron_key)s, %(cron_at)s,
        %(batch_id)s, %(batch_callback_id)s, %(concurrency_key)s)
"""
# One statement, so in autocommit mode the row and its NOTIFY commit together, and inside a
# caller's transaction the NOTIFY is delivered only if that transaction commits.
INSERT_AND_NOTIFY = f"""
WITH inserted AS ({_INSERT_VALUES} RETURNING id)
SELECT pg_notify('{NOTIFY_CHANNEL}', %(notify)s) FROM inserted
"""
# Cron: a unique violation on (cron_key, cron_at) means "already enqueued", not an error.
INSERT_UNIQUE_CRON_AND_NOTIFY = f"""
WITH inserted AS ({_INSERT_VALUES}
    ON CONFLICT (cron_key, cron_at) WHERE (cron_key IS NOT NULL) DO NOTHING RETURNING id)
SELECT id, pg_notify('{NOTIFY_CHANNEL}', %(notify)s) FROM inserted
"""
NOTIFY = "SELECT pg_notify(%s, %s)"
# A plain job (no labels, cron, batch or concurrency key: most single enqueues) needs only these
# columns. Every parameter goes as text the columns type, on a RawCursor: psycopg then neither
# rewrites the query nor adapts nine Python values, a third of a single enqueue's CPU.
INSERT_PLAIN_AND_NOTIFY = f"""
WITH inserted AS (
    INSERT INTO good_jobs (id, active_job_id, job_class, queue_name, priority, serialized_params,
                           scheduled_at, created_at, updated_at)
    VALUES ($1, $1, $2, $3, $4, $5, $6, $7, $7) RETURNING id)
SELECT pg_notify('{NOTIFY_CHANNEL}', $8) FROM inserted
"""


@dataclass
class NewJob:
    """One row to insert; built by ``goodjob_mp.enqueue``.

    Its Active Job envelope is kept as JSON text (``params_json``), what the write sends; the
    dict (``serialized_params``) is decoded from it only when something reads it (an enqueue
    feature, a test), since most jobs are written without anyone looking inside."""

    id: uuid.UUID
    job_class: str
    queue_name: str
    priority: int
    params_dict: dict[str, Any] | None
    scheduled_at: dt.datetime
    created_at: dt.datetime
    labels: list[str] | None = None
    cron_key: str | None = None
    cron_at: dt.datetime | None = None
    batch_id: uuid.UUID | None = None
    batch_callback_id: uuid.UUID | None = None  # a batch's callback job (features/batches.py)
    concurrency_key: str | None = None  # set by features.concurrency at enqueue
    refused: str | None = None  # why an enqueue feature left the row out ("limit", ...)
    # serialized_params as JSON text; None after anything may have changed the dict (enqueue
    # features), which is then the truth.
    params_json: str | None = None
    # str(id) and created_at.isoformat(), as enqueue wrote them into the envelope (COPY reuses).
    id_text: str | None = None
    created_text: str | None = None

    @property
    def serialized_params(self) -> dict[str, Any]:
        params = self.params_dict
        if params is None:
            params = self.params_dict = json_loads(self.params_json)  # type: ignore[arg-type]
        return params

    @serialized_params.setter
    def serialized_params(self, value: dict[str, Any]) -> None:
        self.params_dict, self.params_json = value, None

    def params_text(self) -> str:
        text = self.params_json
        return dumps(self.params_dict) if text is None else text

    def is_plain(self) -> bool:
        """Whether only the columns of ``INSERT_PLAIN_AND_NOTIFY`` are set."""
        return (
            self.labels is None
            and self.cron_key is None
            and self.cron_at is None
            and self.batch_id is None
            and self.batch_callback_id is None
            and self.concurrency_key is None
        )

    def plain_params(self) -> tuple[str, ...]:
        """The text parameters of ``INSERT_PLAIN_AND_NOTIFY`` (the same text COPY writes)."""
        created = self.created_text or self.created_at.isoformat(timespec="microseconds")
        scheduled_at = self.scheduled_at
        scheduled = created if scheduled_at is self.created_at else scheduled_at.isoformat()
        return (
            self.id_text or str(self.id),
            self.job_class,
            self.queue_name,
            f"{self.priority:d}",
            self.params_text(),
            scheduled,
            created,
            notify_payload(self.queue_name, scheduled_at),
        )

    def params(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "job_class": self.job_class,
            "queue_name": self.queue_name,
            "priority": self.priority,
            "serialized_params": Jsonb(self.params_text(), _as_is),
            "scheduled_at": self.scheduled_at,
            "created_at": self.created_at,
            "labels": self.labels,
            "cron_key": self.cron_key,
            "cron_at": self.cron_at,
            "batch_id": self.batch_id,
            "batch_callback_id": self.batch_callback_id,
            "concurrency_key": self.concurrency_key,
            "notify": notify_payload(self.queue_name, self.scheduled_at),
        }


def _as_is(text: str) -> str:
    return text


def forget_params_json(jobs: Iterable[NewJob]) -> None:
    """After enqueue features that may have changed serialized_params ran: only a dict that was
    decoded can have changed (the text of the others is still theirs)."""
    for job in jobs:
        if job.params_dict is not None:
            job.params_json = None


def insert_job(conn: psycopg.Connection, job: NewJob, *, notify: bool = True) -> bool:
    """Insert one job (and NOTIFY in the same statement). False when a cron duplicate existed
    or an enqueue feature refused the row."""
    if features.enqueue_hooks:
        with features.enqueue_transaction(conn, [job]):
            if not features.before_enqueue(conn, [job]):
                return False
            if features.params_may_change():
                forget_params_json([job])
            return _insert_job(conn, job, notify)
    return _insert_job(conn, job, notify)


def insert_plain(cur: psycopg.RawCursor, job: NewJob) -> None:
    """Insert a plain job (``job.is_plain()``) and NOTIFY, in one statement on ``cur``; the
    caller has run the enqueue hooks, or none wants the row."""
    cur.execute(INSERT_PLAIN_AND_NOTIFY, job.plain_params())


def _insert_job(conn: psycopg.Connection, job: NewJob, notify: bool) -> bool:
    if job.cron_key is not None:
        return conn.execute(INSERT_UNIQUE_CRON_AND_NOTIFY, job.params()).fetchone() is not None
    if notify:
        conn.execute(INSERT_AND_NOTIFY, job.params())
    else:
        conn.execute(_INSERT_VALUES, job.params())
    return True


# --- claim ------------------------------------------------------------------------------------

# GoodJob's per-job advisory lock key (Lockable, md5 hash function): the first 64 bits of
# md5('good_jobs-<id>'). Its advisory and hybrid lock strategies hold it while performing and
# skip jobs whose key is held, so holding it keeps a Rails GoodJob off our jobs and us off its.
JOB_LOCK_KEY = "('x' || substr(md5('good_jobs' || '-' || {id}::text), 1, 16))::bit(64)::bigint"


def job_lock_key(job_id: uuid.UUID) -> int:
    """GoodJob's advisory lock key for a job, computed here (same value as ``JOB_LOCK_KEY``)."""
    digest = hashlib.md5(f"good_jobs-{job_id}".encode(), usedforsecurity=False).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


_SET_CLAIMED = sql.SQL("""
UPDATE good_jobs AS j
SET locked_by_id = %(process_id)s, locked_at = %(now)s, lock_type = {lock_type},
    performed_at = %(now)s, executions_count = COALESCE(j.executions_count, 0) + 1,
    updated_at = %(now)s
""")
_RETURNING = sql.SQL("""
WHERE j.id = c.id
RETURNING j.id, j.active_job_id, j.job_class, j.queue_name, j.priority, j.serialized_params,
    j.scheduled_at, c.prev_performed_at, j.executions_count, j.cron_key,
    CASE WHEN c.prev_performed_at IS NULL THEN 0 ELSE (
        SELECT count(*) FROM good_job_executions e
        WHERE e.active_job_id = j.active_job_id AND e.error_event = 0) END AS interrupts,
    {locked} AS advisory_locked, j.batch_id, j.batch_callback_id
""")
_CANDIDATES = sql.SQL("""
SELECT id, performed_at AS prev_performed_at
FROM good_jobs
WHERE {where}
ORDER BY {order}
LIMIT %(limit)s
FOR NO KEY UPDATE SKIP LOCKED
""")
_RUNNABLE = sql.SQL("finished_at IS NULL AND locked_by_id IS NULL AND scheduled_at <= %(now)s")
_PLAIN_ORDER = "priority ASC NULLS LAST, scheduled_at ASC"
_FILTERS = {
    "all": "",
    "include": "AND queue_name = ANY(%(queues)s)",
    "exclude": "AND queue_name <> ALL(%(queues)s)",
}
_QUEUE_CONDITIONS = {
    "include": sql.SQL("queue_name = ANY(%(queues)s)"),
    "exclude": sql.SQL("queue_name <> ALL(%(queues)s)"),
}
LOCK_TYPE_HYBRID = 2

# A pool naming its queues reads each queue's runnable rows from the queue index, already in run
# order, so a claim never walks rows of queues it does not serve (issue 15.4). Not left to the
# planner: given ``queue_name = ANY(...)`` and a LIMIT it walks the priority index and filters,
# betting that matching rows are spread evenly through it, and behind a backlog of another queue
# enqueued earlier (so first in priority order) it filters the whole backlog on every claim.
# One queue: plain equality (the subscript keeps the one ``queues`` parameter every claim binds).
_ONE_QUEUE = sql.SQL("queue_name = (%(queues)s::text[])[1]")
# Several: the first LIMIT rows of each queue (a LATERAL index scan each), merged in run order.
# Rows locked in a queue's scan but not kept by the outer LIMIT are only row-locked until the
# claim statement ends; nothing is written to them.
_PER_QUEUE_CANDIDATES = sql.SQL("""
SELECT c.id, c.prev_performed_at
FROM {queues}
CROSS JOIN LATERAL (
    SELECT id, performed_at AS prev_performed_at, priority, scheduled_at
    FROM good_jobs
    WHERE {where} AND queue_name = q.name
    ORDER BY priority ASC NULLS LAST, scheduled_at ASC
    LIMIT %(limit)s
    FOR NO KEY UPDATE SKIP LOCKED
) AS c
ORDER BY {order}c.priority ASC NULLS LAST, c.scheduled_at ASC
LIMIT %(limit)s
""")
_NAMED_QUEUES = sql.SQL("unnest(%(queues)s::text[]) WITH ORDINALITY AS q(name, position)")
# '-excluded': the queues that have unfinished unlocked rows, found by skipping through the queue
# index (one probe per distinct queue), less the excluded ones. A NULL queue_name is never
# claimed by an exclusion (NULL <> ALL(...) is not true), as before.
_OTHER_QUEUES = sql.SQL("""(
    WITH RECURSIVE present(name) AS (
        (SELECT queue_name FROM good_jobs
         WHERE finished_at IS NULL AND locked_by_id IS NULL AND queue_name IS NOT NULL
         ORDER BY queue_name LIMIT 1)
        UNION ALL
        SELECT (SELECT g.queue_name FROM good_jobs g
                WHERE g.finished_at IS NULL AND g.locked_by_id IS NULL
                  AND g.queue_name > present.name
                ORDER BY g.queue_name LIMIT 1)
        FROM present WHERE present.name IS NOT NULL
    )
    SELECT name FROM present WHERE name IS NOT NULL AND name <> ALL(%(queues)s::text[])
) AS q(name)""")


def _candidates_sql(selector: QueueSelector, conditions: Sequence[ClaimCondition]) -> sql.Composed:
    """The rows one claim takes: runnable, of the pool's queues, in run order, row-locked."""
    where: list[sql.Composable] = [_RUNNABLE]
    where.extend(sql.SQL("({})").format(c.sql) for c in conditions)
    per_queue = sql.SQL(" AND ").join(where)
    if selector.kind == "include" and len(selector.names) > 1:
        order = sql.SQL("q.position, " if selector.ordered else "")
        return _PER_QUEUE_CANDIDATES.format(queues=_NAMED_QUEUES, where=per_queue, order=order)
    if selector.kind == "exclude":
        return _PER_QUEUE_CANDIDATES.format(
            queues=_OTHER_QUEUES, where=per_queue, order=sql.SQL("")
        )
    if selector.kind == "include":
        where.insert(1, _ONE_QUEUE)
    return _CANDIDATES.format(where=sql.SQL(" AND ").join(where), order=sql.SQL(_PLAIN_ORDER))


def claim_sql(
    selector: QueueSelector,
    conditions: Sequence[ClaimCondition] = (),
    *,
    advisory_locks: bool = False,
) -> sql.Composed:
    """The claim statement for one pool: runnable rows of its queues that satisfy every feature
    condition, in run order, row-locked with SKIP LOCKED and marked as ours in one statement.

    With ``advisory_locks`` each claimed row also takes GoodJob's per-job session advisory lock
    (as GoodJob's hybrid strategy does): a row whose lock another session holds (a Rails GoodJob
    performing it) is skipped. The lock is taken only on rows this statement row-locked (the
    candidates are materialised first), so a skipped row never leaves a lock behind.
    """
    candidates = _candidates_sql(selector, conditions)
    if not advisory_locks:
        return sql.Composed(
            [
                _SET_CLAIMED.format(lock_type=sql.Literal(LOCK_TYPE_SKIPLOCKED)),
                sql.SQL("FROM ({}) AS c").format(candidates),
                _RETURNING.format(locked=sql.SQL("false")),
            ]
        )
    lock_key = sql.SQL(JOB_LOCK_KEY.format(id="candidate.id"))
    return sql.Composed(
        [
            sql.SQL("WITH candidate AS MATERIALIZED ({}),\n").format(candidates),
            sql.SQL(
                "c AS MATERIALIZED (SELECT * FROM candidate WHERE pg_try_advisory_lock({}))"
            ).format(lock_key),
            _SET_CLAIMED.format(lock_type=sql.Literal(LOCK_TYPE_HYBRID)),
            sql.SQL("FROM c"),
            _RETURNING.format(locked=sql.SQL("true")),
        ]
    )


@dataclass
class ClaimedJob:
    id: uuid.UUID
    active_job_id: uuid.UUID
    job_class: str | None
    queue_name: str
    priority: int | None
    # As the claim read it: JSON text, decoded by ``serialized_params`` on first use (on the
    # thread that performs the job, not by the fetcher for every job of a claim); or the value.
    raw_params: dict[str, Any] | str | None
    scheduled_at: dt.datetime
    prev_performed_at: dt.datetime | None
    executions_count: int
    cron_key: str | None
    interrupts: int
    advisory_locked: bool = False
    batch_id: uuid.UUID | None = None
    batch_callback_id: uuid.UUID | None = None

    @property
    def serialized_params(self) -> Any:
        """The decoded serialized_params (an ``UnreadableJSON`` when they cannot be decoded)."""
        params = self.raw_params
        if isinstance(params, str):
            params = self.raw_params = json_loads(params)
        return params


class ClaimStatement:
    """A pool's composed claim statement and the features whose parameters it binds."""

    def __init__(
        self,
        selector: QueueSelector,
        conditions: Sequence[ClaimCondition] = (),
        *,
        advisory_locks: bool = False,
    ) -> None:
        self.selector = selector
        self.advisory_locks = advisory_locks
        self.sql = claim_sql(selector, conditions, advisory_locks=advisory_locks)
        self._params = tuple(c.params for c in conditions if c.params is not None)

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for params in self._params:
            out.update(params())
        return out


def _claim_cursor(conn: psycopg.Connection) -> psycopg.Cursor:
    """A cursor that reads jsonb as its text: the fetcher only passes serialized_params on."""
    cur = conn.cursor()
    cur.adapters.register_loader("jsonb", TextLoader)
    return cur


def claim_jobs(
    conn: psycopg.Connection,
    selector: QueueSelector,
    process_id: uuid.UUID,
    limit: int,
    *,
    sql_text: sql.Composed | str | None = None,
    now: dt.datetime | None = None,
    statement: ClaimStatement | None = None,
) -> list[ClaimedJob]:
    """Lock up to ``limit`` runnable jobs for this process, in run order."""
    params = {
        "process_id": process_id,
        "now": now or utcnow(),
        "limit": limit,
        "queues": list(selector.names),
    }
    if statement is not None:
        params.update(statement.params())
        sql_text = statement.sql
    # Never prepared: a prepared claim may get a generic plan, which cannot see the LIMIT or the
    # queue names and so may hash-join a scan of all of good_jobs or walk the priority index
    # through a backlog. Planned for its values every time instead, as
    # plan_cache_mode=force_custom_plan would do, but on every connection that claims; parsing
    # it again each time measured ~0.3 ms per claim on a loaded 2-core box.
    rows = _claim_cursor(conn).execute(sql_text or claim_sql(selector), params, prepare=False)
    jobs = [ClaimedJob(*row) for row in rows.fetchall()]
    if selector.ordered:
        position = {name: i for i, name in enumerate(selector.names)}
        jobs.sort(key=lambda j: (position.get(j.queue_name, 0), _prio(j), j.scheduled_at))
    else:
        jobs.sort(key=lambda j: (_prio(j), j.scheduled_at))
    return jobs


_BY_ID = features.ClaimCondition("by id", sql.SQL("id = ANY(%(ids)s)"))


def claim_jobs_by_id(
    conn: psycopg.Connection, ids: Sequence[uuid.UUID], process_id: uuid.UUID
) -> list[ClaimedJob]:
    """Lock these jobs for this process if they are still runnable and due (inline mode
    performs exactly the jobs it enqueued)."""
    selector = QueueSelector("all", ())
    params = {"process_id": process_id, "now": utcnow(), "limit": len(ids), "ids": list(ids)}
    rows = _claim_cursor(conn).execute(claim_sql(selector, [_BY_ID]), params, prepare=False)
    jobs = [ClaimedJob(*row) for row in rows.fetchall()]
    jobs.sort(key=lambda j: (_prio(j), j.scheduled_at))
    return jobs


UNLOCK_JOBS = sql.SQL(
    "SELECT count(*) FILTER (WHERE pg_advisory_unlock({key})) FROM unnest(%(ids)s::uuid[]) AS u(id)"
).format(key=sql.SQL(JOB_LOCK_KEY.format(id="u.id")))


def unlock_jobs(conn: psycopg.Connection, ids: Sequence[uuid.UUID]) -> int:
    """Release this session's advisory locks on ``ids`` (one statement); how many it held."""
    if not ids:
        return 0
    row = conn.execute(UNLOCK_JOBS, {"ids": list(ids)}).fetchone()
    return int(row[0]) if row else 0


# After the session that held the job locks died: take each again (MATERIALIZED, so every id is
# tried exactly once) and say whether the row is still ours to perform. A row that another
# session's lock covers, or that is no longer locked by us or is finished, is not.
RELOCK_JOBS = sql.SQL("""
WITH relocked AS MATERIALIZED (
    SELECT u.id, pg_try_advisory_lock({key}) AS locked FROM unnest(%(ids)s::uuid[]) AS u(id)
)
SELECT r.id, r.locked,
       COALESCE(j.locked_by_id = %(process_id)s AND j.finished_at IS NULL, false) AS ours
FROM relocked r LEFT JOIN good_jobs j ON j.id = r.id
""").format(key=sql.SQL(JOB_LOCK_KEY.format(id="u.id")))


def relock_jobs(
    conn: psycopg.Connection, ids: Sequence[uuid.UUID], process_id: uuid.UUID
) -> list[uuid.UUID]:
    """Re-take GoodJob's lock on ``ids`` on this (new) session; the ids that are NOT ours any
    more. Locks taken on rows that turned out not to be ours are released again."""
    if not ids:
        return []
    rows = conn.execute(RELOCK_JOBS, {"ids": list(ids), "process_id": process_id}).fetchall()
    lost = [job_id for job_id, locked, ours in rows if not (locked and ours)]
    unlock_jobs(conn, [job_id for job_id, locked, ours in rows if locked and not ours])
    return lost


# A good_job_processes row written by something other than goodjob_mp that runs jobs (a Rails
# GoodJob: its schedulers are named GoodJob::Scheduler...). Decides advisory_locks = auto.
FOREIGN_WORKER_SEEN = """
SELECT EXISTS (
    SELECT 1 FROM good_job_processes p,
        jsonb_array_elements(CASE WHEN jsonb_typeof(p.state -> 'schedulers') = 'array'
                                  THEN p.state -> 'schedulers' ELSE '[]'::jsonb END) AS s
    WHERE COALESCE(s ->> 'name', '') NOT LIKE 'goodjob\\_mp.%'
)
"""


def foreign_worker_seen(conn: psycopg.Connection) -> bool:
    row = conn.execute(FOREIGN_WORKER_SEEN).fetchone()
    return bool(row and row[0])


# Classes of runnable jobs in this pool's queues that the known-classes condition skips, so each
# can be reported (and resolved, where its module can be imported) once.
UNKNOWN_CLASSES = sql.SQL("""
SELECT DISTINCT job_class FROM (
    SELECT job_class FROM good_jobs
    WHERE {where} AND (job_class IS NULL OR job_class <> ALL(%(known_classes)s))
    LIMIT 1000
) AS waiting
LIMIT 20
""")


def unknown_job_classes(
    conn: psycopg.Connection, selector: QueueSelector, known: Sequence[str]
) -> list[str | None]:
    where = [_RUNNABLE]
    if selector.kind in _QUEUE_CONDITIONS:
        where.append(_QUEUE_CONDITIONS[selector.kind])
    query = UNKNOWN_CLASSES.format(where=sql.SQL(" AND ").join(where))
    params = {"now": utcnow(), "queues": list(selector.names), "known_classes": list(known)}
    return [row[0] for row in conn.execute(query, params)]


def _prio(job: ClaimedJob) -> float:
    return job.priority if job.priority is not None else float("inf")


# --- finish -----------------------------------------------------------------------------------


@dataclass
class JobResult:
    """What one perform attempt produced, ready to be written (times naive UTC)."""

    id: uuid.UUID
    started_at: dt.datetime
    ended_at: dt.datetime
    finished: bool  # False: retry (row goes back to the queue at retry_at)
    retry_at: dt.datetime | None = None
    error: str | None = None
    error_event: int | None = None
    new_params: dict[str, Any] | None = None
    backtrace: list[str] | None = None
    preserve: bool = True
    had_executions: bool = False  # earlier attempts left execution rows
    outcome: str = "succeeded"
    queue_name: str | None = None  # set on retries: whose listeners to wake at retry_at
    advisory_locked: bool = False  # the claim took GoodJob's job lock: release after writing
    # Copied from the claimed row by execution; write_results corrects them from the row it
    # wrote. The finish hooks (batches) read them.
    batch_id: uuid.UUID | None = None
    batch_callback_id: uuid.UUID | None = None


_RESULTS = """
WITH r AS (
    SELECT * FROM unnest(%(ids)s::uuid[], %(started)s::timestamp[], %(ended)s::timestamp[],
                         %(finished)s::bool[], %(retry_at)s::timestamp[], %(errors)s::text[],
                         %(events)s::smallint[], %(params)s::jsonb[], %(backtraces)s::jsonb[])
        AS r(id, started_at, ended_at, finished, retry_at, error, error_event, new_params,
             backtrace)
), executions AS (
    INSERT INTO good_job_executions (active_job_id, created_at, updated_at, job_class, queue_name,
        serialized_params, scheduled_at, finished_at, error, error_event, error_backtrace,
        process_id, duration)
    SELECT j.active_job_id, r.started_at, r.ended_at, j.job_class, j.queue_name,
        j.serialized_params, j.scheduled_at, r.ended_at, r.error, r.error_event,
        ARRAY(SELECT jsonb_array_elements_text(r.backtrace)), %(process_id)s,
        r.ended_at - r.started_at
    FROM r JOIN good_jobs j ON j.id = r.id
    WHERE j.locked_by_id = %(process_id)s
)
UPDATE good_jobs AS j
SET finished_at = CASE WHEN r.finished THEN r.ended_at END,
    performed_at = CASE WHEN r.finished THEN j.performed_at END,
    scheduled_at = COALESCE(r.retry_at, j.scheduled_at),
    error = r.error, error_event = r.error_event,
    serialized_params = COALESCE(r.new_params, j.serialized_params),
    -- a retry may move to another queue or priority (RetryOn(queue=, priority=))
    queue_name = COALESCE(r.new_params->>'queue_name', j.queue_name),
    priority = COALESCE((r.new_params->>'priority')::integer, j.priority),
    locked_by_id = NULL, locked_at = NULL, lock_type = NULL, updated_at = r.ended_at
FROM r
WHERE j.id = r.id AND j.locked_by_id = %(process_id)s
RETURNING j.id, j.batch_id, j.batch_callback_id
"""


def _notify_retries(conn: psycopg.Connection, results: Sequence[JobResult]) -> None:
    """A retry is an enqueue (as in Active Job): NOTIFY so every process serving its queue
    caches its new start time; delivered only if the results commit."""
    earliest: dict[str, dt.datetime] = {}
    for r in results:
        if r.retry_at is not None and r.queue_name is not None and not r.finished:
            seen = earliest.get(r.queue_name)
            if seen is None or r.retry_at < seen:
                earliest[r.queue_name] = r.retry_at
    for queue_name, retry_at in earliest.items():
        conn.execute(NOTIFY, (NOTIFY_CHANNEL, notify_payload(queue_name, retry_at)))


# The common batch: every attempt succeeded (finished, no error, no retry, params unchanged).
# Same rows as _RESULTS writes for such a batch, from three arrays instead of nine (psycopg
# dumps each array element by element, and six of them would be all NULL), and only the columns
# that change.
_SUCCEEDED = """
WITH r AS (
    SELECT * FROM unnest(%(ids)s::uuid[], %(started)s::timestamp[], %(ended)s::timestamp[])
        AS r(id, started_at, ended_at)
), executions AS (
    INSERT INTO good_job_executions (active_job_id, created_at, updated_at, job_class, queue_name,
        serialized_params, scheduled_at, finished_at, error, error_event, error_backtrace,
        process_id, duration)
    SELECT j.active_job_id, r.started_at, r.ended_at, j.job_class, j.queue_name,
        j.serialized_params, j.scheduled_at, r.ended_at, NULL, NULL, '{}', %(process_id)s,
        r.ended_at - r.started_at
    FROM r JOIN good_jobs j ON j.id = r.id
    WHERE j.locked_by_id = %(process_id)s
)
UPDATE good_jobs AS j
SET finished_at = r.ended_at, error = NULL, error_event = NULL,
    locked_by_id = NULL, locked_at = NULL, lock_type = NULL, updated_at = r.ended_at
FROM r
WHERE j.id = r.id AND j.locked_by_id = %(process_id)s
RETURNING j.id, j.batch_id, j.batch_callback_id
"""


def _all_succeeded(results: Sequence[JobResult]) -> bool:
    for r in results:
        if not r.finished or r.error is not None or r.error_event is not None:
            return False
        if r.new_params is not None or r.backtrace is not None or r.retry_at is not None:
            return False
    return True


# Array literals built here cost the client about a third of what psycopg's element-by-element
# list dumping does: uuids as hex, naive-UTC timestamps in ISO form.
def uuid_array(ids: Iterable[uuid.UUID]) -> str:
    return "{" + ",".join([i.hex for i in ids]) + "}"


def _timestamp_array(values: Iterable[dt.datetime]) -> str:
    return "{" + ",".join([v.isoformat() for v in values]) + "}"


def _results_params(keep: Sequence[JobResult], process_id: uuid.UUID) -> tuple[str, dict]:
    if _all_succeeded(keep):
        return _SUCCEEDED, {
            "ids": uuid_array([r.id for r in keep]),
            "started": _timestamp_array([r.started_at for r in keep]),
            "ended": _timestamp_array([r.ended_at for r in keep]),
            "process_id": process_id,
        }
    return _RESULTS, {
        "ids": [r.id for r in keep],
        "started": [r.started_at for r in keep],
        "ended": [r.ended_at for r in keep],
        "finished": [r.finished for r in keep],
        "retry_at": [r.retry_at for r in keep],
        "errors": [r.error for r in keep],
        "events": [r.error_event for r in keep],
        "params": [None if r.new_params is None else Jsonb(r.new_params, dumps) for r in keep],
        "backtraces": [None if r.backtrace is None else Jsonb(r.backtrace) for r in keep],
        "process_id": process_id,
    }


# Preservation off: the row and any executions of earlier attempts go.
_DELETE_FINISHED = """
WITH gone AS (
    DELETE FROM good_jobs WHERE id = ANY(%(ids)s::uuid[]) AND locked_by_id = %(process_id)s
    RETURNING id, active_job_id, batch_id, batch_callback_id
), history AS (
    DELETE FROM good_job_executions
    WHERE active_job_id = ANY(%(with_history)s::uuid[])
      AND active_job_id IN (SELECT active_job_id FROM gone)
)
SELECT id, batch_id, batch_callback_id FROM gone
"""


def _as_written(
    results: Sequence[JobResult],
    written: dict[uuid.UUID, tuple[uuid.UUID | None, uuid.UUID | None]],
) -> list[JobResult]:
    done = [r for r in results if r.id in written]
    for r in done:
        r.batch_id, r.batch_callback_id = written[r.id]
    return done


def write_results(
    conn: psycopg.Connection, results: Sequence[JobResult], process_id: uuid.UUID
) -> list[JobResult]:
    """Record a batch of attempts: one statement for kept rows, one for deleted rows, and the
    finish hooks of active features, all in one transaction.

    Returns the results that matched no row: their job was no longer locked by this process
    (handed back while we ran it, or taken by another worker), so nothing was recorded for them.
    """
    keep = [r for r in results if r.preserve or not r.finished]
    drop = [r for r in results if not (r.preserve or not r.finished)]
    retries = any(r.retry_at is not None for r in keep)
    # A hook says whether it needs these results (batches: only if one is a batch job): if none
    # does, the write stays the single autocommit statement.
    hooks = bool(features.finish_hooks) and features.finish_wanted(results)
    # One statement in autocommit is atomic by itself: BEGIN/COMMIT would add two round trips
    # to every batch of the hot path.
    single = conn.autocommit and not retries and not (keep and drop) and not hooks
    written: dict[uuid.UUID, tuple[uuid.UUID | None, uuid.UUID | None]] = {}
    with contextlib.nullcontext() if single else conn.transaction():
        if keep:
            cur = conn.execute(*_results_params(keep, process_id))
            written.update((row[0], (row[1], row[2])) for row in cur)
            if retries:
                _notify_retries(conn, keep)
        if drop:
            cur = conn.execute(
                _DELETE_FINISHED,
                {
                    "ids": uuid_array(r.id for r in drop),
                    "with_history": uuid_array(r.id for r in drop if r.had_executions),
                    "process_id": process_id,
                },
            )
            written.update((row[0], (row[1], row[2])) for row in cur)
        if hooks:
            features.after_finish(conn, _as_written(results, written))
    if not hooks and features.finish_hooks:
        # A row that joined a batch after it was claimed (Batch.add of a running job): the claim
        # did not know, so its hook runs now, in a transaction of its own.
        late = [r for r in _as_written(results, written) if r.batch_id or r.batch_callback_id]
        if late and features.finish_wanted(late):
            with conn.transaction():
                features.after_finish(conn, late)
    if len(written) == len(results):
        return []
    return [r for r in results if r.id not in written]


# --- interrupted attempts and hand-back -------------------------------------------------------

RECORD_INTERRUPT = """
INSERT INTO good_job_executions (active_job_id, created_at, updated_at, job_class, queue_name,
    serialized_params, scheduled_at, finished_at, error, error_event, error_backtrace, process_id,
    duration)
SELECT j.active_job_id, %(started_at)s, %(now)s, j.job_class, j.queue_name, j.serialized_params,
    j.scheduled_at, %(now)s, %(error)s, 0, '{}', %(dead_process_id)s, %(now)s - %(started_at)s
FROM good_jobs j WHERE j.id = %(id)s
"""


def record_interrupt(
    conn: psycopg.Connection, job: ClaimedJob, error: str, now: dt.datetime
) -> None:
    """Close the cut-off attempt of an interrupted job as ``InterruptedError`` (event 0)."""
    conn.execute(
        RECORD_INTERRUPT,
        {
            "id": job.id,
            "started_at": job.prev_performed_at,
            "now": now,
            "error": error,
            "dead_process_id": None,
        },
    )


# Claimed but never started: back to the queue as if never claimed (not an interrupt).
RELEASE_UNSTARTED = """
UPDATE good_jobs AS j
SET locked_by_id = NULL, locked_at = NULL, lock_type = NULL, performed_at = r.prev_performed_at,
    executions_count = GREATEST(COALESCE(j.executions_count, 1) - 1, 0), updated_at = %(now)s
FROM unnest(%(ids)s::uuid[], %(prev)s::timestamp[]) AS r(id, prev_performed_at)
WHERE j.id = r.id AND j.locked_by_id = %(process_id)s
"""


def release_unstarted(
    conn: psycopg.Connection, jobs: Iterable[ClaimedJob], process_id: uuid.UUID
) -> int:
    jobs = list(jobs)
    if not jobs:
        return 0
    cur = conn.execute(
        RELEASE_UNSTARTED,
        {
            "ids": [j.id for j in jobs],
            "prev": [j.prev_performed_at for j in jobs],
            "process_id": process_id,
            "now": utcnow(),
        },
    )
    return cur.rowcount


# Jobs locked by processes that are gone: unlock. A job the process had really started keeps
# performed_at, so the next claimer records the cut-off attempt as interrupted; a job it had only
# claimed (buffered, per its start journal) goes back as if never claimed.
HAND_BACK = """
UPDATE good_jobs
SET locked_by_id = NULL, locked_at = NULL, lock_type = NULL, updated_at = %(now)s,
    performed_at = CASE WHEN locked_by_id = ANY(%(journaled)s) AND id <> ALL(%(started)s)
        THEN NULL ELSE performed_at END,
    executions_count = CASE WHEN locked_by_id = ANY(%(journaled)s) AND id <> ALL(%(started)s)
        THEN GREATEST(COALESCE(executions_count, 1) - 1, 0) ELSE executions_count END
WHERE locked_by_id = ANY(%(process_ids)s) AND finished_at IS NULL
RETURNING queue_name
"""


def hand_back_jobs(conn: psycopg.Connection, process_ids: Sequence[uuid.UUID]) -> int:
    """Unlock the unfinished jobs of dead processes and wake the pools that serve their queues
    (an idle pool elsewhere would otherwise wait for its next poll)."""
    if not process_ids:
        return 0
    now = utcnow()
    journaled: list[uuid.UUID] = []
    started: set[uuid.UUID] = set()
    for process_id in process_ids:
        ids = start_journal.read_started(process_id)
        if ids is not None:
            journaled.append(process_id)
            started |= ids
    params = {
        "process_ids": list(process_ids),
        "now": now,
        "journaled": journaled,
        "started": list(started),
    }
    with conn.transaction():
        rows = [r[0] for r in conn.execute(HAND_BACK, params)]
        queues = set(rows)
        # A NULL queue_name is legal in GoodJob's schema: wake every pool for it.
        for queue_name in sorted(q for q in queues if q is not None):
            conn.execute(NOTIFY, (NOTIFY_CHANNEL, notify_payload(queue_name, now)))
        if None in queues:
            conn.execute(NOTIFY, (NOTIFY_CHANNEL, notify_payload(None, now)))
    for process_id in journaled:
        start_journal.remove(process_id)
    return len(rows)


SCHEDULED_TIMES = """
SELECT scheduled_at FROM good_jobs
WHERE finished_at IS NULL AND locked_by_id IS NULL AND scheduled_at > %(now)s {filter}
ORDER BY scheduled_at LIMIT %(limit)s
"""


def upcoming_scheduled_times(
    conn: psycopg.Connection, selector: QueueSelector, limit: int
) -> list[dt.datetime]:
    """Start times of future jobs, for the scheduled-job cache."""
    query = sql.SQL(SCHEDULED_TIMES.format(filter=_FILTERS[selector.kind]))  # noqa: S608
    rows = conn.execute(
        query, {"now": utcnow(), "limit": limit, "queues": list(selector.names)}
    ).fetchall()
    return [row[0] for row in rows]
