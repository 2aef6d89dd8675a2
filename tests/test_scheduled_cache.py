"""With polling off, future jobs start on time thanks to the scheduled-job cache (real Postgres).

Timings are deliberately loose: the machine is shared and noisy. What matters is that the job
runs at all without a poll, and never before its scheduled time.
"""

from __future__ import annotations

import time

import pytest

from goodjob_mp.config import load_settings
from goodjob_mp.worker.worker import Worker
from tests import jobs_for_tests as J
from tests.waiting import wait_for

UPPER_BOUND = 10.0  # seconds after the scheduled time: generous on purpose


@pytest.fixture()
def records(tmp_path, monkeypatch):
    monkeypatch.setenv(J.RECORD_DIR_ENV, str(tmp_path))
    return tmp_path


def job_row(db, job_id):
    return db.execute(
        "SELECT scheduled_at, performed_at, finished_at, error FROM good_jobs WHERE id = %s",
        (job_id,),
    ).fetchone()


def started_worker(**overrides):
    settings = load_settings({"poll_interval": -1.0, "max_threads": 2, **overrides})
    worker = Worker(settings).start()
    assert wait_for(lambda: worker.listener_connected, 10)
    return worker


def test_job_scheduled_after_start_runs_without_polling(db, records):
    worker = started_worker()
    try:
        handle = J.remember.set(wait=1.5).perform_later("later")
        # The NOTIFY reaches the listener, which puts the start time in the cache.
        assert wait_for(lambda: len(worker._cache) == 1 or J.lines(records, "remember"), 5)
        assert J.lines(records, "remember") == []  # not yet: it is 1.5 s in the future
        assert wait_for(lambda: J.lines(records, "remember") == ["later"], 1.5 + UPPER_BOUND)
        assert wait_for(lambda: job_row(db, handle.id)[2] is not None, 5)
    finally:
        assert worker.shutdown(10)
    scheduled_at, performed_at, finished_at, error = job_row(db, handle.id)
    assert error is None
    assert performed_at >= scheduled_at
    assert finished_at >= performed_at
    assert (performed_at - scheduled_at).total_seconds() < UPPER_BOUND
    assert worker.succeeded == 1
    assert len(worker._cache) == 0


def test_job_scheduled_before_start_is_loaded_into_the_cache(db, records):
    # No NOTIFY reaches this worker for the job: only the cache loaded at start can run it.
    handle = J.remember.set(wait=1.5).perform_later("preloaded")
    worker = started_worker()
    try:
        assert wait_for(lambda: J.lines(records, "remember") == ["preloaded"], 1.5 + UPPER_BOUND)
        assert wait_for(lambda: job_row(db, handle.id)[2] is not None, 5)
    finally:
        assert worker.shutdown(10)
    scheduled_at, performed_at, _, error = job_row(db, handle.id)
    assert error is None
    assert performed_at >= scheduled_at


def test_several_scheduled_jobs_each_start_no_earlier_than_their_time(db, records):
    worker = started_worker()
    try:
        handles = [J.remember.set(wait=w).perform_later(f"w{w}") for w in (2.0, 1.0, 1.5)]
        assert wait_for(lambda: len(J.lines(records, "remember")) == 3, 2.0 + UPPER_BOUND)
        assert wait_for(lambda: all(job_row(db, h.id)[2] is not None for h in handles), UPPER_BOUND)
    finally:
        assert worker.shutdown(10)
    assert sorted(J.lines(records, "remember")) == ["w1.0", "w1.5", "w2.0"]
    for handle in handles:
        scheduled_at, performed_at, _, error = job_row(db, handle.id)
        assert error is None
        assert performed_at >= scheduled_at


def test_without_the_cache_a_future_job_waits_for_a_poll(db, records):
    # The control: with max_cache=0 and the next poll a minute away, nothing wakes the worker at
    # the job's time, so the jobs above ran because of the cache, not by accident.
    # (max_cache=0 with polling off is refused by the configuration: nothing would ever run.)
    worker = started_worker(max_cache=0, poll_interval=60.0)
    try:
        handle = J.remember.set(wait=0.5).perform_later("never")
        time.sleep(3.0)
        assert J.lines(records, "remember") == []
        assert job_row(db, handle.id)[1] is None
    finally:
        assert worker.shutdown(10)
