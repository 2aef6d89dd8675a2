"""Cron: recurring jobs, their schedules, their on/off switches and the leader that enqueues them.

Owns the cron entry format (parsing and validation into ``CronEntry``), schedule math in each
entry's own timezone (pure, clock injected), the ``cron_keys_enabled`` / ``cron_keys_disabled``
rows of ``good_job_settings`` (GoodJob's format) and ``CronScheduler``, the leader that enqueues
due runs from inside the supervisor's loop. Never starts a thread or sleeps: the supervisor calls
``tick()`` and asks ``next_wakeup()``. Never treats a unique violation on ``(cron_key, cron_at)``
as an error: it means another leader already enqueued that run.

Fork safety: the scheduler opens its connection lazily in ``tick()``, and the supervisor calls
``before_fork()`` before it forks: the lock is released and the connection closed, so no child
inherits it; the next ``tick()`` takes the lock again and resumes where it stopped (runs that
fell due in between are enqueued, the unique index drops any another leader took meanwhile).
Were a child ever to inherit the connection, it must drop it, never close it (closing would end
the leader's session); children never touch the scheduler and leave with ``os._exit``.

DST rules (schedules are wall-clock times in the entry's timezone):
- a wall time skipped by a spring-forward gap runs at the instant it would have had with the
  offset before the gap (``30 2 * * *`` runs at 03:30 new time), once;
- a wall time repeated by a fall-back runs once, at its first occurrence, unless the entry fires
  every hour (hour field ``*``), which then also runs in the repeated hour: an hourly job runs
  25 times that day and a daily job once.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg
from croniter import CroniterError, croniter
from psycopg.types.json import Jsonb

from goodjob_mp import events
from goodjob_mp.config import Settings
from goodjob_mp.db import connection
from goodjob_mp.jobs import Job, UnknownJobClassError, _make_options, lookup

log = logging.getLogger("goodjob_mp.cron")

UTC = dt.timezone.utc
ENTRY_KEYS = frozenset(
    {"cron", "class", "args", "kwargs", "set", "description", "enabled_by_default", "timezone"}
)
SET_KEYS = frozenset({"queue", "priority", "wait", "wait_until", "labels"})
SETTING_ENABLED = "cron_keys_enabled"
SETTING_DISABLED = "cron_keys_disabled"
# "job_cron": one session advisory lock for the whole database; its holder is the cron leader.
LEADER_LOCK_KEY = 0x6A6F625F63726F6E
# A non-leader retries the lock this often; a leader checks its connection this often.
RETRY_INTERVAL = 1.0
HEALTH_INTERVAL = 5.0
# After before_fork(), the same process resumes from its own cursor if it leads again this soon.
RESUME_LIMIT = 60.0
# Bounds for loops over runs (a schedule that fires every second over a long window).
MAX_RUNS = 100_000
# Offset changes are looked for this far around a run.
_NEAR = dt.timedelta(hours=3)


class CronConfigError(ValueError):
    """A cron entry cannot work; the message names the entry, the part and the fix."""


# --- schedules (pure) -------------------------------------------------------------------------


def _as_utc(value: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    """Aware UTC; a naive value is a wall-clock time in ``tz``."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value.astimezone(UTC)


