"""``gj.pause``, ``gj.unpause``, ``gj.pauses``: ``GoodJob::Setting.pause`` and co. in Python.

Each names exactly one of ``queue``, ``job_class`` (the stored class name, e.g. a Ruby class or a
Python job's ``job_class_name``) or ``label``. They use this thread's connection, or the one given.
"""

from __future__ import annotations

import psycopg

from goodjob_mp.db import settings_store
from goodjob_mp.db.connection import thread_connection
from goodjob_mp.features.pauses import PauseError, Pauses, pause_target

__all__ = ["PauseError", "Pauses", "pause", "pauses", "unpause"]


def pause(
    queue: str | None = None,
    job_class: str | None = None,
    label: str | None = None,
    *,
    connection: psycopg.Connection | None = None,
) -> bool:
    """Stop claiming jobs of this queue, class or label (running jobs finish). True if it was
    not paused before. Raises PauseError unless exactly one is given."""
    kind, name = pause_target(queue, job_class, label)
    return settings_store.pause(connection or thread_connection(), kind, name)


def unpause(
    queue: str | None = None,
    job_class: str | None = None,
    label: str | None = None,
    *,
    connection: psycopg.Connection | None = None,
) -> bool:
    """Claim them again, and wake idle workers now. True if it was paused."""
    kind, name = pause_target(queue, job_class, label)
    return settings_store.unpause(connection or thread_connection(), kind, name)


def pauses(*, connection: psycopg.Connection | None = None) -> Pauses:
    """What is paused now: ``.queues``, ``.job_classes``, ``.labels`` (tuples of names)."""
    return settings_store.read_pauses(connection or thread_connection())
