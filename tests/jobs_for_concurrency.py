"""Job classes with concurrency configs, for tests/test_concurrency.py (and its supervisors)."""

from __future__ import annotations

import os
import time

import goodjob_mp as gj
from goodjob_mp.db.connection import thread_connection

LEDGER_TABLE = "concurrency_ledger"
LEDGER_DDL = f"""
CREATE TABLE IF NOT EXISTS {LEDGER_TABLE} (
    tag text NOT NULL, pid integer NOT NULL,
    started_at timestamptz NOT NULL, ended_at timestamptz)
"""


class Ledgered(gj.Job):
    """Records its start and end (database clock) in the ledger; two may run at once per key.
    A short retry wait keeps the test quick (GoodJob's back-off is tested on its own)."""

    concurrency = gj.Concurrency(perform_limit=2, key=lambda tag, seconds: "ledger", retry_wait=0.2)

    def perform(self, tag: str, seconds: float) -> None:
        conn = thread_connection()
        conn.execute(
            f"INSERT INTO {LEDGER_TABLE} (tag, pid, started_at) VALUES (%s, %s, clock_timestamp())",
            (tag, os.getpid()),
        )
        time.sleep(seconds)
        conn.execute(
            f"UPDATE {LEDGER_TABLE} SET ended_at = clock_timestamp() WHERE tag = %s AND pid = %s "
            "AND ended_at IS NULL",
            (tag, os.getpid()),
        )


class Sync(gj.Job):
    concurrency = gj.Concurrency(perform_limit=1, key=lambda account_id: f"sync-{account_id}")

    def perform(self, account_id: int) -> None:
        pass


@gj.job(concurrency=gj.Concurrency(enqueue_limit=2, key=lambda name: f"report-{name}"))
def report(name: str) -> None:
    pass


@gj.job(concurrency=gj.Concurrency(total_limit=1, key="total"))
def totalled() -> None:
    pass


@gj.job(concurrency=gj.Concurrency(enqueue_throttle=(2, 60), key="throttled"))
def enqueue_throttled() -> None:
    pass


@gj.job(concurrency=gj.Concurrency(perform_throttle=(2, 60), key="perform-throttled"))
def perform_throttled() -> None:
    pass
