"""Bulk insert of ``good_jobs`` rows: COPY in text format, streamed, one NOTIFY per queue.

The lines are built here from text enqueue made already (ids, times, the envelope's JSON): a
line costs less than psycopg's binary ``write_row`` of the same row, and, unlike binary COPY,
lets the server store rows while the client builds more (see ``_SEND_AT``). ``JobCopier`` lets a
caller write a long stream of jobs inside one transaction, so memory stays flat however many
jobs a ``bulk()`` block enqueues; the NOTIFYs go last (one per queue, with its earliest start
time), delivered only if the transaction commits.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from goodjob_mp import features
from goodjob_mp.db.job_store import (
    INSERT_COLUMNS,
    NOTIFY,
    NOTIFY_CHANNEL,
    NewJob,
    forget_params_json,
    notify_payload,
)

COPY_JOBS = f"COPY good_jobs ({', '.join(INSERT_COLUMNS)}) FROM STDIN"
# Lines go to the server in pieces of about this size, as they are built: it parses each row as
# it arrives and stores them in batches of 64 kB of line text (or 1,000 rows), so it works while
# the next rows are built. (Binary COPY rows carry no line length: the server then batches 1,000
# rows, and did all the work of a 1,000-job block after its last row arrived.) 8 kB (libpq's
# own send size) left the server less behind at the block's end than 16, 32 or 64 kB did.
_SEND_AT = 8 * 1024
_NULL = "\\N"
# COPY text escapes; JSON text needs only the backslash (it escapes every control character).
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


@functools.lru_cache(maxsize=1024)
def _text(value: str) -> str:
    """A text field of a COPY line (job class and queue names: few, so cached)."""
    return value.translate(_ESCAPES)


def _optional(value: str | None) -> str:
    return _NULL if value is None else value.translate(_ESCAPES)


def _optional_time(value: dt.datetime | None) -> str:
    return _NULL if value is None else value.isoformat()


def _optional_id(value: uuid.UUID | None) -> str:
    return _NULL if value is None else str(value)


def _labels(labels: list[str] | None) -> str:
    if labels is None:
        return _NULL
    elements = ",".join(
        '"' + label.replace("\\", "\\\\").replace('"', '\\"') + '"' for label in labels
    )
    return ("{" + elements + "}").translate(_ESCAPES)


def copy_line(job: NewJob) -> str:
    """``job`` as one line of ``COPY_JOBS``'s text format, its columns in ``INSERT_COLUMNS``
    order; the ids and times enqueue already wrote as text are reused."""
    job_id = job.id_text or str(job.id)
    created = job.created_text or job.created_at.isoformat()
    scheduled = created if job.scheduled_at is job.created_at else job.scheduled_at.isoformat()
    params = job.params_text()
    if "\\" in params:
        params = params.replace("\\", "\\\\")
    if (
        job.labels is None
        and job.cron_key is None
        and job.batch_id is None
        and job.batch_callback_id is None
        and job.concurrency_key is None
    ):
        tail = _PLAIN_TAIL  # most jobs: every optional column null
    else:
        tail = "\t".join(
            (
                "",
                _labels(job.labels),
                _optional(job.cron_key),
                _optional_time(job.cron_at),
                _optional_id(job.batch_id),
                _optional_id(job.batch_callback_id),
                _optional(job.concurrency_key),
            )
        )
    return (
        f"{job_id}\t{job_id}\t{_text(job.job_class)}\t{_text(job.queue_name)}\t{job.priority:d}"
        f"\t{params}\t{scheduled}\t{created}\t{created}{tail}\n"
    )


_PLAIN_TAIL = "\t" + "\t".join([_NULL] * 6)


class JobCopier:
    """Writes jobs to ``good_jobs`` on ``conn`` with COPY; the caller owns the
    transaction, ends with ``notify()``, and enters the copier as a context manager inside that
    transaction so that an exception aborts an open COPY before the rollback.

    ``add(job)`` streams one job into a COPY left open between calls, so the server parses and
    indexes rows while the caller builds the next ones (a whole block's rows built first and
    sent after cost the sum of both, not the larger); only rows that no enqueue hook wants to
    see may go this way. ``write(jobs)`` runs the enqueue hooks on a chunk, then COPYs it."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.earliest: dict[str, dt.datetime] = {}
        self._open: contextlib.ExitStack | None = None
        self._send: Callable[[str], None] | None = None
        self._lines: list[str] = []
        self._size = 0

    def __enter__(self) -> JobCopier:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        self.end(exc)

    def add(self, job: NewJob) -> None:
        line = copy_line(job)
        self._lines.append(line)
        self._size += len(line)
        if self._size >= _SEND_AT:
            self._flush()
        seen = self.earliest.get(job.queue_name)
        if seen is None or job.scheduled_at < seen:
            self.earliest[job.queue_name] = job.scheduled_at

    def _flush(self) -> None:
        send = self._send or self._start()
        send("".join(self._lines))
        self._lines, self._size = [], 0

    def write(self, jobs: Sequence[NewJob]) -> Sequence[NewJob]:
        """COPY ``jobs`` after the enqueue hooks; returns the jobs written (a hook may refuse
        some). The COPY has ended when this returns."""
        self.end()
        if features.enqueue_hooks:
            jobs = features.before_enqueue(self.conn, list(jobs))
            if features.params_may_change():
                forget_params_json(jobs)
        for job in jobs:
            self.add(job)
        self.end()
        return jobs

    def end(self, exc: BaseException | None = None) -> None:
        """End the open COPY, if any (the server has every row when this returns); with
        ``exc``, abort it instead (the transaction must then roll back)."""
        if exc is None and self._lines:
            self._flush()
        self._lines, self._size = [], 0
        stack, self._open, self._send = self._open, None, None
        if stack is None:
            return
        if exc is None:
            stack.close()
        else:
            stack.__exit__(type(exc), exc, exc.__traceback__)

    def _start(self) -> Callable[[str], None]:
        with contextlib.ExitStack() as stack:
            cur = stack.enter_context(self.conn.cursor())
            copy = stack.enter_context(cur.copy(COPY_JOBS))
            self._open = stack.pop_all()
        self._send = copy.write
        return copy.write

    def notify(self) -> None:
        self.end()
        for queue_name, scheduled_at in self.earliest.items():
            self.conn.execute(NOTIFY, (NOTIFY_CHANNEL, notify_payload(queue_name, scheduled_at)))
        self.earliest = {}


def copy_jobs(conn: psycopg.Connection, jobs: Sequence[NewJob]) -> Sequence[NewJob]:
    """Write many jobs with one COPY and one NOTIFY per queue; the caller owns the transaction.
    Returns the jobs written (enqueue features may refuse some)."""
    with JobCopier(conn) as copier:
        written = copier.write(jobs)
        copier.notify()
    return written
