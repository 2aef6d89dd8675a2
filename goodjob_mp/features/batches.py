"""Batches: group jobs, and enqueue callback jobs when the group is done (GoodJob::Batch).

A batch is a ``good_job_batches`` row; its jobs carry its id in ``good_jobs.batch_id``, its
callback jobs in ``batch_callback_id``. Rows are GoodJob v4's, so a Rails GoodJob reads a batch
made here with ``GoodJob::Batch.find`` and the reverse.

When is a batch done, and who says so: the finish hook (``after_finish``) runs in the same
transaction that writes a batch of job results. For every batch touched it takes the batch's
lock (GoodJob's advisory key, then the row) and, in statements that see every finish committed
before the lock was granted, asks the questions GoodJob's ``_continue_discard_or_finish`` asks:

1. a job of the batch was just discarded (finished with an error) and ``discarded_at`` is empty:
   set it, enqueue ``on_discard``;
2. the batch is enqueued, ``jobs_finished_at`` is empty and no job of the batch is unfinished
   (a job waiting for a retry is unfinished): set it, enqueue ``on_success`` (only if nothing was
   discarded) and ``on_finish``;
3. jobs are finished and no callback job is unfinished: set ``finished_at``.

Each timestamp is set once under the lock and its callback is inserted in the same transaction,
so two processes finishing the last two jobs at the same instant enqueue each callback exactly
once, and a crash after the finish cannot lose it. Callback jobs get ``(batch, {"event": ...})``
as GoodJob passes them: the batch as a GlobalID (``gid://goodjob-mp/GoodJob::Batch/<id>``, which
Rails' GlobalID locates by model name, whatever the app name), the event as a Ruby symbol. A
Python callback receives a ``Batch`` and ``{"event": "finish"}``.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import psycopg

from goodjob_mp.db import batches as store
from goodjob_mp.db.batches import BatchRow
from goodjob_mp.serialization import GlobalID, deserialize_arguments, serialize_arguments

if TYPE_CHECKING:
    from goodjob_mp.db.job_store import JobResult, NewJob

GLOBALID_APP = "goodjob-mp"
GLOBALID_MODEL = "GoodJob::Batch"
_SYMBOL = "ActiveJob::Serializers::SymbolSerializer"
EVENTS = ("discard", "success", "finish")

# The batch that perform_later calls on this thread (or task) join: set by ``with batch:`` and
# ``with batch.add():``. Read by goodjob_mp.enqueue when it builds a row.
current_batch_id: contextvars.ContextVar[uuid.UUID | None] = contextvars.ContextVar(
    "goodjob_mp_batch", default=None
)


class BatchNotFoundError(LookupError):
    """No ``good_job_batches`` row has this id."""


def _class_name(callback: Any) -> str | None:
    """A callback as GoodJob stores it: the job's class name."""
    if callback is None:
        return None
    if isinstance(callback, str):
        if not callback.strip():
            raise ValueError("a batch callback must name a job class, got an empty string")
        return callback
    name = getattr(callback, "job_class_name", None) or getattr(callback, "__qualname__", None)
    if not isinstance(name, str):
        raise TypeError(f"a batch callback must be a job class or its name, got {callback!r}")
    return name


def dump_properties(properties: Mapping[str, Any]) -> dict[str, Any]:
    """``serialized_properties`` as GoodJob writes ``Batch.new(user_id: 1)``: Active Job's form
    of the hash, with the top-level keys marked as symbols (so ``properties[:user_id]`` works
    in Ruby)."""
    if not isinstance(properties, Mapping):
        raise TypeError(f"batch properties must be a dict, got {type(properties).__name__}")
    from goodjob_mp.config import current_settings
    from goodjob_mp.enqueue import write_policy

    (value,) = serialize_arguments(
        [dict(properties)], {}, job_name="batch properties", policy=write_policy(current_settings())
    )
    value["_aj_symbol_keys"] = [key for key in value if key != "_aj_symbol_keys"]
    return value


def load_properties(value: Any) -> dict[str, Any]:
    if not value:
        return {}
    args, _ = deserialize_arguments([value])
    return args[0] if args and isinstance(args[0], dict) else {}


def global_id(batch_id: uuid.UUID) -> GlobalID:
    return GlobalID(f"gid://{GLOBALID_APP}/{GLOBALID_MODEL}/{batch_id}")


