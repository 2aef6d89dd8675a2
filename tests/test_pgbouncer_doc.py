"""What docs/pgbouncer.md says, checked against a real worker: the worker's connections hold
session state (LISTEN and a session advisory lock), so they must not go through transaction
pooling; GOOD_JOB_DATABASE_URL wins over DATABASE_URL, so workers can be given a direct URL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from goodjob_mp.config import load_settings
from goodjob_mp.worker.worker import Worker
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent
OTHERS = "pid <> pg_backend_pid() AND datname = current_database()"


def test_a_worker_holds_session_state_a_transaction_pool_would_lose(db):
    worker = Worker(load_settings({"max_threads": 1, "queues": "pgbouncer_doc"})).start()
    try:
        assert wait_for(lambda: worker.listener_connected, 30)
        listening = db.execute(
            f"SELECT count(*) FROM pg_stat_activity WHERE {OTHERS} AND query ILIKE 'LISTEN%%'"
        ).fetchone()[0]
        # Idle in no transaction, yet holding a lock: a session advisory lock.
        session_locks = db.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND a.state = 'idle'"
            " AND a.pid <> pg_backend_pid() AND a.datname = current_database()"
        ).fetchone()[0]
    finally:
        assert worker.shutdown(10)
    assert listening == 1
    assert session_locks >= 1


def test_good_job_database_url_wins_over_database_url(database_url):
    code = "from goodjob_mp.db.connection import database_url; print(database_url())"
    env = {
        **os.environ,
        "GOOD_JOB_DATABASE_URL": database_url,
        "DATABASE_URL": "postgresql://x@pgbouncer:6432/app",
    }
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == database_url
