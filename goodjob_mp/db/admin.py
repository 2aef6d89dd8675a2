"""Reading and steering jobs from outside the worker: what the dashboard and ``jobs`` commands use.

Owns the dashboard's view of the five GoodJob tables: the job list (filters, GoodJob's state
definitions, keyset pagination that never uses OFFSET), one job with its executions, the
operator actions (retry, discard, reschedule now, destroy) on one job, a list or everything a
filter matches, the process registry as stored, and performance aggregates. Reads every row a
Rails GoodJob wrote as well as ours. Callers own the connection (autocommit); nothing here keeps
one, starts a thread or touches the worker's claim path.

An action never touches a running job (locked by a process, or holding GoodJob's advisory lock
on the row): the worker that runs it owns it until it finishes.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from goodjob_mp.db.job_store import NOTIFY, NOTIFY_CHANNEL, notify_payload, utcnow

# --- states (GoodJob's JobsFilter / Job scopes, as SQL) -----------------------------------------

# ``serialized_params->>'executions'`` as GoodJob reads it (``params_execution_count``): a job is
# "retried" rather than "scheduled" once Active Job has counted more than one execution.
_EXECUTIONS = "COALESCE((serialized_params->>'executions')::integer, 0)"

STATES: dict[str, str] = {
    "scheduled": f"finished_at IS NULL AND scheduled_at > %(now)s AND {_EXECUTIONS} < 2",
    "retried": f"finished_at IS NULL AND scheduled_at > %(now)s AND {_EXECUTIONS} > 1",
    "queued": "performed_at IS NULL AND finished_at IS NULL AND scheduled_at <= %(now)s",
    "running": "performed_at IS NOT NULL AND finished_at IS NULL",
    "succeeded": "finished_at IS NOT NULL AND error IS NULL",
    "discarded": "finished_at IS NOT NULL AND error IS NOT NULL",
}
STATE_NAMES = tuple(STATES)

# One row's state, the same definitions as a CASE (first match wins, as GoodJob's #status).
STATE_OF_ROW = f"""CASE
    WHEN finished_at IS NOT NULL THEN CASE WHEN error IS NULL THEN 'succeeded' ELSE 'discarded' END
    WHEN performed_at IS NOT NULL THEN 'running'
    WHEN scheduled_at > %(now)s THEN CASE WHEN {_EXECUTIONS} > 1 THEN 'retried' ELSE 'scheduled' END
    ELSE 'queued' END"""

# Display order per state (GoodJob's JobsFilter#ordered_by), always with id as the tie-breaker
# so that the (column, id) pair is a total order a keyset cursor can resume from.
ORDER: dict[str | None, tuple[str, str]] = {
    "scheduled": ("scheduled_at", "asc"),
    "retried": ("scheduled_at", "asc"),
    "queued": ("scheduled_at", "asc"),
    "running": ("performed_at", "desc"),
    "succeeded": ("finished_at", "desc"),
    "discarded": ("finished_at", "desc"),
    None: ("created_at", "desc"),
}

# The full-text document GoodJob searches, less the ids (a UUID query is looked up directly);
# capped as GoodJob caps it, below PostgreSQL's tsvector size limit.
SEARCH_DOCUMENT = (
    "(to_tsvector('english', COALESCE(LEFT(serialized_params->>'arguments', 262144), ''))"
    " || to_tsvector('english', COALESCE(LEFT(error, 262144), ''))"
    " || to_tsvector('english', COALESCE(job_class, ''))"
    " || to_tsvector('english', COALESCE(array_to_string(labels, ' '), '')))"
)
UUID_RE = re.compile(r"\A[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}\Z", re.IGNORECASE)

DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 200
# Counts stop here: an exact count of a million rows costs more than the page it labels.
COUNT_LIMIT = 1_000
# A count that takes longer than this is left out ("?"): a filter matching few rows of a large
# table would otherwise scan all of it for every page view.
COUNT_TIMEOUT_MS = 50
# Jobs one page of a text search looks through (tsvector costs ~10 us a row).
SEARCH_WINDOW = 5_000
BULK_BATCH = 1000
DISCARD_ERROR = "GoodJob::Job::DiscardJobError: Discarded manually"


class FilterError(ValueError):
    """A filter value that cannot be used; the message names the field and what is accepted."""


@dataclass(frozen=True)
class JobFilter:
    """What the job list shows. Every field is optional; empty means "any"."""

    state: str | None = None
    queue: str | None = None
    job_class: str | None = None
    label: str | None = None
    priority: int | None = None
    cron_key: str | None = None
    search: str | None = None

    @classmethod
    def from_params(cls, params: Any) -> JobFilter:
        """From query-string-like text values; raises FilterError naming the bad one."""

        def text(name: str) -> str | None:
            value = params.get(name)
            value = value.strip() if isinstance(value, str) else value
            return value or None

        state = text("state")
        if state is not None and state not in STATES:
            raise FilterError(f"state {state!r} is unknown; use one of {', '.join(STATE_NAMES)}")
        priority_text = text("priority")
        try:
            priority = int(priority_text) if priority_text is not None else None
        except ValueError:
            raise FilterError(f"priority {priority_text!r} must be a whole number") from None
        return cls(
            state=state,
            queue=text("queue"),
            job_class=text("job_class"),
            label=text("label"),
            priority=priority,
            cron_key=text("cron_key"),
            search=text("search"),
        )

    def params(self) -> dict[str, str]:
        """The non-empty fields as text, for links that keep the filter."""
        out = {
            "state": self.state,
            "queue": self.queue,
            "job_class": self.job_class,
            "label": self.label,
            "priority": None if self.priority is None else str(self.priority),
            "cron_key": self.cron_key,
            "search": self.search,
        }
        return {k: v for k, v in out.items() if v is not None}


def filter_conditions(
    flt: JobFilter, *, include_state: bool = True, include_search: bool = True
) -> tuple[list[str], dict]:
    """WHERE conditions (bound parameters only) for a filter; pure."""
    conditions: list[str] = []
    params: dict[str, Any] = {"now": None}
    if include_state and flt.state is not None:
        conditions.append(STATES[flt.state])
    if flt.queue is not None:
        conditions.append("queue_name = %(queue)s")
        params["queue"] = flt.queue
    if flt.job_class is not None:
        conditions.append("job_class = %(job_class)s")
        params["job_class"] = flt.job_class
    if flt.label is not None:
        conditions.append("labels @> ARRAY[%(label)s]::text[]")
        params["label"] = flt.label
    if flt.priority is not None:
        conditions.append("priority = %(priority)s")
        params["priority"] = flt.priority
    if flt.cron_key is not None:
        conditions.append("cron_key = %(cron_key)s")
        params["cron_key"] = flt.cron_key
    if flt.search is not None and include_search:
        if UUID_RE.match(flt.search):
            # GoodJob v4 and goodjob_mp write id = active_job_id: the primary key finds both.
            conditions.append("id = %(search_id)s")
            params["search_id"] = uuid.UUID(flt.search)
        else:
            conditions.append(f"{SEARCH_DOCUMENT} @@ websearch_to_tsquery('english', %(search)s)")
            params["search"] = flt.search
    return conditions, params


# --- keyset cursor ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    """Where a page ends: the last row's sort value and id."""

    at: dt.datetime
    id: uuid.UUID

    def encode(self) -> str:
        raw = f"{self.at.isoformat()}|{self.id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            at, ident = raw.split("|", 1)
            return cls(dt.datetime.fromisoformat(at), uuid.UUID(ident))
        except (ValueError, UnicodeDecodeError):
            raise FilterError(f"page cursor {text!r} is not one this dashboard made") from None


