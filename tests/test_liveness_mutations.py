"""Tests that fail when liveness is broken in ways nothing else would notice (issue 16.5):
the sweep ignoring the advisory lock (a live but stalled process is robbed), the sweep
ignoring heartbeat age, and a process not re-registering after its row was deleted."""

from __future__ import annotations

import datetime as dt
import uuid

import psycopg
import pytest

from goodjob_mp.config import load_settings
from goodjob_mp.db import processes
from goodjob_mp.db.job_store import utcnow
from goodjob_mp.worker.worker import Worker
from tests import jobs_for_tests as J
from tests.test_registry_lock import lock_holders
from tests.waiting import wait_for


@pytest.fixture()
def records(tmp_path, monkeypatch):
    monkeypatch.setenv(J.RECORD_DIR_ENV, str(tmp_path))
    return tmp_path


def age_row(db, process_id: uuid.UUID, seconds: float) -> None:
    db.execute(
        "UPDATE good_job_processes SET updated_at = %s WHERE id = %s",
        (utcnow() - dt.timedelta(seconds=seconds), process_id),
    )


def row_of(db, process_id: uuid.UUID):
    return db.execute(
        "SELECT lock_type, updated_at FROM good_job_processes WHERE id = %s", (process_id,)
    ).fetchone()


def test_a_live_but_stalled_worker_is_not_robbed(db, records, registry):
    """Its heartbeat is an hour old (stalled), but its session holds the lock: alive."""
    worker = Worker(load_settings({"max_threads": 1, "heartbeat_interval": 3600.0})).start()
    try:
        job = J.sleepy.perform_later("stalled", 3.0)
        assert wait_for(lambda: J.lines(records, "started") == ["stalled"])
        age_row(db, worker.process_id, 3600)
        assert registry.sweep(20.0) == 0
        assert row_of(db, worker.process_id) is not None
        owner = db.execute("SELECT locked_by_id FROM good_jobs WHERE id = %s", (job.id,))
        assert owner.fetchone()[0] == worker.process_id
    finally:
        assert worker.shutdown(15)
    assert J.lines(records, "started") == ["stalled"]  # never handed to anyone else


def test_a_process_whose_lock_is_gone_but_heartbeat_is_fresh_is_not_robbed(
    db, database_url, registry
):
    """E.g. reconnecting after a blip: the lock went with the old session."""
    process_id = uuid.uuid4()
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert processes.register_process(conn, process_id, {})
    # The server ends the session (and drops its lock) a moment after the client closed it.
    assert wait_for(lambda: lock_holders(db, process_id) == [], 20)
    assert registry.sweep(20.0) == 0
    assert row_of(db, process_id) is not None
    age_row(db, process_id, 21)
    assert registry.sweep(20.0) == 0  # nothing locked by it, but the row goes
    assert row_of(db, process_id) is None


def test_a_worker_re_registers_after_its_row_is_deleted(db, records):
    worker = Worker(load_settings({"max_threads": 1, "heartbeat_interval": 0.2})).start()
    try:
        assert row_of(db, worker.process_id) is not None
        # Another process judged it dead (or GoodJob's cleanup ran) and deleted the row; the
        # row's lock is still held by the worker's session.
        db.execute("DELETE FROM good_job_processes WHERE id = %s", (worker.process_id,))
        assert wait_for(lambda: row_of(db, worker.process_id) is not None, 20)
        assert row_of(db, worker.process_id)[0] == 0
        assert len(lock_holders(db, worker.process_id)) == 1
    finally:
        assert worker.shutdown(10)
    assert row_of(db, worker.process_id) is None
    assert lock_holders(db, worker.process_id) == []


def test_the_supervisor_re_registers_after_its_row_is_deleted(db, registry):
    db.execute("DELETE FROM good_job_processes WHERE id = %s", (registry.process_id,))
    registry.heartbeat()
    assert row_of(db, registry.process_id)[0] == 0
    assert lock_holders(db, registry.process_id) == [registry._conn.info.backend_pid]
