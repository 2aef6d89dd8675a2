"""Features above the job store: one seam for the claim, one for enqueue, one after finish.

Concurrency limits, pauses, batches and the known-classes filter all change which rows are
claimed, which rows are written, or what happens when a result is written. They live here, each
in its own module, and reach the store only through these three points; the worker and the
store never grow a branch per feature.

- **Claim**: every entry of ``CLAIM_FEATURES`` is a pure function ``(settings, selector) ->
  ClaimCondition | None``. The store ANDs each condition into the claim's candidate ``WHERE``
  (composed with ``psycopg.sql``, once per worker), and calls its ``params()`` before every
  claim for fresh bound values. A condition must be servable by an index (see
  ``db/migrations/0002``) and never runs SQL itself.
- **Enqueue**: ``before_enqueue(conn, rows)`` runs every registered hook on each batch of new rows
  (one ``perform_later`` or one ``bulk()``) before it is written, in the enqueuing transaction;
  a hook returns the rows to write (a refused row is simply left out).
- **Finish**: ``after_finish(conn, results)`` runs every registered hook inside the transaction
  that writes a batch of results.
- **Perform**: ``with performing(job, config) as refusal:`` wraps an attempt in the execution
  path, only for jobs of classes that have a concurrency config (``Job._concurrency``): it says
  whether the job may run now, and frees its place when the attempt ends, before its result is
  written (docs/concurrency.md). Other jobs never reach it.

An enqueue hook that must hold locks until its rows are written registers a predicate with
``add_enqueue_hook(hook, needs_transaction=...)``: ``enqueue_transaction(conn, rows)`` then opens
a transaction around the hooks and the insert when the connection has none and a predicate asks
for one (else nothing, so other enqueues keep their single autocommit statement).

With no hook registered, enqueue and finish pay one empty-tuple test each. Batches register
the one finish hook that is always on (features/batches.py).

Adding a claim feature (e.g. pauses) is a module with one function plus one line below::

    # features/pauses.py
    def claim_condition(settings, selector):
        return ClaimCondition(sql.SQL("NOT (queue_name = ANY(%(paused_queues)s))"),
                              lambda: {"paused_queues": current_pauses().queues})

    CLAIM_FEATURES = [known_classes.claim_condition, pauses.claim_condition]
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from psycopg import sql

if TYPE_CHECKING:
    import psycopg

    from goodjob_mp.config import Settings
    from goodjob_mp.db.job_store import ClaimedJob, JobResult, NewJob
    from goodjob_mp.features.concurrency import Concurrency
    from goodjob_mp.queues import QueueSelector


@dataclass(frozen=True)
class ClaimCondition:
    """A boolean SQL expression over ``good_jobs`` columns (unqualified) that a candidate row
    must satisfy, and the named parameters it binds (fresh for every claim)."""

    name: str
    sql: sql.Composable
    params: Callable[[], Mapping[str, Any]] | None = None


ClaimFeature = Callable[["Settings", "QueueSelector"], "ClaimCondition | None"]
EnqueueHook = Callable[["psycopg.Connection", "list[NewJob]"], "list[NewJob]"]
FinishHook = Callable[["psycopg.Connection", "Sequence[JobResult]"], None]

# Imported after the types above: the feature modules use them.
from goodjob_mp.features import batches, known_classes  # noqa: E402

CLAIM_FEATURES: list[ClaimFeature] = [known_classes.claim_condition]

enqueue_hooks: tuple[EnqueueHook, ...] = ()
enqueue_locking: tuple[Callable[[Sequence[NewJob]], bool], ...] = ()
# Batches are always on: any job may belong to a batch (one made by a Rails GoodJob too). Its
# hook wants only results of batch jobs (batch ids from the claim), so a write with none stays
# one autocommit statement.
finish_hooks: tuple[FinishHook, ...] = (batches.after_finish,)


def claim_conditions(settings: Settings, selector: QueueSelector) -> list[ClaimCondition]:
    """The conditions every active feature adds to this pool's claim."""
    found = (feature(settings, selector) for feature in CLAIM_FEATURES)
    return [condition for condition in found if condition is not None]