class Batch:
    """A group of jobs with callbacks (GoodJob::Batch)::

        batch = gj.Batch(on_finish=ReportDone, description="nightly", properties={"user_id": 1})
        with batch:                      # every perform_later in here joins the batch
            for n in range(100):
                crunch.perform_later(n)
        # leaving the block enqueues the batch: its callbacks are due once its jobs finish

    ``on_finish`` runs when every job has finished (succeeded or discarded), ``on_success``
    only if none was discarded, ``on_discard`` at the first discard. Callbacks are job classes
    (or class names, e.g. a Rails job's) and receive ``(batch, {"event": "finish"})``.
    """

    def __init__(
        self,
        *,
        on_finish: Any = None,
        on_success: Any = None,
        on_discard: Any = None,
        callback_queue_name: str | None = None,
        callback_priority: int | None = None,
        description: str | None = None,
        properties: Mapping[str, Any] | None = None,
    ) -> None:
        self.id: uuid.UUID = uuid.uuid4()
        self.on_finish = _class_name(on_finish)
        self.on_success = _class_name(on_success)
        self.on_discard = _class_name(on_discard)
        self.callback_queue_name = callback_queue_name
        self.callback_priority = callback_priority
        self.description = description
        self.properties: dict[str, Any] = dict(properties or {})
        self._row: BatchRow | None = None
        self._persisted = False
        self._tokens: list[contextvars.Token[uuid.UUID | None]] = []
        self._deferred: list[bool] = []

    # --- reading ----------------------------------------------------------------------------

    @classmethod
    def find(
        cls, batch_id: uuid.UUID | str, *, connection: psycopg.Connection | None = None
    ) -> Batch:
        """The batch with this id (made here or by a Rails GoodJob); BatchNotFoundError if none."""
        batch_id = uuid.UUID(str(batch_id))
        with _connection(connection) as conn:
            row = store.find(conn, batch_id)
        if row is None:
            raise BatchNotFoundError(f"no batch with id {batch_id}")
        return cls._from_row(row)

    @classmethod
    def _from_row(cls, row: BatchRow) -> Batch:
        batch = cls.__new__(cls)
        batch.id = row.id
        batch._tokens, batch._deferred = [], []
        batch._load(row)
        return batch

    def _load(self, row: BatchRow) -> None:
        self._row = row
        self._persisted = True
        self.on_finish, self.on_success, self.on_discard = (
            row.on_finish,
            row.on_success,
            row.on_discard,
        )
        self.callback_queue_name = row.callback_queue_name
        self.callback_priority = row.callback_priority
        self.description = row.description
        self.properties = load_properties(row.serialized_properties)

    def reload(self, *, connection: psycopg.Connection | None = None) -> Batch:
        with _connection(connection) as conn:
            row = store.find(conn, self.id)
        if row is None:
            raise BatchNotFoundError(f"no batch with id {self.id}")
        self._load(row)
        return self

    def _stamp(self, name: str) -> dt.datetime | None:
        return getattr(self._row, name) if self._row is not None else None

    created_at = property(lambda self: self._stamp("created_at"))
    enqueued_at = property(lambda self: self._stamp("enqueued_at"))
    discarded_at = property(lambda self: self._stamp("discarded_at"))
    jobs_finished_at = property(lambda self: self._stamp("jobs_finished_at"))
    finished_at = property(lambda self: self._stamp("finished_at"))
    enqueued = property(lambda self: self.enqueued_at is not None)
    discarded = property(lambda self: self.discarded_at is not None)
    jobs_finished = property(lambda self: self.jobs_finished_at is not None)
    finished = property(lambda self: self.finished_at is not None)
    # GoodJob's succeeded?: finished and nothing discarded.
    succeeded = property(lambda self: self.finished and not self.discarded)

    @property
    def state(self) -> str:
        return store.batch_state(self.enqueued_at, self.discarded_at, self.finished_at)

    def __repr__(self) -> str:
        return f"<Batch {self.id} {self.state} {self.description or ''}>".replace(" >", ">")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Batch) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    # --- writing ----------------------------------------------------------------------------

    def _new_row(self) -> BatchRow:
        return BatchRow(
            id=self.id,
            created_at=None,  # type: ignore[arg-type]  # set by the statement
            updated_at=None,  # type: ignore[arg-type]
            description=self.description,
            serialized_properties=dump_properties(self.properties),
            on_finish=self.on_finish,
            on_success=self.on_success,
            on_discard=self.on_discard,
            callback_queue_name=self.callback_queue_name,
            callback_priority=self.callback_priority,
            enqueued_at=None,
            discarded_at=None,
            finished_at=None,
            jobs_finished_at=None,
        )

    def save(self, *, connection: psycopg.Connection | None = None) -> Batch:
        """Write the batch without enqueueing it (GoodJob's ``save``): its callbacks wait for
        ``enqueue()`` however its jobs run."""
        from goodjob_mp.db.job_store import utcnow

        with _connection(connection) as conn:
            store.insert_new(conn, self._new_row(), utcnow())
        self._persisted = True
        return self

    def add(self, *jobs: Any, connection: psycopg.Connection | None = None) -> _Adding:
        """Add jobs to the batch without enqueueing it.

        ``batch.add(handle, ...)`` moves jobs already enqueued (their ``perform_later`` handles
        or ids) into the batch; ``with batch.add():`` makes the ``perform_later`` calls inside
        join it. Call ``enqueue()`` afterwards.
        """
        if jobs:
            ids = [uuid.UUID(str(getattr(job, "id", job))) for job in jobs]
            if not self._persisted and _bulk() is None:
                self.save(connection=connection)
            with _connection(connection) as conn:
                store.add_jobs(conn, self.id, ids)
        return _Adding(self, connection)

    def enqueue(self, *, connection: psycopg.Connection | None = None) -> Batch:
        """Mark the batch enqueued: from now on its callbacks run when its last job finishes
        (at once if it has no unfinished job). Enqueueing a finished batch again reopens it,
        as GoodJob does. Inside ``bulk()`` this happens in the bulk's transaction."""
        collected = _bulk()
        if collected is not None and connection is None:
            collected.on_write.append(self._enqueue_in)
            return self
        with _connection(connection) as conn, conn.transaction():
            callbacks = self._enqueue_in(conn)
        if connection is None and _perform_inline(callbacks):
            self.reload()
        return self

    def _enqueue_in(self, conn: psycopg.Connection) -> list[uuid.UUID]:
        from goodjob_mp.db.job_store import utcnow

        row = self._new_row()
        conn.execute(store.LOCK, (self.id,))
        store.upsert_enqueued(conn, row, utcnow())
        callbacks = continue_discard_or_finish(conn, self.id, locked=False)
        self._load(store.find(conn, self.id))  # type: ignore[arg-type]
        return callbacks

    def retry(self, *, connection: psycopg.Connection | None = None) -> int:
        """Retry the batch's discarded jobs (GoodJob's ``Batch#retry``): the batch is unfinished
        again, and its callbacks become due once more. Returns how many jobs were retried."""
        from goodjob_mp.db import admin
        from goodjob_mp.db.job_store import utcnow

        with _connection(connection) as conn, conn.transaction():
            if store.lock(conn, self.id) is None:
                raise BatchNotFoundError(f"no batch with id {self.id}")
            now = utcnow()
            store.reopen(conn, self.id, now)
            ids = store.discarded_job_ids(conn, self.id)
            retried = admin.apply_action(conn, "retry", ids, now=now) if ids else []
            callbacks = continue_discard_or_finish(conn, self.id, locked=False)
            self._load(store.find(conn, self.id))  # type: ignore[arg-type]
        if connection is None:
            _perform_inline(callbacks)
        return len(retried)

    def jobs(self, *, connection: psycopg.Connection | None = None) -> list[store.BatchJob]:
        """The batch's jobs, then its callback jobs (``.callback`` tells them apart)."""
        from goodjob_mp.db.job_store import utcnow

        with _connection(connection) as conn:
            return store.batch_jobs(conn, self.id, utcnow())

    # --- with batch: ------------------------------------------------------------------------

    def __enter__(self) -> Batch:
        # Inside bulk() nothing is written before the bulk's COPY, and the batch row goes in
        # the same transaction (enqueue() defers to it); outside, the row exists before its
        # first job so a reader never sees jobs of a batch it cannot find.
        deferred = _bulk() is not None
        if not deferred and not self._persisted:
            self.save()
        self._deferred.append(deferred)
        self._tokens.append(current_batch_id.set(self.id))
        return self

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        current_batch_id.reset(self._tokens.pop())
        self._deferred.pop()
        if kind is None:
            self.enqueue()
        # On an exception the batch is not enqueued (as in GoodJob): jobs written so far stay.