@dataclass(frozen=True)
class CronSchedule:
    """A cron expression evaluated on wall-clock time in ``tz``.

    5 fields, 6 fields with seconds first (as GoodJob/fugit read them) or ``@hourly``-style.
    """

    expression: str
    tz: dt.tzinfo = UTC

    def __post_init__(self) -> None:
        # Raises CroniterError (a ValueError) for a bad expression.
        fields = self._croniter(dt.datetime(2000, 1, 1)).expanded
        object.__setattr__(self, "_every_hour", fields[1] == ["*"])

    def _croniter(self, start: dt.datetime) -> croniter:
        six = len(self.expression.split()) == 6
        return croniter(self.expression, start, second_at_beginning=six)

    def _instants(self, wall: dt.datetime) -> list[dt.datetime]:
        """The UTC instants of one naive wall time: one, or two in a repeated hour (see DST)."""
        first = wall.replace(tzinfo=self.tz, fold=0).astimezone(UTC)
        second = wall.replace(tzinfo=self.tz, fold=1).astimezone(UTC)
        if second == first:
            return [first]
        gap = first > second  # fold=0 of a skipped time lies after fold=1 of it
        if gap or not self._every_hour:  # type: ignore[attr-defined]
            return [first]
        return [first, second]

    def next_after(self, after: dt.datetime) -> dt.datetime | None:
        """The first run strictly after ``after`` (aware), as aware UTC."""
        after = after.astimezone(UTC)
        wall = after.astimezone(self.tz).replace(tzinfo=None)
        first = self._scan(after, wall, None)
        if first is None:
            return None
        # Wall time maps to instants in order except near an offset change (a skipped or repeated
        # hour): only there look back and ahead by the size of the change.
        offsets = {
            (moment).astimezone(self.tz).utcoffset()
            for moment in (after - _NEAR, after, first[0], first[0] + _NEAR)
        }
        if len(offsets) == 1:
            return first[0]
        shift = max(offsets) - min(offsets)  # type: ignore[type-var,operator]
        best = self._scan(after, wall - shift - dt.timedelta(seconds=1), shift)
        return best[0] if best is not None else None

    def _scan(
        self, after: dt.datetime, wall_start: dt.datetime, margin: dt.timedelta | None
    ) -> tuple[dt.datetime, dt.datetime] | None:
        """(instant, wall) of the earliest run after ``after`` among walls from ``wall_start``;
        without ``margin``, the first one found; with it, the best up to ``margin`` past that."""
        it = self._croniter(wall_start)
        best: tuple[dt.datetime, dt.datetime] | None = None
        for _ in range(MAX_RUNS):
            try:
                wall = it.get_next(dt.datetime)
            except CroniterError:
                return best
            if best is not None and (margin is None or wall > best[1] + margin):
                return best
            for instant in self._instants(wall):
                if instant > after and (best is None or instant < best[0]):
                    best = (instant, wall)
        return best

    def describe(self) -> str:
        return self.expression


@dataclass(frozen=True)
class CallableSchedule:
    """``fn(last_ran) -> datetime``: ``last_ran`` is aware UTC or None; a naive result is in tz."""

    fn: Callable[[dt.datetime | None], dt.datetime | None]
    tz: dt.tzinfo = UTC

    def next_after(self, after: dt.datetime | None) -> dt.datetime | None:
        result = self.fn(after)
        if result is None:
            return None
        if not isinstance(result, dt.datetime):
            raise TypeError(f"cron callable returned {result!r}; it must return a datetime")
        result = _as_utc(result, self.tz)
        # A run must move time forward, or a catch-up loop would never end.
        return result if after is None or result > after else None

    def describe(self) -> str:
        return f"<callable {getattr(self.fn, '__qualname__', repr(self.fn))}>"


Schedule = CronSchedule | CallableSchedule


def runs_between(
    schedule: Schedule, start: dt.datetime, end: dt.datetime, *, limit: int = MAX_RUNS
) -> list[dt.datetime]:
    """Runs in ``(start, end]`` (aware datetimes), oldest first, at most ``limit``."""
    runs: list[dt.datetime] = []
    current = schedule.next_after(start)
    while current is not None and current <= end and len(runs) < limit:
        runs.append(current)
        current = schedule.next_after(current)
    return runs


@dataclass(frozen=True)
class CatchUp:
    """On becoming leader: which runs to enqueue now and which were missed for good."""

    enqueue: list[dt.datetime]
    skipped: list[dt.datetime]


def catch_up(
    schedule: Schedule,
    now: dt.datetime,
    graceful_period: float | None,
    last_enqueued: dt.datetime | None = None,
) -> CatchUp:
    """Runs to enqueue when leadership starts at ``now``.

    Runs inside ``graceful_period`` seconds before ``now`` are enqueued (the unique index drops
    those already there). Runs after ``last_enqueued`` (the entry's latest ``cron_at`` in the
    database) but before that window were missed: they are reported, never enqueued.
    """
    window_start = now - dt.timedelta(seconds=graceful_period or 0)
    enqueue = runs_between(schedule, window_start, now) if graceful_period else []
    skipped: list[dt.datetime] = []
    if last_enqueued is not None and last_enqueued < window_start:
        skipped = runs_between(schedule, last_enqueued, window_start, limit=1000)
    if not graceful_period:
        # The run due exactly now is not missed: it is this tick's.
        skipped = [run for run in skipped if run < now]
    return CatchUp(enqueue, skipped)


