"""``async def`` jobs: perform_now and inline mode, the pool's event loop in a worker (mixed with
sync jobs, the async_concurrency limit), and shutdown past shutdown_timeout under a real
supervisor (cancelled coroutines are recorded as interrupted)."""

from __future__ import annotations

import asyncio
import signal
import threading

import pytest

import goodjob_mp as gj
from goodjob_mp.config import load_settings
from goodjob_mp.worker.event_loop import cancel_after
from goodjob_mp.worker.worker import Worker
from tests import jobs_for_tests as J
from tests.supervising import *  # noqa: F403 - the records and start fixtures
from tests.waiting import wait_for


class Peak:
    """How many coroutines run at once (this process only)."""

    now = 0
    most = 0
    lock = threading.Lock()


class Counted(gj.Job):
    queue_name = "default"

    async def perform(self, tag: str) -> None:
        with Peak.lock:
            Peak.now += 1
            Peak.most = max(Peak.most, Peak.now)
        try:
            gate = J.Path(J.os.environ[J.RECORD_DIR_ENV]) / "open"
            while not gate.exists():
                await asyncio.sleep(0.01)
            J.record("remember", f"counted:{tag}")
        finally:
            with Peak.lock:
                Peak.now -= 1


class Slow(gj.Job):
    timeout = 0.2

    async def perform(self) -> None:
        await asyncio.sleep(30)


def finished_count(db) -> int:
    return db.execute("SELECT count(*) FROM good_jobs WHERE finished_at IS NOT NULL").fetchone()[0]


def test_cancel_after_leaves_a_margin_before_shutdown_timeout() -> None:
    assert cancel_after(-1) is None
    assert cancel_after(0) == 0
    assert cancel_after(5) == 4.5
    assert cancel_after(25) == 24


def test_perform_now_runs_async_jobs_with_timeout_and_from_a_running_loop(records) -> None:
    J.async_remember.perform_now("now")
    assert J.lines(records, "remember") == ["async:now"]
    with pytest.raises(gj.JobTimeoutError):
        Slow.perform_now()

    async def inside_a_loop() -> None:
        J.async_remember.perform_now("in-loop")  # sync API called from async code

    asyncio.run(inside_a_loop())
    assert J.lines(records, "remember") == ["async:now", "async:in-loop"]


def test_inline_mode_performs_async_jobs(db, records) -> None:
    gj.configure(execution_mode="inline")
    J.async_remember.perform_later("inline")
    assert J.lines(records, "remember") == ["async:inline"]
    assert finished_count(db) == 1


def test_worker_mixes_sync_and_async_jobs_and_limits_coroutines(db, records) -> None:
    Peak.now = Peak.most = 0
    settings = load_settings({"max_threads": 1, "async_concurrency": 3})
    for i in range(6):
        Counted.perform_later(f"c{i}")
    J.remember.perform_later("sync")
    J.async_remember.perform_later("a")
    worker = Worker(settings).start()
    try:
        # One thread, yet three coroutines wait at once: the loop, not the thread, runs them.
        assert wait_for(lambda: Peak.now == 3 and worker.coroutines == 3)
        (records / "open").touch()
        assert wait_for(lambda: finished_count(db) == 8, timeout=60)
    finally:
        assert worker.shutdown(10)
    assert Peak.most == 3
    lines = J.lines(records, "remember")
    assert sorted(lines) == sorted(["sync", "async:a", *(f"counted:c{i}" for i in range(6))])
    errors = db.execute("SELECT count(*) FROM good_job_executions WHERE error IS NOT NULL")
    assert errors.fetchone()[0] == 0


def test_async_job_timeout_is_a_job_error(db, records) -> None:
    worker = Worker(load_settings({"max_threads": 1})).start()
    try:
        Slow.perform_later()
        assert wait_for(
            lambda: db.execute("SELECT error FROM good_jobs").fetchone()[0] is not None,
            timeout=30,
        )
    finally:
        worker.shutdown(10)
    (error,) = db.execute("SELECT error FROM good_jobs").fetchone()
    assert error.startswith("goodjob_mp.timeouts.JobTimeoutError: the job ran longer")


def test_supervisor_cancels_coroutines_after_shutdown_timeout_as_interrupted(
    start, db, records
) -> None:
    job = J.AsyncGate.perform_later("gate")
    J.remember.perform_later("sync")
    sup = start("--queues", "*:2", env={"GOOD_JOB_SHUTDOWN_TIMEOUT": "2"})
    sup.wait_ready()
    assert wait_for(lambda: J.lines(records, "started") == ["gate"], 30), sup.output()
    assert wait_for(lambda: J.lines(records, "remember") == ["sync"], 30)
    sup.signal(signal.SIGTERM)
    assert sup.wait_exit() == 0, sup.output()
    assert J.lines(records, "cancelled") == ["gate"]
    assert J.lines(records, "finished") == []
    row = db.execute(
        "SELECT finished_at, locked_by_id, performed_at, error_event, error FROM good_jobs"
        " WHERE id = %s",
        (job.id,),
    ).fetchone()
    assert row[:4] == (None, None, None, 0)
    assert row[4].startswith("GoodJob::InterruptedError: Interrupted after starting perform")
    (event,) = db.execute(
        "SELECT e.error_event FROM good_job_executions e JOIN good_jobs j"
        " ON j.active_job_id = e.active_job_id WHERE j.id = %s",
        (job.id,),
    ).fetchone()
    assert event == 0
    assert "was NOT recorded" not in sup.output()
    # The next supervisor runs it again, to the end.
    (records / "open").touch()
    again = start("--queues", "*:2", name="again")
    again.wait_ready()
    assert wait_for(lambda: J.lines(records, "finished") == ["gate"], 30), again.output()
    assert wait_for(
        lambda: (
            db.execute("SELECT finished_at FROM good_jobs WHERE id = %s", (job.id,)).fetchone()[0]
            is not None
        )
    )


def test_worker_shutdown_cancels_running_and_slot_waiting_coroutines(db, records) -> None:
    settings = load_settings({"max_threads": 2, "async_concurrency": 1, "shutdown_timeout": 1})
    first = J.AsyncGate.perform_later("a")
    second = J.AsyncGate.perform_later("b")
    worker = Worker(settings).start()
    # "a" runs; "b" is held by the second executor thread, waiting for the loop's one slot.
    assert wait_for(lambda: J.lines(records, "started") == ["a"] and worker.busy == 1)
    assert worker.shutdown(30)
    assert J.lines(records, "cancelled") == ["a"]
    assert J.lines(records, "started") == ["a"]  # "b" never ran
    for job in (first, second):
        row = db.execute(
            "SELECT finished_at, locked_by_id, error_event FROM good_jobs WHERE id = %s",
            (job.id,),
        ).fetchone()
        assert row == (None, None, 0)