class _Adding:
    """``with batch.add():``: perform_later calls inside join the batch, which is not enqueued."""

    def __init__(self, batch: Batch, connection: psycopg.Connection | None) -> None:
        self.batch = batch
        self._connection = connection
        self._token: contextvars.Token[uuid.UUID | None] | None = None

    def __enter__(self) -> Batch:
        if not self.batch._persisted:
            collected = _bulk()
            if collected is None:
                self.batch.save(connection=self._connection)
            else:
                collected.on_write.append(self._save_in)
        self._token = current_batch_id.set(self.batch.id)
        return self.batch

    def _save_in(self, conn: psycopg.Connection) -> list[uuid.UUID]:
        from goodjob_mp.db.job_store import utcnow

        store.insert_new(conn, self.batch._new_row(), utcnow())
        self.batch._persisted = True
        return []

    def __exit__(self, *exc: Any) -> None:
        if self._token is not None:
            current_batch_id.reset(self._token)


def _bulk() -> Any:
    from goodjob_mp import enqueue

    return enqueue._bulk.get()


@contextlib.contextmanager
def _connection(explicit: psycopg.Connection | None) -> Iterator[psycopg.Connection]:
    from goodjob_mp import enqueue

    with enqueue._writing(explicit) as conn:
        yield conn