# --- entries ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CronEntry:
    key: str
    schedule: Schedule
    job_class: type[Job]
    args: Any = ()
    kwargs: Any = field(default_factory=dict)
    set: Any = field(default_factory=dict)
    description: str | None = None
    enabled_by_default: bool = True
    timezone: str = "UTC"

    def next_after(self, after: dt.datetime) -> dt.datetime | None:
        return self.schedule.next_after(after)

    def resolved_args(self) -> tuple[list[Any], dict[str, Any], dict[str, Any]]:
        """args, kwargs and set options, calling whichever are callables (at every enqueue)."""

        def value(v: Any) -> Any:
            return v() if callable(v) else v

        return (
            list(value(self.args) or []),
            dict(value(self.kwargs) or {}),
            dict(value(self.set) or {}),
        )


def _resolve_job_class(key: str, value: Any) -> type[Job]:
    if isinstance(value, type) and issubclass(value, Job):
        return value
    if isinstance(getattr(value, "job_class", None), type):  # a @job function
        return value.job_class
    if isinstance(value, str):
        try:
            return lookup(value)
        except UnknownJobClassError as exc:
            raise CronConfigError(f"cron entry {key!r}: class {value!r}: {exc}") from None
    raise CronConfigError(
        f"cron entry {key!r}: class {value!r} is not a job; use a Job subclass, a @job function "
        "or its job_class name"
    )


def _parse_timezone(key: str, value: Any) -> tuple[str, dt.tzinfo]:
    if value is None:
        return "UTC", UTC
    if isinstance(value, str):
        try:
            return value, ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    raise CronConfigError(
        f"cron entry {key!r}: timezone {value!r} is not a known IANA timezone; "
        "use a name like 'UTC' or 'Europe/Paris'"
    )


def _parse_schedule(key: str, value: Any, tz: dt.tzinfo) -> Schedule:
    if callable(value):
        return CallableSchedule(value, tz)
    if not isinstance(value, str) or not value.strip():
        raise CronConfigError(
            f"cron entry {key!r}: cron {value!r} must be a cron expression string or a callable "
            "(last_ran) -> datetime"
        )
    try:
        return CronSchedule(value.strip(), tz)
    except (CroniterError, ValueError, KeyError) as exc:
        raise CronConfigError(
            f"cron entry {key!r}: cron {value!r} is not a valid expression ({exc}); use 5 fields "
            "'min hour day month weekday', 6 with seconds first, or @hourly/@daily/@weekly/"
            "@monthly/@yearly"
        ) from None


def _check_value(key: str, name: str, value: Any, kind: type | tuple[type, ...], what: str) -> None:
    if not (callable(value) or isinstance(value, kind)):
        raise CronConfigError(
            f"cron entry {key!r}: {name} {value!r} must be {what} or a callable returning one"
        )


def parse_entry(key: Any, raw: Any) -> CronEntry:
    """One validated entry; raises CronConfigError naming the entry and the problem."""
    if not isinstance(key, str) or not key.strip():
        raise CronConfigError(f"cron key {key!r} must be a non-empty string")
    if not isinstance(raw, Mapping):
        raise CronConfigError(f"cron entry {key!r} must be a mapping, got {raw!r}")
    unknown = sorted(set(raw) - ENTRY_KEYS)
    if unknown:
        raise CronConfigError(
            f"cron entry {key!r}: unknown key(s) {', '.join(map(repr, unknown))}; "
            f"known keys: {', '.join(sorted(ENTRY_KEYS))}"
        )
    for required in ("cron", "class"):
        if required not in raw:
            raise CronConfigError(f"cron entry {key!r}: missing {required!r}")
    tz_name, tz = _parse_timezone(key, raw.get("timezone"))
    schedule = _parse_schedule(key, raw["cron"], tz)
    job_class = _resolve_job_class(key, raw["class"])
    args = raw.get("args", ())
    kwargs = raw.get("kwargs", {})
    set_options = raw.get("set", {})
    _check_value(key, "args", args, (list, tuple), "a list")
    _check_value(key, "kwargs", kwargs, Mapping, "a mapping")
    _check_value(key, "set", set_options, Mapping, "a mapping")
    if isinstance(set_options, Mapping):
        _check_set(key, set_options)
    description = raw.get("description")
    if description is not None and not isinstance(description, str):
        raise CronConfigError(f"cron entry {key!r}: description {description!r} must be a string")
    enabled = raw.get("enabled_by_default", True)
    if not isinstance(enabled, bool):
        raise CronConfigError(
            f"cron entry {key!r}: enabled_by_default {enabled!r} must be true or false"
        )
    return CronEntry(
        key, schedule, job_class, args, kwargs, set_options, description, enabled, tz_name
    )