def keyset_sql(state: str | None) -> tuple[str, str]:
    """(condition after the cursor, ORDER BY) for a state's display order; pure.

    The redundant bound on the column alone lets an index on that column (without id) stop
    the scan at the cursor; the row comparison then breaks ties by id.
    """
    column, direction = ORDER[state]
    op, bound = (">", ">=") if direction == "asc" else ("<", "<=")
    after = (
        f"{column} {bound} %(after_at)s AND ({column}, id) {op} (%(after_at)s, %(after_id)s::uuid)"
    )
    order = f"{column} {direction.upper()}, id {direction.upper()}"
    return after, order


# --- the job list -----------------------------------------------------------------------------

LIST_COLUMNS = """id, active_job_id, job_class, queue_name, priority, labels, created_at,
    scheduled_at, performed_at, finished_at, error, error_event, executions_count, cron_key,
    batch_id, locked_by_id, serialized_params->'arguments' AS arguments"""


@dataclass
class JobPage:
    rows: list[dict[str, Any]]
    next_cursor: Cursor | None
    order_column: str
    # Text search only: how many jobs this page looked through, and whether it stopped at
    # SEARCH_WINDOW (then ``next_cursor`` continues the search where the window ended).
    searched: int | None = None
    window_full: bool = False


def _is_text_search(flt: JobFilter) -> bool:
    return flt.search is not None and not UUID_RE.match(flt.search)


