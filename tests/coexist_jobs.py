"""The Python side of the co-existence test (tests/test_coexistence.py): the supervisor runs with
``--app tests.coexist_jobs``.

Classes that answer to the names the Rails app in tests/ruby/app.rb defines, so either side can
perform their jobs, and one only Python knows. Each perform writes one ledger row, as the Ruby
jobs do, with side 'python'. ``RubyOnlyJob`` is deliberately not defined here.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time

import psycopg

import goodjob_mp as gj

LEDGER_TABLE = os.environ.get("GJ_LEDGER_TABLE", "coexist_ledger")
_INSERT = (
    f"INSERT INTO {LEDGER_TABLE} (active_job_id, job_class, arg, side, pid, started_at, "
    "performed_at) VALUES (%s, %s, %s, 'python', %s, %s, clock_timestamp())"
)
_local = threading.local()


def _ledger() -> psycopg.Connection:
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed or getattr(_local, "pid", None) != os.getpid():
        url = os.environ.get("GOOD_JOB_DATABASE_URL") or os.environ["DATABASE_URL"]
        conn = _local.conn = psycopg.connect(url, autocommit=True)
        _local.pid = os.getpid()
    return conn


class _Ledgered(gj.Job):
    queue_name = "shared"

    def perform(self, n: int, sleep_seconds: float = 0) -> None:
        started_at = dt.datetime.now(dt.timezone.utc)
        if sleep_seconds:
            time.sleep(float(sleep_seconds))
        name = type(self).job_class_name
        _ledger().execute(_INSERT, (self.job_id, name, n, os.getpid(), started_at))


class RubyLedgerJob(_Ledgered):
    job_class_name = "RubyLedgerJob"


class RubyPausableJob(_Ledgered):
    job_class_name = "RubyPausableJob"


class RubyLabeledJob(_Ledgered):
    job_class_name = "RubyLabeledJob"


class PythonOnlyJob(_Ledgered):
    """No Rails class has this name: its jobs go to a queue only Python serves (GoodJob would
    fail a job whose class it cannot constantize, with NameError, rather than leave it)."""

    queue_name = "python-only"
    job_class_name = "PythonOnlyJob"