# --- completion ----------------------------------------------------------------------------


def callback_row(batch: BatchRow, job_class: str, event: str, now: dt.datetime) -> NewJob:
    """The row of one callback job, as GoodJob's ``Batch.within_thread(batch_callback_id:)
    { job_class.set(priority:, queue:).perform_later(batch, {event: :finish}) }`` writes it."""
    from goodjob_mp.enqueue import new_row
    from goodjob_mp.jobs import DEFAULT_QUEUE, EnqueueOptions, _registry

    python_job = _registry.get(job_class)
    defaults = python_job.default_options() if python_job is not None else EnqueueOptions()
    queue_name = batch.callback_queue_name or defaults.queue or DEFAULT_QUEUE
    priority = batch.callback_priority if batch.callback_priority is not None else defaults.priority
    arguments = [
        {"_aj_globalid": global_id(batch.id).uri},
        {"event": {"_aj_serialized": _SYMBOL, "value": event}, "_aj_symbol_keys": ["event"]},
    ]
    return new_row(
        job_class,
        queue_name,
        priority,
        arguments,
        now,
        None,
        defaults.labels,
        batch_callback_id=batch.id,
    )


def continue_discard_or_finish(
    conn: psycopg.Connection,
    batch_id: uuid.UUID,
    *,
    discarded: bool = False,
    locked: bool = True,
) -> list[uuid.UUID]:
    """Advance one batch (see the module docstring); the caller owns the transaction.

    ``discarded``: a job of this batch was discarded by the results being written. ``locked``
    False when the caller holds the advisory lock already. Returns the callback jobs enqueued.
    """
    if locked:
        row = store.lock(conn, batch_id)
    else:
        with conn.cursor(row_factory=psycopg.rows.class_row(BatchRow)) as cur:
            row = cur.execute(store.SELECT_FOR_UPDATE, (batch_id,)).fetchone()
    if row is None:
        return []  # a batch GoodJob's cleanup removed, or a dangling id: nothing to advance
    jobs_left, callbacks_left = store.unfinished(conn, [batch_id])[batch_id]
    return _advance(conn, row, discarded, jobs_left, callbacks_left)


