"""Rows and jobs for the dashboard tests: jobs in every state written as SQL, GoodJob's captured
rows, a job that is discarded on its first run and succeeds when retried."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

import goodjob_mp as gj
from goodjob_mp.db.job_store import utcnow
from tests.reference import REFERENCE_DIR

NOW = dt.datetime(2026, 12, 1, 12, 0, 0)
TABLES = ("good_jobs", "good_job_executions", "good_job_processes", "good_job_settings")


class GoneOnFirstRun(Exception):
    pass


class DiscardedOnce(gj.Job):
    """Discarded on its first run; a retry from the dashboard (one more execution) succeeds."""

    queue_name = "dashboard"
    discard_on = [GoneOnFirstRun]

    def perform(self, tag: str) -> None:
        if self.executions <= 1:
            raise GoneOnFirstRun(f"{tag}: not there yet (execution {self.executions})")


@gj.job(queue="dashboard")
def cron_tick() -> None:
    pass


def make_job(
    conn: psycopg.Connection, state: str, now: dt.datetime = NOW, **cols: Any
) -> uuid.UUID:
    """One good_jobs row in ``state`` as GoodJob defines it (relative to ``now``)."""
    job_id = cols.pop("id", None) or uuid.uuid4()
    minute = dt.timedelta(minutes=1)
    executions = cols.pop("executions", 0)
    row: dict[str, Any] = {
        "id": job_id,
        "active_job_id": job_id,
        "job_class": "ExampleJob",
        "queue_name": "default",
        "priority": 0,
        "created_at": now - 10 * minute,
        "scheduled_at": now - 10 * minute,
        "performed_at": None,
        "finished_at": None,
        "error": None,
        "error_event": None,
        "labels": None,
        "locked_by_id": None,
        "executions_count": 0,
    }
    if state == "scheduled":
        row["scheduled_at"] = now + 10 * minute
    elif state == "retried":
        row.update(scheduled_at=now + minute, error="TransientError: again", error_event=3)
        executions = max(executions, 2)
    elif state == "running":
        row.update(performed_at=now - minute, locked_by_id=uuid.uuid4(), executions_count=1)
    elif state == "succeeded":
        row.update(performed_at=now - 2 * minute, finished_at=now - minute, executions_count=1)
    elif state == "discarded":
        row.update(
            performed_at=now - 2 * minute,
            finished_at=now - minute,
            error="GoneError: record 7 no longer exists",
            error_event=5,
            executions_count=1,
        )
        executions = max(executions, 1)
    elif state != "queued":
        raise ValueError(state)
    row.update(cols)
    arguments = row.pop("arguments", [1, "two"])
    row["serialized_params"] = Jsonb(
        {
            "job_class": row["job_class"],
            "job_id": str(job_id),
            "queue_name": row["queue_name"],
            "priority": row["priority"],
            "arguments": arguments,
            "executions": executions,
            "exception_executions": {},
        }
    )
    row["updated_at"] = row["created_at"]
    columns = ", ".join(row)
    values = ", ".join(f"%({k})s" for k in row)
    conn.execute(f"INSERT INTO good_jobs ({columns}) VALUES ({values})", row)
    return job_id


def add_execution(
    conn: psycopg.Connection,
    job_id: uuid.UUID,
    *,
    started: dt.datetime,
    seconds: float,
    error: str | None = None,
    event: int | None = None,
    backtrace: list[str] | None = None,
    job_class: str = "ExampleJob",
    queue_name: str = "default",
) -> None:
    ended = started + dt.timedelta(seconds=seconds)
    conn.execute(
        """INSERT INTO good_job_executions (active_job_id, created_at, updated_at, job_class,
            queue_name, scheduled_at, finished_at, error, error_event, error_backtrace, duration)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (
            job_id,
            started,
            ended,
            job_class,
            queue_name,
            started,
            ended,
            error,
            event,
            backtrace,
            dt.timedelta(seconds=seconds),
        ),
    )


def load_goodjob_reference(conn: psycopg.Connection) -> None:
    """The rows the real Ruby GoodJob wrote, into our tables as they are."""
    for table in (*TABLES, "good_job_batches"):
        path = REFERENCE_DIR / f"{table}.jsonl"
        for line in path.read_text().splitlines():
            if line.strip():
                conn.execute(
                    f"INSERT INTO {table} SELECT * FROM jsonb_populate_record(NULL::{table}, %s)",
                    (Jsonb(json.loads(line)),),
                )


def now() -> dt.datetime:
    return utcnow()
