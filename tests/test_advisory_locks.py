"""GoodJob's per-job advisory lock: held while we have a job, respected when a Rails GoodJob
holds it, and results that match no row are reported, never logged as success."""

from __future__ import annotations

import logging
import uuid

import psycopg
import pytest

import goodjob_mp as gj
from goodjob_mp.config import load_settings
from goodjob_mp.db import job_store
from goodjob_mp.worker.worker import Worker
from tests import jobs_for_tests as J
from tests.waiting import wait_for

# GoodJob's expression (AdvisoryLockable.advisory_lock_bigint_sql with md5, Job's id column).
GOODJOB_KEY = "('x' || substr(md5('good_jobs' || '-' || %(id)s::text), 1, 16))::bit(64)::bigint"
GOODJOB_KEY_SQL = f"SELECT {GOODJOB_KEY}"
# GoodJob's own pg_locks match (AdvisoryLockable.joins_advisory_locks): upper and lower 32 bits.
GOODJOB_HELD_SQL = f"""
SELECT count(*) FROM pg_locks
WHERE locktype = 'advisory' AND objsubid = 1 AND granted
  AND classid = substring(({GOODJOB_KEY})::bit(64) from 1 for 32)::bit(32)::int
  AND objid = substring(({GOODJOB_KEY})::bit(64) from 33 for 32)::bit(32)::int
"""


@pytest.fixture()
def records(tmp_path, monkeypatch):
    monkeypatch.setenv(J.RECORD_DIR_ENV, str(tmp_path))
    return tmp_path


def held(db, job_id) -> bool:
    return db.execute(GOODJOB_HELD_SQL, {"id": job_id}).fetchone()[0] > 0


@pytest.mark.parametrize(
    "job_id",
    [
        uuid.UUID(int=0),
        uuid.UUID(int=2**128 - 1),
        uuid.UUID("8f4e1f3a-0b7c-4d2e-9a61-3c5b7d9e1f20"),
        *[uuid.uuid4() for _ in range(20)],
    ],
)
def test_job_lock_key_matches_goodjobs_sql(db, job_id):
    assert (
        job_store.job_lock_key(job_id) == db.execute(GOODJOB_KEY_SQL, {"id": job_id}).fetchone()[0]
    )


def test_a_job_locked_by_another_session_waits_until_it_is_released(db, records, database_url):
    handle = J.remember.perform_later("locked")
    with psycopg.connect(database_url, autocommit=True) as ruby:
        # What a Rails GoodJob performing the job holds (its advisory and hybrid strategies).
        ruby.execute("SELECT pg_advisory_lock(%s)", (job_store.job_lock_key(handle.id),))
        worker = Worker(load_settings({"advisory_locks": "always", "poll_interval": 0.2})).start()
        try:
            J.remember.perform_later("free")
            assert wait_for(lambda: J.lines(records, "remember") == ["free"])
            assert wait_for(lambda: worker.empty_claims >= 3)  # several polls passed it by
            assert J.lines(records, "remember") == ["free"]
            row = db.execute(
                "SELECT locked_by_id, executions_count FROM good_jobs WHERE id = %s",
                (handle.id,),
            ).fetchone()
            assert row == (None, None)  # never touched
            ruby.execute("SELECT pg_advisory_unlock(%s)", (job_store.job_lock_key(handle.id),))
            assert wait_for(lambda: J.lines(records, "remember") == ["free", "locked"])
        finally:
            assert worker.shutdown(10)


def test_our_claimed_job_holds_goodjobs_lock_and_releases_it_after_the_result(db, records):
    worker = Worker(load_settings({"advisory_locks": "always", "max_threads": 1})).start()
    try:
        handle = J.sleepy.perform_later("held", 1.0)
        assert wait_for(lambda: J.lines(records, "started") == ["held"])
        assert held(db, handle.id)
        assert db.execute(
            "SELECT lock_type FROM good_jobs WHERE id = %s", (handle.id,)
        ).fetchone() == (2,)  # hybrid: row lock and advisory lock
        assert wait_for(lambda: J.lines(records, "finished") == ["held"])
        assert wait_for(lambda: not held(db, handle.id))
    finally:
        assert worker.shutdown(10)


def test_never_takes_no_lock(db, records):
    worker = Worker(load_settings({"advisory_locks": "never", "max_threads": 1})).start()
    try:
        handle = J.sleepy.perform_later("free", 1.0)
        assert wait_for(lambda: J.lines(records, "started") == ["free"])
        assert not held(db, handle.id)
    finally:
        assert worker.shutdown(10)


def test_auto_takes_locks_once_a_goodjob_process_is_seen(db, records):
    worker = Worker(
        load_settings({"advisory_locks": "auto", "max_threads": 1, "heartbeat_interval": 0.2})
    ).start()
    try:
        first = J.sleepy.perform_later("before", 0.5)
        assert wait_for(lambda: J.lines(records, "started") == ["before"])
        assert not held(db, first.id)
        assert wait_for(lambda: J.lines(records, "finished") == ["before"])
        # A Rails GoodJob process registers (its state as GoodJob::Process.process_state writes).
        db.execute(
            "INSERT INTO good_job_processes (id, created_at, updated_at, state, lock_type)"
            " VALUES (gen_random_uuid(), now(), now(), %s, 0)",
            (
                psycopg.types.json.Jsonb(
                    {
                        "hostname": "rails",
                        "pid": 1,
                        "schedulers": [{"name": "GoodJob::Scheduler(queues=* max_threads=5)"}],
                    }
                ),
            ),
        )
        assert wait_for(lambda: worker._claim_statement.advisory_locks)
        second = J.sleepy.perform_later("after", 1.0)
        assert wait_for(lambda: J.lines(records, "started") == ["before", "after"])
        assert held(db, second.id)
    finally:
        assert worker.shutdown(10)


def test_a_result_that_matches_no_row_is_reported_not_counted(db, records, caplog):
    lost = []
    unsubscribe = gj.subscribe("result_lost", lambda **p: lost.append(p))
    worker = Worker(load_settings({"max_threads": 1})).start()
    try:
        handle = J.sleepy.perform_later("stolen", 1.0)
        assert wait_for(lambda: J.lines(records, "started") == ["stolen"])
        # Another process takes the row while we run it (as a sweep that judged us dead would).
        db.execute(
            "UPDATE good_jobs SET locked_by_id = gen_random_uuid() WHERE id = %s", (handle.id,)
        )
        with caplog.at_level(logging.ERROR, logger="goodjob_mp.worker"):
            assert wait_for(lambda: lost)
    finally:
        assert worker.shutdown(10)
        unsubscribe()
    assert lost[0]["job_id"] == handle.id and lost[0]["outcome"] == "succeeded"
    assert "was NOT recorded" in caplog.text
    assert worker.succeeded == 0
    assert db.execute("SELECT count(*) FROM good_job_executions").fetchone()[0] == 0