def _advance(
    conn: psycopg.Connection, row: BatchRow, discarded: bool, jobs_left: bool, callbacks_left: bool
) -> list[uuid.UUID]:
    """The three steps, on a locked row and what was unfinished once the lock was held."""
    from goodjob_mp.db.job_store import insert_job, utcnow

    batch_id = row.id
    now = utcnow()
    enqueued: list[uuid.UUID] = []

    def callback(job_class: str | None, event: str) -> None:
        if job_class:
            new = callback_row(row, job_class, event, now)
            insert_job(conn, new)
            enqueued.append(new.id)

    if discarded and row.discarded_at is None:
        store.mark(conn, batch_id, "discarded_at", now)
        row.discarded_at = now
        callback(row.on_discard, "discard")
    if row.enqueued_at is not None and row.jobs_finished_at is None and not jobs_left:
        store.mark(conn, batch_id, "jobs_finished_at", now)
        row.jobs_finished_at = now
        if row.discarded_at is None:
            callback(row.on_success, "success")
        callback(row.on_finish, "finish")
    # Callbacks enqueued just now are unfinished too.
    if (
        row.finished_at is None
        and row.jobs_finished_at is not None
        and not (callbacks_left or enqueued)
    ):
        store.mark(conn, batch_id, "finished_at", now)
    return enqueued


def after_finish(conn: psycopg.Connection, results: Sequence[JobResult]) -> None:
    """The finish hook: advance every batch whose jobs or callbacks these results finished,
    in batch id order (two processes locking several batches never deadlock)."""
    touched: dict[uuid.UUID, bool] = {}
    for r in results:
        if not r.finished:
            continue  # a retry is not an end: the job stays unfinished
        if r.batch_id is not None:
            # GoodJob's test: finished with an error (discarded, or handled by rescue_from).
            discarded = r.error is not None
            touched[r.batch_id] = touched.get(r.batch_id, False) or discarded
        if r.batch_callback_id is not None:
            touched.setdefault(r.batch_callback_id, False)
    if not touched:
        return
    ids = sorted(touched)
    rows = store.lock_many(conn, ids)  # a batch cleanup removed is left out
    left = store.unfinished(conn, list(rows)) if rows else {}
    enqueued: list[uuid.UUID] = []
    for batch_id in ids:
        if batch_id in rows:
            enqueued += _advance(conn, rows[batch_id], touched[batch_id], *left[batch_id])
    if enqueued:
        _queue_inline(enqueued)


def _wants(results: Sequence[JobResult]) -> bool:
    return any(r.batch_id is not None or r.batch_callback_id is not None for r in results)


after_finish.wants = _wants  # type: ignore[attr-defined]


def _inline_mode() -> bool:
    from goodjob_mp.config import current_settings

    return current_settings().execution_mode == "inline"


def _queue_inline(job_ids: list[uuid.UUID]) -> None:
    """Inside an inline perform, callbacks run after it in the same call (GoodJob's
    InlineBuffer); a worker leaves them to the queue."""
    from goodjob_mp import inline

    if _inline_mode() and getattr(inline._local, "pending", None) is not None:
        inline.perform_enqueued(job_ids)


def _perform_inline(job_ids: list[uuid.UUID]) -> int:
    """Inline mode: perform the callbacks just committed; how many ran."""
    if job_ids and _inline_mode():
        from goodjob_mp import inline

        return inline.perform_enqueued(job_ids)
    return 0


def batch_of_job(job_id: str | uuid.UUID | None) -> Batch | None:
    """The batch of the job with this id (one indexed read), or None."""
    if job_id is None:
        return None
    with _connection(None) as conn:
        row = conn.execute(store.BATCH_OF_JOB, (uuid.UUID(str(job_id)),)).fetchone()
    return _LazyBatch(row[0]) if row and row[0] is not None else None


def locate_arguments(args: list[Any]) -> list[Any]:
    """A callback's GlobalID of a batch becomes that ``Batch`` (read lazily: only a callback
    that looks at it pays the query)."""
    return [
        _LazyBatch(uuid.UUID(a.model_id))
        if isinstance(a, GlobalID) and a.model_name == GLOBALID_MODEL
        else a
        for a in args
    ]


class _LazyBatch(Batch):
    def __init__(self, batch_id: uuid.UUID) -> None:  # noqa: D107
        self.id = batch_id
        self._tokens, self._deferred = [], []
        self._loaded = False
        self._persisted = True

    def __getattr__(self, name: str) -> Any:
        # Only attributes _load sets are missing before the first read.
        if name.startswith("__") or self.__dict__.get("_loaded", True):
            raise AttributeError(name)
        self._loaded = True
        self.reload()
        return getattr(self, name)