def list_jobs(
    conn: psycopg.Connection,
    flt: JobFilter = JobFilter(),
    *,
    after: Cursor | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    now: dt.datetime | None = None,
    window: int | None = None,
) -> JobPage:
    """One page of jobs in the state's display order, after ``after`` (keyset, never OFFSET).

    A text search looks through at most ``window`` (SEARCH_WINDOW) jobs past the cursor per
    page, so that a rare word costs one bounded scan, not a tsvector of every row.
    """
    limit = max(1, min(int(limit), MAX_PAGE_SIZE))
    query, params = job_list_sql(flt, with_cursor=after is not None)
    params["now"] = now or utcnow()
    params["limit"] = limit + 1
    params["window"] = window or SEARCH_WINDOW
    column = ORDER[flt.state][0]
    if after is not None:
        params["after_at"] = after.at
        params["after_id"] = after.id
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(query, params).fetchall()
    if not _is_text_search(flt):
        more = len(rows) > limit
        rows = rows[:limit]
        cursor = Cursor(rows[-1][column], rows[-1]["id"]) if more and rows else None
        return JobPage(rows, cursor, column)
    # The window's last row comes back too (marked), so the search can resume after it.
    scanned = rows[0]["scanned"] if rows else 0
    last = next((r for r in rows if r["is_last"]), None)
    hits = [r for r in rows if r["hit"]]
    window_full = scanned >= params["window"]
    if len(hits) > limit:
        shown = hits[:limit]
        cursor = Cursor(shown[-1][column], shown[-1]["id"])
    else:
        shown = hits
        cursor = Cursor(last[column], last["id"]) if window_full and last is not None else None
    for row in shown:
        for key in ("hit", "is_last", "scanned", "rn"):
            row.pop(key, None)
    return JobPage(shown, cursor, column, searched=scanned, window_full=window_full)


def job_list_sql(flt: JobFilter, *, with_cursor: bool) -> tuple[str, dict[str, Any]]:
    """The job list statement (``list_jobs`` runs it; the benchmark EXPLAINs it)."""
    conditions, params = filter_conditions(flt, include_search=False)
    after_sql, order_sql = keyset_sql(flt.state)
    if with_cursor:
        conditions.append(after_sql)
    where = " AND ".join(conditions) or "TRUE"
    if not _is_text_search(flt):
        search_conditions, search_params = filter_conditions(
            JobFilter(search=flt.search), include_state=False
        )
        params.update(search_params)
        where = " AND ".join([*conditions, *search_conditions]) or "TRUE"
        query = (
            f"SELECT {LIST_COLUMNS}, {STATE_OF_ROW} AS state FROM good_jobs WHERE {where} "
            f"ORDER BY {order_sql} LIMIT %(limit)s"
        )
        return query, params
    params["search"] = flt.search
    query = f"""
WITH w AS (
    SELECT {LIST_COLUMNS}, {STATE_OF_ROW} AS state,
        {SEARCH_DOCUMENT} @@ websearch_to_tsquery('english', %(search)s) AS hit
    FROM good_jobs WHERE {where} ORDER BY {order_sql} LIMIT %(window)s
), n AS (
    SELECT w.*, row_number() OVER (ORDER BY {order_sql}) AS rn,
        count(*) OVER () AS scanned
    FROM w
)
SELECT n.*, rn = scanned AS is_last FROM n WHERE hit OR rn = scanned
ORDER BY {order_sql} LIMIT %(limit)s + 1"""
    return query, params


