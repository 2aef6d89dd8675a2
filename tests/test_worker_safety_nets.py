"""Tests that fail when a worker safety net is removed (issue 16.16 c, d): polling covers a
NOTIFY that never arrives, and stopping hands back the jobs claimed into the local buffer but
never started."""

from __future__ import annotations

import time

import pytest

import goodjob_mp as gj
from goodjob_mp.config import load_settings
from goodjob_mp.db import job_store
from goodjob_mp.enqueue import build_job
from goodjob_mp.worker.worker import Worker
from tests import jobs_for_tests as J
from tests.waiting import wait_for


@pytest.fixture()
def records(tmp_path, monkeypatch):
    monkeypatch.setenv(J.RECORD_DIR_ENV, str(tmp_path))
    return tmp_path


def test_a_job_whose_notify_never_arrives_is_found_by_the_poll(db, records):
    worker = Worker(load_settings({"poll_interval": 0.5, "max_threads": 1})).start()
    try:
        assert wait_for(lambda: worker.listener_connected)
        # Idle: it has claimed (found nothing) since its listener connected, and now waits.
        assert wait_for(lambda: worker.empty_claims >= 1)
        job_cls = J.remember.job_class
        row = build_job(job_cls, ["missed"], {}, job_cls.default_options())
        job_store.insert_job(db, row, notify=False)  # as if the NOTIFY were lost
        assert wait_for(lambda: J.lines(records, "remember") == ["missed"])
    finally:
        assert worker.shutdown(10)


def test_stop_hands_back_jobs_buffered_but_never_started(db, records):
    worker = Worker(load_settings({"max_threads": 1, "claim_buffer": 50})).start()
    try:
        # A quick job first: with a short average duration measured, the next claim takes the
        # whole batch into the local buffer instead of one job per free thread.
        J.noop.perform_later()
        assert wait_for(lambda: worker.succeeded == 1)
        # What one quick job measures on an idle box (a loaded one can measure it slower than
        # the claim's horizon, and the batch would then not be buffered).
        worker._avg_duration = J.SHORT_JOB_SECONDS
        with gj.bulk():  # one insert and one NOTIFY: one claim takes all five
            for i in range(5):
                J.sleepy.perform_later(f"s{i}", 1.5)
        assert wait_for(lambda: J.lines(records, "started") == ["s0"])
        assert worker.buffered == 4
    finally:
        assert worker.shutdown(10)
    assert J.lines(records, "finished") == ["s0"]
    rows = db.execute(
        "SELECT serialized_params->'arguments'->>0, locked_by_id IS NULL, performed_at IS NULL,"
        " executions_count FROM good_jobs WHERE finished_at IS NULL ORDER BY 1"
    ).fetchall()
    # Back in the queue as if never claimed: unlocked, no attempt started, none counted.
    assert rows == [(f"s{i}", True, True, 0) for i in range(1, 5)]
    interrupts = "SELECT count(*) FROM good_job_executions WHERE error_event = 0"
    assert db.execute(interrupts).fetchone()[0] == 0


def _completer_connect_fails(monkeypatch, error: BaseException, times: int) -> list[int]:
    """Fault injection around the real ``connect``: the completer thread's first ``times``
    calls raise ``error`` (as a database that is unreachable, or a bug, would)."""
    import threading

    from goodjob_mp.worker import worker as worker_module

    real = worker_module.connect
    failed: list[int] = []

    def connect(*args, **kwargs):
        if threading.current_thread().name.endswith("gj-completer") and len(failed) < times:
            failed.append(1)
            raise error
        return real(*args, **kwargs)

    monkeypatch.setattr(worker_module, "connect", connect)
    return failed


def test_a_completer_that_cannot_connect_at_start_waits_for_the_database(db, monkeypatch):
    import psycopg

    failed = _completer_connect_fails(monkeypatch, psycopg.OperationalError("unreachable"), 2)
    worker = Worker(load_settings({"max_threads": 1})).start()
    try:
        J.noop.perform_later()
        assert wait_for(lambda: worker.succeeded == 1), worker.fatal_error
        assert len(failed) == 2
        assert worker.fatal_error is None
    finally:
        assert worker.shutdown(10)


def test_a_completer_that_fails_at_start_still_reports_the_worker_stopped(db, monkeypatch):
    _completer_connect_fails(monkeypatch, RuntimeError("a bug"), 1)
    from goodjob_mp.worker import worker as worker_module

    # A slow log write (a loaded box) between the stop being reported and the thread's guard
    # recording the error: the error must be there already when join_stopped() returns.
    real_exception = worker_module.log.exception

    def slow_exception(*args, **kwargs):
        time.sleep(0.5)
        real_exception(*args, **kwargs)

    monkeypatch.setattr(worker_module.log, "exception", slow_exception)
    worker = Worker(load_settings({"max_threads": 1})).start()
    # The worker stops (its completer is gone) and says so, rather than hanging its shutdown.
    assert worker.join_stopped(10)
    assert isinstance(worker.fatal_error, RuntimeError)
    ok = worker.shutdown(5)
    assert ok, [t.name for t in worker._threads if t.is_alive()]