def _check_set(key: str, options: Mapping[str, Any]) -> None:
    unknown = sorted(set(options) - SET_KEYS)
    if unknown:
        raise CronConfigError(
            f"cron entry {key!r}: set has unknown option(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(sorted(SET_KEYS))}"
        )
    try:
        _make_options(**options)
    except (TypeError, ValueError) as exc:
        raise CronConfigError(f"cron entry {key!r}: set {dict(options)!r}: {exc}") from None


def parse_entries(raw: Mapping[str, Any]) -> dict[str, CronEntry]:
    if not isinstance(raw, Mapping):
        raise CronConfigError(f"cron must be a mapping of cron key -> entry, got {raw!r}")
    return {key: parse_entry(key, value) for key, value in raw.items()}


def validate_cron_entries(settings: Settings) -> dict[str, CronEntry]:
    """Start-up check (after the app is imported, so job classes resolve)."""
    return parse_entries(settings.cron)


def enqueue_options(entry: CronEntry) -> tuple[list[Any], dict[str, Any], Any]:
    args, kwargs, set_options = entry.resolved_args()
    return args, kwargs, _make_options(**set_options)


# --- enabled / disabled (good_job_settings) ---------------------------------------------------


def is_enabled(entry: CronEntry, enabled_keys: Iterable[str], disabled_keys: Iterable[str]) -> bool:
    """GoodJob's rule: on by default unless disabled, or explicitly enabled."""
    if entry.key in set(enabled_keys):
        return True
    return entry.enabled_by_default and entry.key not in set(disabled_keys)


_READ_SWITCHES = "SELECT key, value FROM good_job_settings WHERE key IN (%s, %s)"


def read_switches(conn: psycopg.Connection) -> tuple[set[str], set[str]]:
    """(enabled keys, disabled keys) as stored in good_job_settings."""
    rows = conn.execute(_READ_SWITCHES, (SETTING_ENABLED, SETTING_DISABLED)).fetchall()
    values = {key: value for key, value in rows}

    def keys(name: str) -> set[str]:
        value = values.get(name)
        return {str(v) for v in value} if isinstance(value, list) else set()

    return keys(SETTING_ENABLED), keys(SETTING_DISABLED)


_ADD_KEY = """
INSERT INTO good_job_settings (key, value, created_at, updated_at)
VALUES (%(setting)s, %(array)s, now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC')
ON CONFLICT (key) DO UPDATE SET
    value = CASE
        WHEN jsonb_typeof(good_job_settings.value) <> 'array' THEN EXCLUDED.value
        WHEN good_job_settings.value ? %(cron_key)s THEN good_job_settings.value
        ELSE good_job_settings.value || EXCLUDED.value END,
    updated_at = EXCLUDED.updated_at
"""
_REMOVE_KEY = """
UPDATE good_job_settings SET value = value - %(cron_key)s, updated_at = now() AT TIME ZONE 'UTC'
WHERE key = %(setting)s AND jsonb_typeof(value) = 'array' AND value ? %(cron_key)s
"""


def set_enabled(conn: psycopg.Connection, key: str, enabled: bool) -> None:
    """Switch an entry on or off for every supervisor (one transaction)."""
    add, remove = (
        (SETTING_ENABLED, SETTING_DISABLED) if enabled else (SETTING_DISABLED, SETTING_ENABLED)
    )
    with conn.transaction():
        conn.execute(_REMOVE_KEY, {"setting": remove, "cron_key": key})
        conn.execute(_ADD_KEY, {"setting": add, "cron_key": key, "array": Jsonb([key])})


# --- enqueue and history ----------------------------------------------------------------------