def add_enqueue_hook(
    hook: EnqueueHook, needs_transaction: Callable[[Sequence[NewJob]], bool] | None = None
) -> Callable[[], None]:
    """Run ``hook(conn, rows) -> rows`` on every batch of new rows; returns a remover.
    ``needs_transaction(rows)``: whether the hook must run in the rows' own transaction."""
    global enqueue_hooks, enqueue_locking
    enqueue_hooks = (*enqueue_hooks, hook)
    if needs_transaction is not None:
        enqueue_locking = (*enqueue_locking, needs_transaction)

    def remove() -> None:
        global enqueue_hooks, enqueue_locking
        enqueue_hooks = tuple(h for h in enqueue_hooks if h is not hook)
        enqueue_locking = tuple(p for p in enqueue_locking if p is not needs_transaction)

    return remove


def add_finish_hook(hook: FinishHook) -> Callable[[], None]:
    """Run ``hook(conn, results)`` in the transaction that writes each result batch."""
    global finish_hooks
    finish_hooks = (*finish_hooks, hook)

    def remove() -> None:
        global finish_hooks
        finish_hooks = tuple(h for h in finish_hooks if h is not hook)

    return remove


def params_may_change() -> bool:
    """Whether an enqueue hook may change ``serialized_params`` (then the JSON text enqueue
    built with the dict is stale). A hook that only reads it says so with a true
    ``keeps_serialized_params`` attribute."""
    return any(not getattr(hook, "keeps_serialized_params", False) for hook in enqueue_hooks)


def hooks_want(row: NewJob) -> bool:
    """Whether an enqueue hook must see ``row`` before it is written: a hook with a
    ``wants_row(row)`` attribute is asked, one without sees every row. A streamed ``bulk()``
    writes the other rows as they come, and holds these for ``before_enqueue`` in chunks."""
    for hook in enqueue_hooks:
        wants = getattr(hook, "wants_row", None)
        if wants is None or wants(row):
            return True
    return False


def before_enqueue(conn: psycopg.Connection, rows: list[NewJob]) -> list[NewJob]:
    for hook in enqueue_hooks:
        rows = hook(conn, rows)
    return rows


def finish_wanted(results: Sequence[JobResult]) -> bool:
    """Whether any finish hook needs these results: a hook with a ``wants(results)`` attribute
    is asked, one without always runs."""
    for hook in finish_hooks:
        wants = getattr(hook, "wants", None)
        if wants is None or wants(results):
            return True
    return False


@contextlib.contextmanager
def enqueue_transaction(conn: psycopg.Connection, rows: Sequence[NewJob]) -> Iterator[None]:
    """A transaction around the enqueue hooks and the insert, when a hook needs one and the
    connection is not in a transaction already (a caller's transaction is used as it is)."""
    import psycopg

    idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    if idle and any(needs(rows) for needs in enqueue_locking):
        with conn.transaction():
            yield
    else:
        yield


def admit_perform(job: ClaimedJob, config: Concurrency) -> str | None:
    """The perform seam, before the body: None when ``job`` may run now (it then counts as
    running until ``end_perform``), else why not ("limit", "throttle"); the execution path then
    records GoodJob's ConcurrencyExceededError retry instead of running it."""
    from goodjob_mp.features import concurrency_io

    return concurrency_io.check_perform(job, config)


def end_perform(job: ClaimedJob, config: Concurrency) -> None:
    """The admitted attempt's body has ended (whatever its outcome): free its place."""
    from goodjob_mp.features import concurrency_io

    concurrency_io.done_performing(job, config)


def after_finish(conn: psycopg.Connection, results: Sequence[JobResult]) -> None:
    for hook in finish_hooks:
        hook(conn, results)