@dataclass(frozen=True)
class Count:
    value: int | None  # None: not counted (a text search, or the count ran out of time)
    capped: bool = False  # True: there are at least ``value`` (the count stopped at the cap)

    def __str__(self) -> str:
        if self.value is None:
            return "?"
        return f"{self.value:,}+" if self.capped else f"{self.value:,}"


def state_counts(
    conn: psycopg.Connection,
    flt: JobFilter = JobFilter(),
    *,
    now: dt.datetime | None = None,
    limit: int = COUNT_LIMIT,
    timeout_ms: int = COUNT_TIMEOUT_MS,
) -> dict[str, Count]:
    """Jobs in each state under the filter's other fields, each count capped at ``limit`` and
    given ``timeout_ms``; a text search is not counted (it would scan every row)."""
    if _is_text_search(flt):
        return {state: Count(None) for state in STATES}
    conditions, params = filter_conditions(flt, include_state=False)
    params["now"] = now or utcnow()
    params["cap"] = limit + 1
    counts: dict[str, Count] = {}
    with conn.transaction():
        conn.execute(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
        for state, condition in STATES.items():
            where = " AND ".join([*conditions, condition])
            query = f"SELECT count(*) FROM (SELECT 1 FROM good_jobs WHERE {where} LIMIT %(cap)s) s"
            try:
                with conn.transaction():
                    row = conn.execute(query, params).fetchone()
                n = row[0] if row else 0
            except psycopg.errors.QueryCanceled:
                counts[state] = Count(None)
                continue
            counts[state] = Count(min(n, limit), n > limit)
    return counts


# --- one job ----------------------------------------------------------------------------------

_JOB = f"SELECT *, {STATE_OF_ROW} AS state FROM good_jobs WHERE id = %(id)s"
_EXECUTIONS_OF = """
SELECT id, created_at, updated_at, job_class, queue_name, scheduled_at, finished_at, error,
    error_event, error_backtrace, process_id, duration,
    serialized_params->'executions' AS executions
FROM good_job_executions WHERE active_job_id = %(active_job_id)s ORDER BY created_at, id
"""


@dataclass
class JobDetail:
    job: dict[str, Any]
    executions: list[dict[str, Any]] = field(default_factory=list)


def find_job(
    conn: psycopg.Connection, job_id: uuid.UUID, *, now: dt.datetime | None = None
) -> JobDetail | None:
    """A job and every execution of it (oldest first), or None."""
    with conn.cursor(row_factory=dict_row) as cur:
        job = cur.execute(_JOB, {"id": job_id, "now": now or utcnow()}).fetchone()
        if job is None:
            return None
        active_job_id = job["active_job_id"] or job["id"]
        executions = cur.execute(_EXECUTIONS_OF, {"active_job_id": active_job_id}).fetchall()
    return JobDetail(job, executions)


def _advisory_lock_held(key_text_sql: str) -> str:
    """SQL: some session of this database holds GoodJob's advisory lock for the record whose
    lock text is ``key_text_sql`` (``'<table>-<id>'``; the key is the first 64 bits of its md5,
    as GoodJob's AdvisoryLockable makes it). pg_locks lists every database, hence the filter."""
    return f"""EXISTS (
    SELECT 1 FROM pg_locks l
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND ((l.classid::bigint << 32) | l.objid::bigint) = (
        ('x' || substr(md5({key_text_sql}), 1, 16))::bit(64)::bigint))"""


# --- actions ----------------------------------------------------------------------------------

# Not running: no process has it locked, and no session holds GoodJob's advisory lock on the
# row (a Rails GoodJob in advisory mode locks rows that way; key as GoodJob's Lockable makes it).
_JOB_LOCK_HELD = _advisory_lock_held("'good_jobs-' || good_jobs.id::text")
_NOT_RUNNING = f"locked_by_id IS NULL AND NOT {_JOB_LOCK_HELD}"

# Retry a discarded job as GoodJob's Job#retry_job does: the same row goes back to the queue to
# run now, Active Job's execution count goes up by one, the old error stays until the next run.
RETRY = f"""
UPDATE good_jobs SET
    finished_at = NULL, performed_at = NULL, scheduled_at = %(now)s, error_event = 3,
    serialized_params = jsonb_set(COALESCE(serialized_params, '{{}}'::jsonb), '{{executions}}',
        to_jsonb({_EXECUTIONS} + 1)),
    updated_at = %(now)s
WHERE id = ANY(%(ids)s) AND finished_at IS NOT NULL AND error IS NOT NULL AND {_NOT_RUNNING}
RETURNING id, queue_name
"""
# Discard an unfinished job (GoodJob's Job#discard_job): finished, with an error, never run.
DISCARD = f"""
UPDATE good_jobs SET finished_at = %(now)s, error = %(error)s, error_event = 5, updated_at = %(now)s
WHERE id = ANY(%(ids)s) AND finished_at IS NULL AND {_NOT_RUNNING}
RETURNING id, queue_name
"""
# Run an unfinished, waiting job now (GoodJob's Job#reschedule_job).
RESCHEDULE = f"""
UPDATE good_jobs SET scheduled_at = %(now)s, updated_at = %(now)s
WHERE id = ANY(%(ids)s) AND finished_at IS NULL AND performed_at IS NULL AND {_NOT_RUNNING}
RETURNING id, queue_name
"""
# Destroy a finished job and its executions (GoodJob's Job#destroy_job).
DESTROY = f"""
WITH gone AS (
    DELETE FROM good_jobs WHERE id = ANY(%(ids)s) AND finished_at IS NOT NULL AND {_NOT_RUNNING}
    RETURNING id, active_job_id, queue_name
), executions AS (
    DELETE FROM good_job_executions
    WHERE active_job_id IN (SELECT COALESCE(active_job_id, id) FROM gone)
)
SELECT id, queue_name FROM gone
"""
ACTIONS: dict[str, str] = {
    "retry": RETRY,
    "discard": DISCARD,
    "reschedule": RESCHEDULE,
    "destroy": DESTROY,
}
# Which jobs each action can apply to, for the buttons a page shows.
ACTION_STATES: dict[str, frozenset[str]] = {
    "retry": frozenset({"discarded"}),
    "discard": frozenset({"scheduled", "retried", "queued"}),
    "reschedule": frozenset({"scheduled", "retried", "queued"}),
    "destroy": frozenset({"succeeded", "discarded"}),
}


def allowed_actions(state: str, running: bool = False) -> list[str]:
    """The actions a job in ``state`` accepts; pure."""
    if running:
        return []
    return [name for name, states in ACTION_STATES.items() if state in states]


def apply_action(
    conn: psycopg.Connection,
    action: str,
    ids: Iterable[uuid.UUID],
    *,
    now: dt.datetime | None = None,
) -> list[uuid.UUID]:
    """Apply ``action`` to the listed jobs it fits; return the ids it changed.

    One transaction: the change and the NOTIFY that wakes the pools serving the jobs' queues
    (retry and reschedule make work runnable now) commit together.
    """
    if action not in ACTIONS:
        raise FilterError(f"action {action!r} is unknown; use one of {', '.join(ACTIONS)}")
    ids = list(ids)
    if not ids:
        return []
    now = now or utcnow()
    params = {"ids": ids, "now": now, "error": DISCARD_ERROR}
    with conn.transaction():
        rows = conn.execute(ACTIONS[action], params).fetchall()
        if action in ("retry", "reschedule"):
            for queue_name in sorted({q for _, q in rows if q is not None}):
                conn.execute(NOTIFY, (NOTIFY_CHANNEL, notify_payload(queue_name, now)))
    return [row[0] for row in rows]


def apply_action_to_filter(
    conn: psycopg.Connection,
    action: str,
    flt: JobFilter,
    *,
    now: dt.datetime | None = None,
    batch: int = BULK_BATCH,
) -> int:
    """Apply ``action`` to every job the filter matches, in id order, ``batch`` per
    transaction (a million-row action never holds one long lock); return how many changed."""
    now = now or utcnow()
    conditions, params = filter_conditions(flt)
    params["now"] = now
    params["batch"] = batch
    changed = 0
    last: uuid.UUID | None = None
    while True:
        where = list(conditions)
        if last is not None:
            where.append("id > %(last)s")
            params["last"] = last
        query = (
            f"SELECT id FROM good_jobs WHERE {' AND '.join(where) or 'TRUE'} "
            "ORDER BY id LIMIT %(batch)s"
        )
        ids = [row[0] for row in conn.execute(query, params)]
        if not ids:
            return changed
        changed += len(apply_action(conn, action, ids, now=now))
        last = ids[-1]
        if len(ids) < batch:
            return changed


# --- processes --------------------------------------------------------------------------------

_PROCESSES = f"""
SELECT p.id, p.created_at, p.updated_at, p.state, p.lock_type,
    {_advisory_lock_held("'good_job_processes-' || p.id::text")} AS locked,
    (SELECT count(*) FROM good_jobs j WHERE j.locked_by_id = p.id AND j.finished_at IS NULL)
        AS locked_jobs
FROM good_job_processes p ORDER BY p.created_at
"""


@dataclass
class ProcessView:
    id: uuid.UUID
    created_at: dt.datetime
    heartbeat_at: dt.datetime
    state: dict[str, Any]
    locked: bool
    locked_jobs: int
    alive: bool

    @property
    def hostname(self) -> str | None:
        return self.state.get("hostname")

    @property
    def pid(self) -> int | None:
        return self.state.get("pid")

    @property
    def memory_kb(self) -> int | None:
        memory = self.state.get("memory")
        return memory if isinstance(memory, int) else None

    @property
    def pools(self) -> list[dict[str, Any]]:
        schedulers = self.state.get("schedulers")
        if not isinstance(schedulers, list):
            return []
        return [s for s in schedulers if isinstance(s, dict)]

    @property
    def threads_busy(self) -> int:
        return sum(int(p.get("active_threads") or 0) for p in self.pools)

    @property
    def threads_total(self) -> int:
        return sum(int(p.get("max_threads") or 0) for p in self.pools)


def list_processes(
    conn: psycopg.Connection,
    *,
    dead_process_timeout: float | None = None,
    now: dt.datetime | None = None,
) -> list[ProcessView]:
    """Every registered process with its stored state; alive or not by the rule the sweep
    uses (``goodjob_mp.db.processes.is_dead``: each row judged by its writer's own rule)."""
    from goodjob_mp.config import current_settings
    from goodjob_mp.db import processes

    if dead_process_timeout is None:
        dead_process_timeout = current_settings().dead_process_timeout
    now = now or utcnow()
    out = []
    for ident, created, updated, state, lock_type, locked, locked_jobs in conn.execute(_PROCESSES):
        judged = processes.ProcessRow(ident, lock_type, updated, locked)
        alive = not processes.is_dead(judged, now, dead_process_timeout)
        state = state if isinstance(state, dict) else {}
        out.append(ProcessView(ident, created, updated, state, locked, locked_jobs, alive))
    return out


# --- performance ------------------------------------------------------------------------------

# Executions finished in the window, per minute and per (class, queue): the throughput chart.
_PER_MINUTE = """
SELECT date_trunc('minute', finished_at) AS minute, job_class, queue_name, count(*) AS n
FROM good_job_executions
WHERE finished_at >= %(since)s AND finished_at IS NOT NULL
GROUP BY 1, 2, 3 ORDER BY 1
"""
_DURATIONS = """
SELECT job_class, queue_name, count(*) AS n,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM duration)) AS p50,
    percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM duration)) AS p95,
    count(*) FILTER (WHERE error IS NOT NULL) AS errors
FROM good_job_executions
WHERE finished_at >= %(since)s AND duration IS NOT NULL
GROUP BY 1, 2 ORDER BY n DESC, job_class, queue_name
"""


@dataclass
class Performance:
    since: dt.datetime
    minutes: list[dt.datetime]
    # (job_class, queue_name) -> executions finished in each minute of ``minutes``
    series: dict[tuple[str, str], list[int]]
    durations: list[dict[str, Any]]


def performance(
    conn: psycopg.Connection, *, minutes: int = 60, now: dt.datetime | None = None
) -> Performance:
    """Throughput per minute by (class, queue) and duration p50/p95 over the last ``minutes``."""
    now = now or utcnow()
    end = now.replace(second=0, microsecond=0)
    since = end - dt.timedelta(minutes=minutes - 1)
    buckets = [since + dt.timedelta(minutes=i) for i in range(minutes)]
    index = {b: i for i, b in enumerate(buckets)}
    series: dict[tuple[str, str], list[int]] = {}
    for minute, job_class, queue_name, n in conn.execute(_PER_MINUTE, {"since": since}):
        key = (job_class or "?", queue_name or "?")
        line = series.setdefault(key, [0] * minutes)
        if minute in index:
            line[index[minute]] += n
    with conn.cursor(row_factory=dict_row) as cur:
        durations = cur.execute(_DURATIONS, {"since": since}).fetchall()
    return Performance(since, buckets, series, durations)


# --- small helpers for callers ----------------------------------------------------------------


def parse_ids(values: Sequence[str]) -> list[uuid.UUID]:
    """Job ids from text; raises FilterError naming the first one that is not a UUID."""
    ids = []
    for value in values:
        try:
            ids.append(uuid.UUID(str(value).strip()))
        except ValueError:
            raise FilterError(f"job id {value!r} is not a UUID") from None
    return ids


def with_state(flt: JobFilter, state: str | None) -> JobFilter:
    return replace(flt, state=state)


def explain(conn: psycopg.Connection, query: str | sql.Composable, params: dict) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) text of a statement, for the benchmark."""
    rows = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS) {query}", params).fetchall()
    return "\n".join(row[0] for row in rows)


# --- cron entries -----------------------------------------------------------------------------


@dataclass
class CronRow:
    key: str
    schedule: str
    timezone: str
    job_class: str
    description: str | None
    enabled: bool
    next_at: dt.datetime | None  # aware UTC; None when disabled or the schedule has no next
    last_run: Any  # goodjob_mp.cron.LastRun or None
    problem: str | None = None  # the schedule callable failed


def cron_states(
    conn: psycopg.Connection, entries: Any, *, now: dt.datetime | None = None
) -> list[CronRow]:
    """Each configured entry with its switch, next run and last run: ``goodjob_mp.cron``'s
    reading of ``good_job_settings`` and ``good_jobs``, as the ``cron list`` command shows."""
    from goodjob_mp import cron as cron_mod

    now_aware = (now or utcnow()).replace(tzinfo=dt.timezone.utc)
    enabled, disabled = cron_mod.read_switches(conn)
    runs = cron_mod.last_runs(conn, list(entries))
    out = []
    for key, entry in entries.items():
        on = cron_mod.is_enabled(entry, enabled, disabled)
        next_at, problem = None, None
        if on:
            try:
                next_at = entry.next_after(now_aware)
            except Exception as exc:  # a user's schedule callable
                problem = f"schedule failed: {exc}"
        out.append(
            CronRow(
                key=key,
                schedule=entry.schedule.describe(),
                timezone=entry.timezone,
                job_class=entry.job_class.job_class_name or entry.job_class.__qualname__,
                description=entry.description,
                enabled=on,
                next_at=next_at,
                last_run=runs.get(key),
                problem=problem,
            )
        )
    return out