def enqueue_run(conn: psycopg.Connection, entry: CronEntry, cron_at: dt.datetime | None) -> bool:
    """Enqueue one run; False when it already existed. ``cron_at`` None is a manual run."""
    from goodjob_mp.db.job_store import to_naive_utc
    from goodjob_mp.enqueue import build_job, insert_row

    args, kwargs, options = enqueue_options(entry)
    row = build_job(
        entry.job_class,
        args,
        kwargs,
        options,
        cron_key=entry.key,
        cron_at=to_naive_utc(cron_at) if cron_at is not None else None,
    )
    added = insert_row(conn, row)
    if added and events.has_subscribers("cron_enqueue"):
        events.emit(
            "cron_enqueue",
            cron_key=entry.key,
            job_class=row.job_class,
            queue_name=row.queue_name,
            cron_at=cron_at,
        )
    return added


_LAST_CRON_AT = """
SELECT cron_key, max(cron_at) FROM good_jobs
WHERE cron_key = ANY(%s) AND cron_at IS NOT NULL GROUP BY cron_key
"""


def last_cron_at(conn: psycopg.Connection, keys: list[str]) -> dict[str, dt.datetime]:
    """Each key's latest scheduled run in the database, aware UTC."""
    rows = conn.execute(_LAST_CRON_AT, (keys,)).fetchall()
    return {key: at.replace(tzinfo=UTC) for key, at in rows}


@dataclass(frozen=True)
class LastRun:
    cron_at: dt.datetime | None  # aware UTC; None for a manual run
    created_at: dt.datetime
    outcome: str


_LAST_RUNS = """
SELECT DISTINCT ON (cron_key) cron_key, cron_at, created_at, performed_at, finished_at, error
FROM good_jobs WHERE cron_key = ANY(%s) ORDER BY cron_key, created_at DESC
"""


def _outcome(performed_at: Any, finished_at: Any, error: str | None) -> str:
    if finished_at is not None:
        return "succeeded" if error is None else f"failed: {error}"
    if error is not None:
        return f"retrying: {error}"
    return "running" if performed_at is not None else "queued"


def last_runs(conn: psycopg.Connection, keys: list[str]) -> dict[str, LastRun]:
    rows = conn.execute(_LAST_RUNS, (keys,)).fetchall()
    return {
        key: LastRun(
            cron_at.replace(tzinfo=UTC) if cron_at is not None else None,
            created_at.replace(tzinfo=UTC),
            _outcome(performed_at, finished_at, error),
        )
        for key, cron_at, created_at, performed_at, finished_at, error in rows
    }


# --- the leader -------------------------------------------------------------------------------


