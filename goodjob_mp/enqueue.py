"""Enqueue: turn ``perform_later`` calls into ``good_jobs`` rows.

Owns the Active Job ``serialized_params`` envelope, transactional enqueue on a caller's own
connection (``using_connection``), and bulk enqueue (``bulk()``: many calls, one COPY). An
argument that cannot be serialised fails here, before anything is written. Never performs a job
itself except in ``inline`` execution mode, where it hands the new job to ``goodjob_mp.inline``.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import functools
import os
import sys
import threading
import types
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import psycopg

from goodjob_mp import events, features, inline
from goodjob_mp.config import Settings, current_settings
from goodjob_mp.db.connection import enqueue_connection, enqueue_pool
from goodjob_mp.db.job_copy import JobCopier, copy_jobs
from goodjob_mp.db.job_store import (
    NewJob,
    insert_job,
    insert_plain,
    new_job_id,
    to_naive_utc,
    utcnow,
)
from goodjob_mp.db.migrate import schema_missing_error
from goodjob_mp.features.batches import current_batch_id
from goodjob_mp.jobs import DEFAULT_PRIORITY, DEFAULT_QUEUE, EnqueueOptions
from goodjob_mp.serialization import WritePolicy, dumps, serialize_arguments

if TYPE_CHECKING:
    from goodjob_mp.jobs import Job


class EnqueuedJob(NamedTuple):  # a tuple: cheap to build, and a bulk() block keeps one per job
    """The handle ``perform_later`` returns. ``enqueued`` is False (and the handle falsy) when
    a concurrency limit or throttle refused the job: ``refused`` says which ("limit",
    "throttle"), and nothing was written, as GoodJob's ``perform_later`` returns false."""

    id: uuid.UUID
    job_class: str
    queue_name: str
    priority: int
    scheduled_at: dt.datetime  # naive UTC
    enqueued: bool = True
    refused: str | None = None

    def __bool__(self) -> bool:
        return self.enqueued

    @property
    def active_job_id(self) -> uuid.UUID:
        return self.id


_connection: contextvars.ContextVar[psycopg.Connection | None] = contextvars.ContextVar(
    "goodjob_mp_enqueue_connection", default=None
)


