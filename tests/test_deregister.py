"""A stopping process that could not hand its jobs back keeps its row (issue 15.16 d): deleting
it would leave the jobs locked by an owner that no sweep ever looks at. The sweep frees them
once the row is dead (lock gone, heartbeat stale); and jobs whose owner has no row at all are
freed after ``dead_process_timeout`` too (issue 15.14)."""

from __future__ import annotations

import datetime as dt
import uuid

import psycopg
import pytest

import goodjob_mp as gj
from goodjob_mp.config import load_settings
from goodjob_mp.db import processes
from goodjob_mp.db.job_store import utcnow
from goodjob_mp.worker.worker import Worker
from tests import jobs_for_tests as J
from tests.test_liveness import insert_locked_job, locked_by, process_ids
from tests.test_registry_lock import lock_holders
from tests.waiting import wait_for

REFUSE_RELEASE = """
CREATE FUNCTION goodjob_test_refuse_release() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'release refused by the test'; END $$;
CREATE TRIGGER goodjob_test_refuse_release BEFORE UPDATE ON good_jobs FOR EACH ROW
    WHEN (OLD.locked_by_id IS NOT NULL AND NEW.locked_by_id IS NULL AND NEW.finished_at IS NULL)
    EXECUTE FUNCTION goodjob_test_refuse_release();
"""
ALLOW_RELEASE = """
DROP TRIGGER IF EXISTS goodjob_test_refuse_release ON good_jobs;
DROP FUNCTION IF EXISTS goodjob_test_refuse_release();
"""


@pytest.fixture()
def records(tmp_path, monkeypatch):
    monkeypatch.setenv(J.RECORD_DIR_ENV, str(tmp_path))
    return tmp_path


@pytest.fixture()
def refuse_release(db):
    """Make every hand-back of an unfinished job fail; yields a function that undoes it."""
    db.execute(REFUSE_RELEASE)

    def allow() -> None:
        db.execute(ALLOW_RELEASE)

    yield allow
    allow()


def age_row(db: psycopg.Connection, process_id: uuid.UUID, seconds: float) -> None:
    db.execute(
        "UPDATE good_job_processes SET updated_at = %s WHERE id = %s",
        (utcnow() - dt.timedelta(seconds=seconds), process_id),
    )


def test_deregister_keeps_a_row_that_still_owns_jobs_but_releases_its_lock(db, database_url):
    owner = uuid.uuid4()
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert processes.register_process(conn, owner, {})
        job = insert_locked_job(db, owner)
        assert not processes.deregister_process(conn, owner)
        assert owner in process_ids(db)
        assert lock_holders(db, owner) == []
        db.execute("UPDATE good_jobs SET finished_at = %s WHERE id = %s", (utcnow(), job))
        assert processes.deregister_process(conn, owner)
        assert owner not in process_ids(db)


def test_a_worker_whose_release_fails_keeps_its_row_and_the_sweep_frees_its_jobs(
    db, records, refuse_release, registry
):
    settings = load_settings({"max_threads": 1, "claim_buffer": 50})
    worker = Worker(settings).start()
    for i in range(20):
        J.remember.perform_later(str(i))
    assert wait_for(lambda: worker.succeeded == 20)
    # Short jobs teach the worker to claim beyond its free thread; on a loaded box they can
    # measure slower than the claim's horizon, so pin what they would teach on an idle one.
    worker._avg_duration = J.SHORT_JOB_SECONDS
    with gj.bulk():
        J.sleepy.perform_later("s0", 1.0)
        for i in range(4):
            J.remember.perform_later(f"buffered{i}")
    assert wait_for(lambda: J.lines(records, "started") == ["s0"])
    buffered = db.execute(
        "SELECT count(*) FROM good_jobs WHERE locked_by_id = %s AND performed_at IS NOT NULL"
        " AND finished_at IS NULL",
        (worker.process_id,),
    ).fetchone()[0]
    assert buffered == 5, "the short jobs were not claimed into the buffer"
    worker.shutdown(10)
    assert J.lines(records, "finished") == ["s0"]
    stuck = db.execute(
        "SELECT count(*) FROM good_jobs WHERE locked_by_id = %s AND finished_at IS NULL",
        (worker.process_id,),
    ).fetchone()[0]
    assert stuck == 4
    assert worker.process_id in process_ids(db)  # not deregistered: its jobs are still locked
    assert lock_holders(db, worker.process_id) == []

    refuse_release()
    assert registry.sweep(20.0) == 0  # its heartbeat is fresh: not yet
    age_row(db, worker.process_id, 60)
    assert registry.sweep(20.0) == 4
    assert worker.process_id not in process_ids(db)
    unlocked = db.execute(
        "SELECT count(*) FROM good_jobs WHERE locked_by_id IS NULL AND finished_at IS NULL"
    ).fetchone()[0]
    assert unlocked == 4


def test_jobs_whose_owner_has_no_row_are_freed_after_the_timeout(db, registry):
    """Rows can vanish without a hand-back (deleted by hand, an older inline mode): the sweep
    frees such jobs once their newest lock is older than dead_process_timeout."""
    ghost = uuid.uuid4()
    old, fresh = insert_locked_job(db, ghost), insert_locked_job(db, uuid.uuid4())
    db.execute(
        "UPDATE good_jobs SET locked_at = %s WHERE id = %s",
        (utcnow() - dt.timedelta(seconds=60), old),
    )
    assert registry.sweep(20.0) == 1
    assert locked_by(db, old) is None
    assert locked_by(db, fresh) is not None  # locked a moment ago: its owner may be registering


def test_shutdown_returns_with_the_process_lock_released(db):
    """The process lock is the fetcher session's: shutdown releases it. Closing the session
    alone frees it only once the server process has exited, which can be after shutdown
    returned (a sweep or a GoodJob dashboard would still see the process alive)."""
    worker = Worker(load_settings({"max_threads": 1})).start()
    fetch = worker._fetch_conn
    assert fetch is not None
    close = fetch.close
    fetch.close = lambda: None  # type: ignore[method-assign]  # its backend has not exited yet
    try:
        assert lock_holders(db, worker.process_id) == [fetch.info.backend_pid]
        assert worker.shutdown(10)
        assert lock_holders(db, worker.process_id) == []
    finally:
        close()
