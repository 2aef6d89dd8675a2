"""The thin I/O of concurrency controls: the enqueue hook and the perform check, joining the
policy (``features/concurrency.py``) to its SQL (``db/concurrency_store.py``).

Installed by the first job class defined with a concurrency config (``install()``); before
that, no hook exists and enqueue pays nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

import psycopg

from goodjob_mp import features, jobs
from goodjob_mp.db import concurrency_store
from goodjob_mp.db.connection import connect
from goodjob_mp.features.concurrency import Concurrency, EnqueueRule
from goodjob_mp.serialization import deserialize_arguments

if TYPE_CHECKING:
    from goodjob_mp.db.job_store import ClaimedJob, NewJob

log = logging.getLogger("goodjob_mp.concurrency")

_installed = False
_install_lock = threading.Lock()
_checks = concurrency_store.CheckConnection(lambda: concurrency_store.check_session(connect()))


def install() -> None:
    """Register the enqueue hook (once per process)."""
    global _installed
    with _install_lock:
        if not _installed:
            features.add_enqueue_hook(enqueue_hook, needs_transaction)
            _installed = True


def config_of(job_class: str | None) -> Concurrency | None:
    job_cls = jobs._registry.get(job_class or "")
    return getattr(job_cls, "_concurrency", None) if job_cls is not None else None


def needs_transaction(rows: Sequence[NewJob]) -> bool:
    for row in rows:
        config = config_of(row.job_class)
        if config is not None and config.enqueue_rule is not None:
            return True
    return False


def enqueue_hook(conn: psycopg.Connection, rows: list[NewJob]) -> list[NewJob]:
    """Store each new job's key; leave out the rows over an enqueue limit or throttle."""
    from goodjob_mp.db.job_store import utcnow

    rules: list[EnqueueRule | None] = []
    for row in rows:
        config = config_of(row.job_class)
        if config is None:
            rules.append(None)
            continue
        if row.concurrency_key is None:
            # The key function sees the arguments as perform will (after the round trip).
            args, kwargs = deserialize_arguments(row.serialized_params.get("arguments") or [])
            row.concurrency_key = config.key_for(row.job_class, args, kwargs)
        rules.append(config.enqueue_rule if row.concurrency_key else None)
    if not any(rules):
        return rows
    refusals = concurrency_store.enqueue_refusals(conn, rows, rules, utcnow())
    kept = []
    for row, refusal in zip(rows, refusals, strict=True):
        if refusal is None:
            kept.append(row)
            continue
        row.refused = refusal
        log.info(
            "not enqueued: %s with concurrency key %r is over its enqueue %s",
            row.job_class,
            row.concurrency_key,
            refusal,
        )
    return kept


# It reads the arguments and writes only the concurrency_key column: the JSON text enqueue built
# for serialized_params stays valid (features.params_may_change).
enqueue_hook.keeps_serialized_params = True  # type: ignore[attr-defined]
# Only jobs of classes with a concurrency config concern it (features.hooks_want).
enqueue_hook.wants_row = lambda row: config_of(row.job_class) is not None  # type: ignore[attr-defined]


def check_perform(job: ClaimedJob, config: Concurrency) -> str | None:
    rule = config.perform_rule
    if rule is None:
        return None
    from goodjob_mp.db.job_store import utcnow

    return _checks.run(lambda conn: concurrency_store.admit(conn, job.id, rule, utcnow()))


def done_performing(job: ClaimedJob, config: Concurrency) -> None:
    """The attempt has ended: free its place now, not when the completer writes its result
    (a thread that takes the next job of the key at once must not find it still running)."""
    rule = config.perform_rule
    # A throttle counts the attempt until its execution row is written: keep the mark then.
    if rule is None or rule.limit is None or rule.throttle is not None:
        return
    try:
        _checks.run(lambda conn: concurrency_store.release(conn, job.id))
    except psycopg.Error as exc:  # the result write ends the attempt for the count anyway
        log.warning("could not free the concurrency place of job %s: %s", job.id, exc)


def close() -> None:
    """Close this process's check connection (a worker's shutdown; tests)."""
    _checks.close()