@contextlib.contextmanager
def using_connection(conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """Enqueue on ``conn`` inside this block: the jobs exist only if its transaction commits.

    Their ``enqueue`` events fire only after that commit: when this block ends, for the
    transactions that have committed by then (so put the block around the transaction), else at
    this thread's next enqueue or block end. A rolled-back job fires none.
    """
    token = _connection.set(conn)
    try:
        yield conn
    finally:
        _connection.reset(token)
        flush_enqueue_events()


# --- enqueue events after commit ---------------------------------------------------------------
# psycopg has no commit hooks, so a job written inside a caller's transaction remembers that
# transaction's id; Postgres says later whether it committed (txid_status). Costs one query per
# enqueue, and only while someone subscribes to "enqueue".

_CURRENT_TXID = "SELECT txid_current()"
_TXID_STATUS = "SELECT x, txid_status(x) FROM unnest(%s::bigint[]) AS x"
_pending = threading.local()


def _pending_events() -> list[tuple[int, NewJob]]:
    pending = getattr(_pending, "rows", None)
    if pending is None or getattr(_pending, "pid", None) != os.getpid():
        pending = _pending.rows = []
        _pending.pid = os.getpid()
    return pending


def _emit_after_commit(conn: psycopg.Connection, rows: Sequence[NewJob]) -> None:
    if not events.has_subscribers("enqueue"):
        return
    if conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        for row in rows:  # autocommit: the rows are committed already
            _emit(row)
        return
    (txid,) = conn.execute(_CURRENT_TXID).fetchone()  # type: ignore[misc]
    _pending_events().extend((txid, row) for row in rows)


def flush_enqueue_events() -> None:
    """Fire the ``enqueue`` events of this thread's jobs whose transactions have committed
    (and forget those that rolled back). Runs by itself at the end of ``using_connection`` and
    before each enqueue; call it after committing a transaction you enqueued in without one."""
    pending = _pending_events()
    if not pending:
        return
    txids = sorted({txid for txid, _ in pending})
    with enqueue_connection() as conn:
        status: dict[int, str | None] = dict(conn.execute(_TXID_STATUS, (txids,)).fetchall())
    still_open = [(txid, row) for txid, row in pending if status.get(txid) == "in progress"]
    committed = [row for txid, row in pending if status.get(txid) == "committed"]
    pending[:] = still_open
    for row in committed:
        _emit(row)


BULK_CHUNK = 1_000  # rows an enqueue hook wants to see, held and written together (bulk())


@dataclass
class Bulk:
    """Collects the jobs of a ``bulk()`` block; ``jobs`` holds their handles after the write.
    ``rows`` are those not written yet."""

    rows: list[NewJob] = field(default_factory=list)
    jobs: list[EnqueuedJob] = field(default_factory=list)
    # Run in the COPY's transaction after it (a batch enqueued inside the block); each returns
    # the ids of jobs it enqueued, for inline mode to perform after the commit.
    on_write: list[Callable[[psycopg.Connection], list[uuid.UUID]]] = field(default_factory=list)
    stream: _Stream | None = None


class _Stream:
    """A ``bulk()`` block on this process's own connection: its jobs go into one COPY as the
    block runs, in one transaction that commits when the block ends (an exception rolls it
    back). Postgres takes each row while the block builds the next, and memory stays flat
    however many jobs the block enqueues. Rows an enqueue hook wants to see (a concurrency
    key's) wait in ``Bulk.rows`` and are written ``BULK_CHUNK`` at a time after their hooks."""

    def __init__(self, stack: contextlib.ExitStack) -> None:
        self._stack = stack
        self._copier: JobCopier | None = None
        self.kept: list[NewJob] = []  # for enqueue events and inline mode, only when needed
        self.keep = False
        self.also: list[uuid.UUID] = []  # jobs the on_write actions enqueued (inline mode)
        self._held_at: list[int] = []  # where the handles of Bulk.rows are in Bulk.jobs

    @property
    def opened(self) -> bool:
        return self._copier is not None

    def _open(self) -> JobCopier:
        if self._copier is None:
            conn = self._stack.enter_context(_writing(None))
            self._stack.enter_context(conn.transaction())
            self._copier = self._stack.enter_context(JobCopier(conn))
            self.keep = (
                events.has_subscribers("enqueue") or current_settings().execution_mode == "inline"
            )
        return self._copier

    def add(self, collected: Bulk, row: NewJob) -> None:
        """Write ``row``, whose handle is the last of ``collected.jobs`` (or hold it)."""
        if features.enqueue_hooks and features.hooks_want(row):
            collected.rows.append(row)
            self._held_at.append(len(collected.jobs) - 1)
            if len(collected.rows) >= BULK_CHUNK:
                self._write_held(collected)
            return
        (self._copier or self._open()).add(row)
        if self.keep:
            self.kept.append(row)

    def _write_held(self, collected: Bulk) -> None:
        """COPY the held rows after the enqueue hooks; the handles of rows a hook refused are
        replaced by ones that say so."""
        rows, at = collected.rows, self._held_at
        collected.rows, self._held_at = [], []
        written = self._open().write(rows)
        if len(written) != len(rows):
            for index, row in zip(at, rows, strict=True):
                if row.refused is not None:
                    collected.jobs[index] = _handle(row)
        if self.keep:
            self.kept.extend(written)

    def finish(self, collected: Bulk) -> None:
        """Write the held rows, run the on_write actions, then the NOTIFYs, all in the
        stream's transaction; the commit follows as the stack closes."""
        if collected.rows:
            self._write_held(collected)
        if collected.on_write:
            copier = self._open()
            copier.end()
            for action in collected.on_write:
                self.also += action(copier.conn)
        if self._copier is not None:
            self._copier.notify()


_bulk: contextvars.ContextVar[Bulk | None] = contextvars.ContextVar("goodjob_mp_bulk", default=None)


@contextlib.contextmanager
def bulk(connection: psycopg.Connection | None = None) -> Iterator[Bulk]:
    """Capture ``perform_later`` calls and write them with COPY: all in one transaction that
    commits when the block ends. An exception inside the block writes nothing. Nested blocks
    join the outer one.

    On this process's own connection (no ``connection``, no ``using_connection``, no write
    router) the rows are written 1,000 at a time while the block runs, inside that
    transaction; otherwise they are kept and written with one COPY at the end.
    """
    if _bulk.get() is not None:
        yield _bulk.get()  # type: ignore[misc]
        return
    collected = Bulk()
    streamed = connection is None and _connection.get() is None and not _routers
    token = _bulk.set(collected)
    with contextlib.ExitStack() as stack:
        if streamed:
            collected.stream = _Stream(stack)
        try:
            yield collected
        finally:
            _bulk.reset(token)
        if collected.stream is not None:
            collected.stream.finish(collected)
    if collected.stream is not None:
        stream, collected.stream = collected.stream, None
        for row in stream.kept:  # committed: their enqueue events, then inline mode performs them
            _emit(row)
        if stream.opened:  # inline mode performs them; async mode starts its worker
            _after_write(stream.kept, stream.also)
    elif collected.rows or collected.on_write:
        # Inline mode performs them unless a router wrote them in a framework's transaction.
        _route(lambda conn: _copy_now(collected, conn, conn is connection), connection)


def _copy_now(collected: Bulk, connection: psycopg.Connection | None, perform_inline: bool) -> None:
    also: list[uuid.UUID] = []
    written: Sequence[NewJob] = ()
    with _writing(connection) as conn:
        with conn.transaction():
            if collected.rows:
                written = copy_jobs(conn, collected.rows)
            for action in collected.on_write:
                also += action(conn)
        _emit_after_commit(conn, written)
    if len(written) != len(collected.rows):  # the handles of refused rows say so
        collected.jobs[:] = [_handle(row) for row in collected.rows]
    if perform_inline:
        _after_write(written, also)


@contextlib.contextmanager
def _writing(connection: psycopg.Connection | None) -> Iterator[psycopg.Connection]:
    """The caller's connection, else one borrowed from the enqueue pool for this write. A
    database without our tables says which command creates them, not UndefinedTable."""
    explicit = connection or _connection.get()
    try:
        if explicit is not None:
            yield explicit
        else:
            with enqueue_pool().connection() as conn:  # enqueue_connection(), one layer less
                yield conn
    except psycopg.errors.UndefinedTable as exc:
        raise schema_missing_error(exc) from None


def build_serialized_params(
    job_class: str,
    job_id: uuid.UUID,
    queue_name: str,
    priority: int | None,
    arguments: list[Any],
    enqueued_at: dt.datetime,
    scheduled_at: dt.datetime | None,
) -> dict[str, Any]:
    """Active Job's envelope (Rails 7.1 keys), readable by a Rails GoodJob."""
    return {
        "job_class": job_class,
        "job_id": str(job_id),
        "provider_job_id": None,
        "queue_name": queue_name,
        "priority": priority,
        "arguments": arguments,
        "executions": 0,
        "exception_executions": {},
        "locale": "en",
        "timezone": "UTC",
        "enqueued_at": _iso(enqueued_at),
        "scheduled_at": _iso(scheduled_at) if scheduled_at is not None else None,
    }


def _iso(value: dt.datetime) -> str:
    return value.isoformat(timespec="microseconds") + "Z"


def envelope_json(
    job_class: str,
    job_id: uuid.UUID,
    queue_name: str,
    priority: int | None,
    arguments: list[Any],
    enqueued_at: dt.datetime,
    scheduled_at: dt.datetime | None,
) -> str:
    """``dumps(build_serialized_params(...))``, built from cached pieces (enqueue hot path):
    the keys and constants never change, and ids and ISO times need no escaping."""
    scheduled = None if scheduled_at is None else _iso(scheduled_at)
    return _envelope(
        job_class, str(job_id), queue_name, priority, arguments, _iso(enqueued_at), scheduled
    )


def _envelope(
    job_class: str,
    id_text: str,
    queue_name: str,
    priority: int | None,
    arguments: list[Any],
    enqueued: str,
    scheduled: str | None,
) -> str:
    if type(priority) is int or priority is None:  # True == 1 must not share a cache entry
        head, middle = _envelope_parts(job_class, queue_name, priority)
    else:
        head, middle = _envelope_parts.__wrapped__(job_class, queue_name, priority)
    args = dumps(arguments) if arguments else "[]"
    scheduled_json = "null" if scheduled is None else f'"{scheduled}"'
    tail = f'{_ENVELOPE_TAIL}{enqueued}","scheduled_at":{scheduled_json}}}'
    return f"{head}{id_text}{middle}{args}{tail}"


_ENVELOPE_TAIL = (
    ',"executions":0,"exception_executions":{},"locale":"en","timezone":"UTC","enqueued_at":"'
)


@functools.lru_cache(maxsize=1024)
def _envelope_parts(job_class: str, queue_name: str, priority: Any) -> tuple[str, str]:
    head = '{"job_class":' + dumps(job_class) + ',"job_id":"'
    middle = (
        '","provider_job_id":null,"queue_name":'
        + dumps(queue_name)
        + ',"priority":'
        + dumps(priority)
        + ',"arguments":'
    )
    return head, middle


def build_job(
    job_cls: type[Job],
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    options: EnqueueOptions,
    *,
    cron_key: str | None = None,
    cron_at: dt.datetime | None = None,
) -> NewJob:
    """The row for one ``perform_later``; raises SerializationError before anything is written."""
    job_class = job_cls.job_class_name or job_cls.__qualname__
    return build_row(
        job_class,
        job_cls.default_options(),
        args,
        kwargs,
        options,
        cron_key=cron_key,
        cron_at=cron_at,
    )


def build_row(
    job_class: str,
    defaults: EnqueueOptions,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    options: EnqueueOptions,
    *,
    cron_key: str | None = None,
    cron_at: dt.datetime | None = None,
) -> NewJob:
    """The row for a job of class name ``job_class``, with its class's ``defaults``."""
    queue_name = options.queue or defaults.queue or DEFAULT_QUEUE
    # Active Job's priority (null when unset) goes into serialized_params; the column gets
    # GoodJob's DEFAULT_PRIORITY in its place, as GoodJob writes it.
    priority = options.priority if options.priority is not None else defaults.priority
    labels = options.labels if options.labels is not None else defaults.labels
    arguments = serialize_arguments(
        args, kwargs, job_name=job_class, policy=write_policy(current_settings())
    )
    now = utcnow()
    run_at = options.run_at(now)
    scheduled = to_naive_utc(run_at) if run_at is not None else None
    return new_row(
        job_class,
        queue_name,
        priority,
        arguments,
        now,
        scheduled,
        labels,
        cron_key=cron_key,
        cron_at=cron_at,
    )


def new_row(
    job_class: str,
    queue_name: str,
    priority: int | None,
    arguments: list[Any],
    now: dt.datetime,
    scheduled: dt.datetime | None,
    labels: Sequence[str] | None,
    **columns: Any,
) -> NewJob:
    """The row of one job whose arguments are serialized already: Active Job's envelope (with
    ``priority`` null when unset) and GoodJob's columns (``DEFAULT_PRIORITY`` in its place).
    ``columns`` are the other ``NewJob`` fields (cron, batch ids)."""
    job_id = new_job_id()
    id_text = str(job_id)
    created = now.isoformat(timespec="microseconds")
    # The envelope's times are _iso's: the columns' text with a Z.
    envelope = _envelope(
        job_class,
        id_text,
        queue_name,
        priority,
        arguments,
        created + "Z",
        None if scheduled is None else _iso(scheduled),
    )
    return NewJob(
        id=job_id,
        job_class=job_class,
        queue_name=queue_name,
        priority=DEFAULT_PRIORITY if priority is None else priority,
        params_dict=None,  # decoded from the text if something reads it
        params_json=envelope,
        scheduled_at=scheduled or now,
        created_at=now,
        labels=list(labels) if labels else None,
        id_text=id_text,
        created_text=created,
        **columns,
    )


@functools.lru_cache(maxsize=8)
def _policy(naive: str, decimals: str, compatible: bool) -> WritePolicy:
    return WritePolicy(naive, decimals, compatible)


def write_policy(settings: Settings) -> WritePolicy:
    """The argument-writing choices of ``settings``."""
    return _policy(
        settings.naive_datetimes, settings.decimal_format, settings.active_job_compatible
    )


def _handle(row: NewJob) -> EnqueuedJob:
    return EnqueuedJob(
        row.id,
        row.job_class,
        row.queue_name,
        row.priority,
        row.scheduled_at,
        row.refused is None,
        row.refused,
    )


def _emit(row: NewJob) -> None:
    if events.has_subscribers("enqueue"):
        events.emit(
            "enqueue",
            job_id=row.id,
            job_class=row.job_class,
            queue_name=row.queue_name,
            priority=row.priority,
            scheduled_at=row.scheduled_at,
        )


# Async mode's start at the first enqueue (goodjob_mp.async_autostart, set by the package: this
# module may not import the worker, not even lazily).
on_async_enqueue: Callable[[], None] | None = None


def _after_write(rows: Sequence[NewJob], also: Sequence[uuid.UUID] = ()) -> None:
    mode = current_settings().execution_mode
    # Inline mode performs exactly the jobs just written (and what they enqueue), as GoodJob.
    if mode == "inline" and _connection.get() is None:
        now = utcnow()
        inline.perform_enqueued([row.id for row in rows if row.scheduled_at <= now] + list(also))
    elif mode == "async" and on_async_enqueue is not None:
        on_async_enqueue()


def enqueue(
    job_cls: type[Job],
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    options: EnqueueOptions,
    *,
    connection: psycopg.Connection | None = None,
) -> EnqueuedJob:
    """Write one job (or add it to the surrounding ``bulk()``) and return its handle."""
    return _write(build_job(job_cls, args, kwargs, options), connection)


def _write(row: NewJob, connection: psycopg.Connection | None) -> EnqueuedJob:
    batch_id = current_batch_id.get()
    if batch_id is not None and row.batch_id is None:
        row.batch_id = batch_id  # inside `with batch:` (features/batches.py)
    collected = _bulk.get()
    if collected is not None:
        handle = _handle(row)
        collected.jobs.append(handle)
        if collected.stream is None:
            collected.rows.append(row)
        else:
            collected.stream.add(collected, row)
        return handle
    _route(lambda conn: _insert_now(row, conn), connection)
    return _handle(row)


def _insert_now(row: NewJob, connection: psycopg.Connection | None) -> None:
    if getattr(_pending, "rows", None):
        flush_enqueue_events()
    if (
        connection is None
        and _connection.get() is None
        and row.is_plain()
        and not (features.enqueue_hooks and features.hooks_want(row))
    ):
        _insert_plain_now(row)
        return
    with _writing(connection) as conn:
        if not insert_job(conn, row):
            return  # refused by a concurrency limit: nothing written (row.refused says why)
        _emit_after_commit(conn, [row])
    if connection is None:
        _after_write([row])


def _insert_plain_now(row: NewJob) -> None:
    """The common single enqueue (a plain row, no hook wants it, autocommit on a pooled
    connection) as one text-parameter statement on the connection's kept RawCursor."""
    pool = enqueue_pool()
    conn = pool.take()
    try:
        insert_plain(pool.raw_cursor(conn), row)
    except psycopg.errors.UndefinedTable as exc:
        raise schema_missing_error(exc) from None
    finally:
        pool.give_back(conn)
    _emit(row)
    _after_write([row])


# --- write routers ------------------------------------------------------------------------------
# A web framework with transactions of its own (goodjob_mp.contrib.django) decides where a write
# with no explicit connection goes: a router gets ``write(conn)`` and returns True once it has
# taken it (run now on the framework's connection, or deferred until its commit), or False to
# leave it to the default (this process's own connections, at once).

WriteRouter = Callable[[Callable[[psycopg.Connection | None], None]], bool]
_routers: list[WriteRouter] = []


def add_write_router(router: WriteRouter) -> None:
    """Install ``router`` (idempotent) for every later enqueue in this process."""
    if router not in _routers:
        _routers.append(router)


def remove_write_router(router: WriteRouter) -> None:
    if router in _routers:
        _routers.remove(router)


def _route(
    write: Callable[[psycopg.Connection | None], None], connection: psycopg.Connection | None
) -> None:
    if connection is None and _connection.get() is None:
        for router in _routers:
            if router(write):
                return
    write(connection)


def enqueue_named(
    job_class: str,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    **options: Any,
) -> EnqueuedJob:
    """``goodjob_mp.enqueue("RubyMailer", [42], queue="mailers")``: enqueue a job by its class
    name, with no Python class (e.g. for a Rails app on the same database).

    ``options`` are those of ``set()``: ``queue``, ``priority``, ``wait``, ``wait_until``,
    ``labels``. Keyword arguments for the job go in ``kwargs`` (Ruby keyword arguments). A name
    that a Python job answers to uses that job's defaults.
    """
    if not isinstance(job_class, str) or not job_class.strip():
        raise ValueError(f"job_class must be a class name such as 'RubyMailer', got {job_class!r}")
    if isinstance(args, (str, bytes)) or not isinstance(args, Sequence):
        raise TypeError(f"args must be a list of arguments, got {args!r}")
    from goodjob_mp.jobs import _make_options, _registry

    python_job = _registry.get(job_class)
    defaults = python_job.default_options() if python_job is not None else EnqueueOptions()
    row = build_row(job_class, defaults, args, kwargs or {}, _make_options(**options))
    return _write(row, None)


def insert_row(conn: psycopg.Connection, row: NewJob) -> bool:
    """Insert a prepared row (cron uses this); False when its (cron_key, cron_at) existed."""
    inserted = insert_job(conn, row)
    if inserted:
        _emit_after_commit(conn, [row])
    return inserted


class _CallableModule(types.ModuleType):
    """Lets ``goodjob_mp.enqueue(...)`` call ``enqueue_named`` while the name stays this
    module for every import and attribute path."""

    def __call__(
        self,
        job_class: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> EnqueuedJob:
        return enqueue_named(job_class, args, kwargs, **options)


sys.modules[__name__].__class__ = _CallableModule
