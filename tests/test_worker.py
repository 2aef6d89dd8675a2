"""The worker in this process (async mode): LISTEN/NOTIFY, cache, batches, shutdown hand-back."""

import os
import time
import uuid

import psycopg
import pytest

import goodjob_mp as gj
from goodjob_mp.config import load_settings
from goodjob_mp.db import job_store
from goodjob_mp.worker.worker import Worker
from tests import jobs_for_tests as J
from tests.waiting import wait_for


@pytest.fixture()
def records(tmp_path, monkeypatch):
    monkeypatch.setenv(J.RECORD_DIR_ENV, str(tmp_path))
    return tmp_path


def unfinished(db):
    return db.execute("SELECT count(*) FROM good_jobs WHERE finished_at IS NULL").fetchone()[0]


def test_worker_runs_jobs_woken_by_notify_without_polling(db, records):
    settings = load_settings({"poll_interval": -1.0, "max_threads": 2})
    worker = Worker(settings).start()
    try:
        assert wait_for(lambda: worker.listener_connected)
        J.remember.perform_later("a")
        J.remember.set(wait=1).perform_later("b")  # the cache, not a poll, must start it
        assert wait_for(lambda: J.lines(records, "remember") == ["a", "b"])
        assert wait_for(lambda: unfinished(db) == 0)
    finally:
        assert worker.shutdown(10)
    assert db.execute("SELECT count(*) FROM good_job_processes").fetchone()[0] == 0


def test_worker_drains_many_short_jobs_and_records_executions(db):
    with gj.bulk():
        for _ in range(2000):
            J.noop.perform_later()
    worker = Worker(load_settings({"max_threads": 3})).start()
    try:
        assert wait_for(lambda: unfinished(db) == 0, timeout=60)
    finally:
        worker.shutdown(10)
    assert db.execute("SELECT count(*) FROM good_job_executions").fetchone()[0] == 2000
    assert worker.succeeded == 2000


def test_queue_selection(db, records):
    settings = load_settings({"queues": "-mail", "poll_interval": 1.0})
    worker = Worker(settings).start()
    try:
        J.remember.set(queue="mail").perform_later("mail")
        J.remember.set(queue="other").perform_later("other")
        assert wait_for(lambda: J.lines(records, "remember") == ["other"])
        time.sleep(0.3)
        assert J.lines(records, "remember") == ["other"]
    finally:
        worker.shutdown(10)


def test_shutdown_hands_back_unstarted_jobs_without_interrupts(db, records):
    settings = load_settings({"max_threads": 1, "claim_buffer": 50})
    for i in range(5):
        J.sleepy.perform_later(f"s{i}", 0.4)
    worker = Worker(settings).start()
    assert wait_for(lambda: J.lines(records, "started") == ["s0"])
    assert worker.shutdown(10)
    # s0 finished; the rest were never started and are back in the queue, not interrupted.
    assert J.lines(records, "finished") == ["s0"]
    rows = db.execute(
        "SELECT count(*) FILTER (WHERE finished_at IS NULL AND locked_by_id IS NULL"
        " AND performed_at IS NULL) FROM good_jobs"
    ).fetchone()
    assert rows[0] == 4
    assert (
        db.execute("SELECT count(*) FROM good_job_executions WHERE error_event = 0").fetchone()[0]
        == 0
    )


def test_current_thread_shutting_down_is_visible_to_jobs(db, records):
    seen = []

    @gj.job
    def watcher():
        while not gj.current_thread_shutting_down():
            time.sleep(0.01)
        seen.append(True)

    worker = Worker(load_settings({"max_threads": 1})).start()
    watcher.perform_later()
    assert wait_for(lambda: worker.busy == 1)
    assert worker.shutdown(10)
    assert seen == [True]


def test_async_mode_start_and_shutdown(db, records):
    workers = gj.start_async(load_settings({"queues": "a;b", "max_threads": 1}))
    try:
        assert len(workers) == 2
        J.remember.set(queue="a").perform_later("x")
        J.remember.set(queue="b").perform_later("y")
        assert wait_for(lambda: sorted(J.lines(records, "remember")) == ["x", "y"])
    finally:
        assert gj.shutdown(10)


def test_worker_refuses_old_schema(database_url):
    import psycopg

    from goodjob_mp.db.migrate import SchemaOutdatedError

    with psycopg.connect(database_url, autocommit=True) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM goodjob_mp_schema_migrations")]
        conn.execute("DELETE FROM goodjob_mp_schema_migrations")
        # An old schema: one that lacks a column (a schema with every column and no recorded
        # versions is adopted, see tests/test_goodjob_schema.py).
        conn.execute("ALTER TABLE good_jobs RENAME COLUMN lock_type TO lock_type_away")
        try:
            with pytest.raises(SchemaOutdatedError, match="goodjob-supervisor migrate"):
                Worker(load_settings({})).start()
        finally:
            conn.execute("ALTER TABLE good_jobs RENAME COLUMN lock_type_away TO lock_type")
            for version in versions:
                conn.execute(
                    "INSERT INTO goodjob_mp_schema_migrations (version) VALUES (%s)", (version,)
                )


def test_handed_back_jobs_wake_idle_listeners(db):
    """A dead process's jobs come back with a NOTIFY, so an idle pool claims them at once
    instead of at its next poll."""
    handle = J.noop.set(queue="handback").perform_later()
    dead = uuid.uuid4()
    db.execute("UPDATE good_jobs SET locked_by_id = %s WHERE id = %s", (dead, handle.id))
    with psycopg.connect(os.environ["GOOD_JOB_DATABASE_URL"], autocommit=True) as listener:
        listener.execute("LISTEN good_job")
        assert job_store.hand_back_jobs(db, [dead]) == 1
        payloads = [n.payload for n in listener.notifies(timeout=5, stop_after=1)]
    assert payloads and '"queue_name":"handback"' in payloads[0]
    assert (
        db.execute("SELECT locked_by_id FROM good_jobs WHERE id = %s", (handle.id,)).fetchone()[0]
        is None
    )


def test_retry_with_a_wait_runs_without_polling(db, records):
    """The retry's NOTIFY (sent with its results) puts its new start time in the cache: with
    polling off nothing else would ever wake the worker for it."""
    worker = Worker(load_settings({"poll_interval": -1.0, "max_threads": 1})).start()
    try:
        assert wait_for(lambda: worker.listener_connected)
        handle = J.Flaky.perform_later("nopoll", 1)
        assert wait_for(lambda: unfinished(db) == 0, 10)
    finally:
        assert worker.shutdown(10)
    assert J.lines(records, "flaky") == ["nopoll:1", "nopoll:2"]
    events = db.execute(
        "SELECT error_event FROM good_job_executions WHERE active_job_id = %s ORDER BY created_at",
        (handle.id,),
    ).fetchall()
    assert [e[0] for e in events] == [3, None]
