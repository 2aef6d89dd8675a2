"""Read one job: ``goodjob_mp.find(job_id)`` and the dashboard's job page.

Owns the read-only SQL on ``good_jobs`` / ``good_job_executions`` for one job and the job's
state as GoodJob names it (``GoodJob::Reportable#status``). Never writes, never locks: a job
being performed is read as it is, without waiting for it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import psycopg

JobState = Literal["scheduled", "queued", "running", "retried", "succeeded", "discarded"]

FIND_JOB = """
SELECT id, job_class, queue_name, priority, scheduled_at, created_at, performed_at, finished_at,
    error, error_event, executions_count, labels, cron_key, serialized_params,
    now() AT TIME ZONE 'UTC', active_job_id
FROM good_jobs WHERE id = %(id)s OR active_job_id = %(id)s
ORDER BY (id = %(id)s) DESC LIMIT 1
"""

FIND_EXECUTIONS = """
SELECT created_at, finished_at, duration, error, error_event, error_backtrace, process_id,
    queue_name
FROM good_job_executions WHERE active_job_id = %(active_job_id)s
ORDER BY created_at, id
"""


@dataclass(frozen=True)
class JobExecution:
    """One attempt (a ``good_job_executions`` row). Times are naive UTC."""

    started_at: dt.datetime
    finished_at: dt.datetime | None
    duration: dt.timedelta | None
    error: str | None
    error_event: int | None  # 0 interrupted … 5 discarded, as GoodJob
    backtrace: tuple[str, ...]
    process_id: uuid.UUID | None
    queue_name: str | None


@dataclass(frozen=True)
class JobInfo:
    """What ``find`` knows about one job. Times are naive UTC, as stored."""

    id: uuid.UUID
    job_class: str | None
    queue_name: str | None
    priority: int | None
    state: JobState
    scheduled_at: dt.datetime | None
    created_at: dt.datetime
    performed_at: dt.datetime | None
    finished_at: dt.datetime | None
    error: str | None
    error_event: int | None
    executions_count: int
    labels: tuple[str, ...]
    cron_key: str | None
    arguments: list[Any]
    executions: tuple[JobExecution, ...]


def job_state(
    *,
    finished_at: dt.datetime | None,
    performed_at: dt.datetime | None,
    scheduled_at: dt.datetime | None,
    created_at: dt.datetime,
    error: str | None,
    now: dt.datetime,
) -> JobState:
    """GoodJob's status rule, so that both dashboards agree on every row."""
    if finished_at is not None:
        return "discarded" if error else "succeeded"
    if performed_at is not None:
        return "running"
    if (scheduled_at or created_at) <= now:
        return "queued"
    return "retried" if error else "scheduled"


def find_job(conn: psycopg.Connection, job_id: uuid.UUID | str) -> JobInfo | None:
    """The job with this id (or Active Job id), with its executions; None if there is none."""
    try:
        key = job_id if isinstance(job_id, uuid.UUID) else uuid.UUID(str(job_id))
    except ValueError:
        return None  # not a job id at all; nothing can have it
    row = conn.execute(FIND_JOB, {"id": key}).fetchone()
    if row is None:
        return None
    (id_, job_class, queue, priority, scheduled, created, performed, finished) = row[:8]
    error, event, count, labels, cron_key, params, now, active_job_id = row[8:]
    executions = tuple(
        JobExecution(e[0], e[1], e[2], e[3], e[4], tuple(e[5] or ()), e[6], e[7])
        for e in conn.execute(FIND_EXECUTIONS, {"active_job_id": active_job_id or id_}).fetchall()
    )
    arguments = params.get("arguments") if isinstance(params, dict) else None
    return JobInfo(
        id=id_,
        job_class=job_class,
        queue_name=queue,
        priority=priority,
        state=job_state(
            finished_at=finished,
            performed_at=performed,
            scheduled_at=scheduled,
            created_at=created,
            error=error,
            now=now,
        ),
        scheduled_at=scheduled,
        created_at=created,
        performed_at=performed,
        finished_at=finished,
        error=error,
        error_event=event,
        executions_count=count or 0,
        labels=tuple(labels or ()),
        cron_key=cron_key,
        arguments=arguments if isinstance(arguments, list) else [],
        executions=executions,
    )


def find(
    job_id: uuid.UUID | str, *, connection: psycopg.Connection | None = None
) -> JobInfo | None:
    """``goodjob_mp.find(job_id)``: the job's state, error, executions and run time, or None.

    Reads on ``connection`` if given (e.g. inside your transaction), else on this thread's own.
    """
    from goodjob_mp.db.connection import thread_connection

    return find_job(connection or thread_connection(), job_id)