class CronScheduler:
    """Enqueues due runs while this process holds the cron leader lock; driven by ``tick()``.

    The lock is a session advisory lock on a connection only this object uses: it is released
    when that connection ends, so a dead leader's successor takes over on its next retry (at most
    ``RETRY_INTERVAL`` later). The unique index on ``(cron_key, cron_at)`` keeps two leaders at
    once (a network split) from enqueuing a run twice.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        connect: Callable[[], psycopg.Connection] = connection.connect,
        entries: Mapping[str, CronEntry] | None = None,
    ) -> None:
        self.entries = dict(entries) if entries is not None else validate_cron_entries(settings)
        self.graceful_period = settings.cron_graceful_restart_period
        self.is_leader = False
        self._clock = clock
        self._connect = connect
        self._conn: psycopg.Connection | None = None
        self._cursor: dt.datetime | None = None  # runs up to here are enqueued
        self._next_due: dict[str, dt.datetime | None] = {}
        self._next_attempt = 0.0
        self._next_health = 0.0
        self._resume: tuple[dt.datetime, dict[str, dt.datetime | None]] | None = None

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self._clock(), UTC)

    def tick(self) -> None:
        """Take or keep leadership and enqueue what is due. Database errors are logged."""
        now_ts = self._clock()
        try:
            if not self.is_leader:
                if now_ts >= self._next_attempt:
                    self._next_attempt = now_ts + RETRY_INTERVAL
                    self._try_lead()
                return
            if now_ts >= self._next_health:
                self._next_health = now_ts + HEALTH_INTERVAL
                assert self._conn is not None
                self._conn.execute("SELECT 1")
            self._enqueue_due()
        except psycopg.Error as exc:
            log.warning("cron: lost the database (%s); retrying leadership", str(exc).strip())
            self._drop_connection()
            self._next_attempt = now_ts + RETRY_INTERVAL
        except connection.DatabaseUnavailableError as exc:
            log.warning("cron: %s", exc)
            self._next_attempt = now_ts + RETRY_INTERVAL

    def _try_lead(self) -> None:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = self._connect()
        row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK_KEY,)).fetchone()
        if not (row and row[0]):
            return
        self.is_leader = True
        self._next_health = self._clock() + HEALTH_INTERVAL
        now = self._now()
        resume, self._resume = self._resume, None
        if resume is not None and (now - resume[0]).total_seconds() <= RESUME_LIMIT:
            self._cursor, self._next_due = resume
            self._enqueue_due()
            return
        log.info("cron: this process is the cron leader (%d entries)", len(self.entries))
        self._become_leader(now)

    def _become_leader(self, now: dt.datetime) -> None:
        assert self._conn is not None
        last = last_cron_at(self._conn, list(self.entries))
        enabled, disabled = read_switches(self._conn)
        for key, entry in self.entries.items():
            plan = catch_up(entry.schedule, now, self.graceful_period, last.get(key))
            if plan.skipped and is_enabled(entry, enabled, disabled):
                log.warning(
                    "cron: %s missed %d run(s) from %s to %s while no leader ran; set "
                    "cron_graceful_restart_period to enqueue missed runs on takeover",
                    key,
                    len(plan.skipped),
                    plan.skipped[0].isoformat(),
                    plan.skipped[-1].isoformat(),
                )
            if plan.enqueue and is_enabled(entry, enabled, disabled):
                added = sum(enqueue_run(self._conn, entry, at) for at in plan.enqueue)
                if added:
                    log.info("cron: %s caught up %d missed run(s)", key, added)
        self._cursor = now
        self._next_due = {key: self._safe_next(e, now) for key, e in self.entries.items()}

    def _safe_next(self, entry: CronEntry, after: dt.datetime) -> dt.datetime | None:
        try:
            return entry.next_after(after)
        except Exception:  # a user's schedule callable must not stop the supervisor
            log.exception("cron: %s: its schedule callable failed; entry paused", entry.key)
            return None

    def _enqueue_due(self) -> None:
        now = self._now()
        assert self._cursor is not None and self._conn is not None
        if now <= self._cursor:
            return
        due = [k for k, at in self._next_due.items() if at is not None and at <= now]
        enabled: set[str] = set()
        disabled: set[str] = set()
        if due:
            enabled, disabled = read_switches(self._conn)
        for key in due:
            entry = self.entries[key]
            at = self._next_due[key]
            while at is not None and at <= now:
                if is_enabled(entry, enabled, disabled):
                    self._enqueue_one(entry, at)
                at = self._safe_next(entry, at)
            self._next_due[key] = at
        self._cursor = now

    def _enqueue_one(self, entry: CronEntry, at: dt.datetime) -> None:
        assert self._conn is not None
        try:
            inserted = enqueue_run(self._conn, entry, at)
        except psycopg.Error:
            raise
        except Exception:  # args/kwargs/set callables and serialisation are the user's code
            log.exception("cron: %s: could not build the job for %s; run skipped", entry.key, at)
            return
        if inserted:
            log.info("cron: enqueued %s for %s", entry.key, at.isoformat())
        else:
            log.debug("cron: %s for %s was already enqueued", entry.key, at.isoformat())

    def next_wakeup(self) -> float:
        """Epoch seconds when ``tick()`` should next run."""
        now_ts = self._clock()
        if not self.is_leader:
            return min(max(self._next_attempt, now_ts), now_ts + RETRY_INTERVAL)
        wake = self._next_health
        for at in self._next_due.values():
            if at is not None:
                wake = min(wake, at.timestamp())
        return max(wake, now_ts)

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        self.is_leader = False
        self._cursor = None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

    def before_fork(self) -> None:
        """Release the lock and close the connection before the supervisor forks; the next
        ``tick()`` leads again and enqueues what fell due in between."""
        if self.is_leader and self._cursor is not None:
            self._resume = (self._cursor, dict(self._next_due))
        self.close()
        self._next_attempt = 0.0

    def close(self) -> None:
        """Release the lock and the connection (the supervisor's shutdown)."""
        if self._conn is not None and self.is_leader and not self._conn.closed:
            try:
                self._conn.execute("SELECT pg_advisory_unlock(%s)", (LEADER_LOCK_KEY,))
            except psycopg.Error:
                pass
        self._drop_connection()
