"""Cleanup of preserved job records: the SQL, the schedule, the CLI and the worker's trigger."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import psycopg

import goodjob_mp as gj
from goodjob_mp import cleanup
from goodjob_mp.cli import supervisor_command
from goodjob_mp.config import Settings, load_settings
from goodjob_mp.worker.worker import Worker
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent
DAY = 24 * 3600


class CleanupNoopJob(gj.Job):
    def perform(self, tag: str = "") -> None:
        pass


class CleanupBoomJob(gj.Job):
    def perform(self) -> None:
        raise RuntimeError("cleanup boom")


class CleanupFlakyError(Exception):
    pass


class CleanupFlakyJob(gj.Job):
    retry_on = [gj.RetryOn(CleanupFlakyError, wait=0, attempts=3, jitter=0)]

    def perform(self) -> None:
        if self.executions == 1:
            raise CleanupFlakyError("first attempt fails")


def finished_jobs(job, count: int, *args) -> list:
    """Enqueue ``count`` jobs and run them inline to a finished, preserved row."""
    handles = [job.perform_later(*args) for _ in range(count)]
    gj.perform_inline()
    return [h.id for h in handles]


def age(db, ids, seconds: float) -> None:
    """Move finished_at (and the executions) of ``ids`` ``seconds`` into the past."""
    db.execute(
        "UPDATE good_jobs SET finished_at = finished_at - make_interval(secs => %s)"
        " WHERE id = ANY(%s)",
        (seconds, list(ids)),
    )


def job_ids(db) -> set:
    return {r[0] for r in db.execute("SELECT id FROM good_jobs")}


def execution_job_ids(db) -> set:
    return {r[0] for r in db.execute("SELECT active_job_id FROM good_job_executions")}


def settings(**changes) -> Settings:
    return load_settings(changes)


# --- cleanup_preserved_jobs -------------------------------------------------------------------


def test_deletes_old_finished_jobs_with_their_executions_and_keeps_the_rest(db):
    old = finished_jobs(CleanupNoopJob, 3)
    recent = finished_jobs(CleanupNoopJob, 2)
    age(db, old, 2 * DAY)
    unfinished = CleanupNoopJob.set(wait=3600).perform_later().id
    # A job that has been running for days: not finished, so never cleaned up.
    running = CleanupNoopJob.perform_later().id
    db.execute(
        "UPDATE good_jobs SET performed_at = now() - interval '3 days',"
        " created_at = now() - interval '3 days' WHERE id = %s",
        (running,),
    )
    assert execution_job_ids(db) == set(old) | set(recent)

    deleted = cleanup.cleanup_preserved_jobs(db, settings(), before_seconds_ago=DAY)

    assert deleted == 3
    assert job_ids(db) == set(recent) | {unfinished, running}
    assert execution_job_ids(db) == set(recent)


def test_deletes_every_execution_of_a_retried_job(db):
    [retried] = finished_jobs(CleanupFlakyJob, 1)
    gj.perform_inline()  # wait=0: the retry is due at once
    assert (
        db.execute(
            "SELECT count(*) FROM good_job_executions WHERE active_job_id = %s", (retried,)
        ).fetchone()[0]
        == 2
    )
    age(db, [retried], 2 * DAY)
    assert cleanup.cleanup_preserved_jobs(db, settings(), before_seconds_ago=DAY) == 1
    assert job_ids(db) == set()
    assert db.execute("SELECT count(*) FROM good_job_executions").fetchone()[0] == 0


def test_cutoff_comes_from_settings_when_not_given(db):
    gj.configure(cleanup_preserved_jobs_before_seconds_ago=3 * DAY)
    two_days = finished_jobs(CleanupNoopJob, 1)
    four_days = finished_jobs(CleanupNoopJob, 1)
    age(db, two_days, 2 * DAY)
    age(db, four_days, 4 * DAY)
    assert cleanup.cleanup_preserved_jobs(db, gj.current_settings()) == 1
    assert job_ids(db) == set(two_days)


def test_keep_discarded_keeps_jobs_that_finished_with_an_error(db):
    ok = finished_jobs(CleanupNoopJob, 2)
    failed = finished_jobs(CleanupBoomJob, 2)
    age(db, ok + failed, 2 * DAY)

    assert cleanup.cleanup_preserved_jobs(db, settings(), include_discarded=False) == 0
    assert (
        cleanup.cleanup_preserved_jobs(
            db, settings(), before_seconds_ago=DAY, include_discarded=False
        )
        == 2
    )
    assert job_ids(db) == set(failed)
    assert execution_job_ids(db) == set(failed)

    # The setting is the default for include_discarded.
    assert (
        cleanup.cleanup_preserved_jobs(
            db, settings(cleanup_discarded_jobs=False), before_seconds_ago=DAY
        )
        == 0
    )
    assert job_ids(db) == set(failed)
    assert cleanup.cleanup_preserved_jobs(db, settings(), before_seconds_ago=DAY) == 2
    assert job_ids(db) == set()
    assert execution_job_ids(db) == set()


def test_works_across_several_batches(db, monkeypatch):
    monkeypatch.setattr(cleanup, "BATCH_SIZE", 3)
    old = finished_jobs(CleanupNoopJob, 10)
    recent = finished_jobs(CleanupNoopJob, 2)
    age(db, old, 2 * DAY)
    assert cleanup.cleanup_preserved_jobs(db, settings(), before_seconds_ago=DAY) == 10
    assert job_ids(db) == set(recent)
    assert execution_job_ids(db) == set(recent)


def test_exact_multiple_of_batch_size(db, monkeypatch):
    monkeypatch.setattr(cleanup, "BATCH_SIZE", 3)
    old = finished_jobs(CleanupNoopJob, 6)
    age(db, old, 2 * DAY)
    assert cleanup.cleanup_preserved_jobs(db, settings(), before_seconds_ago=DAY) == 6
    assert job_ids(db) == set()
    assert cleanup.cleanup_preserved_jobs(db, settings(), before_seconds_ago=DAY) == 0


def test_rows_locked_by_another_session_are_skipped_not_waited_for(db, database_url):
    old = finished_jobs(CleanupNoopJob, 3)
    age(db, old, 2 * DAY)
    with psycopg.connect(database_url) as other:
        other.execute("SELECT id FROM good_jobs WHERE id = %s FOR UPDATE", (old[0],))
        db.execute("SET lock_timeout = '5s'")
        t0 = time.monotonic()
        assert cleanup.cleanup_preserved_jobs(db, settings(), before_seconds_ago=DAY) == 2
        assert time.monotonic() - t0 < 4
        other.rollback()
    db.execute("RESET lock_timeout")
    assert job_ids(db) == {old[0]}
    assert cleanup.cleanup_preserved_jobs(db, settings(), before_seconds_ago=DAY) == 1


# --- CleanupSchedule --------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def schedule(every_jobs: int, every_seconds: float, clock: FakeClock) -> cleanup.CleanupSchedule:
    sched = cleanup.CleanupSchedule(
        Settings(cleanup_interval_jobs=every_jobs, cleanup_interval_seconds=every_seconds)
    )
    sched._monotonic = clock
    sched.last = clock()
    return sched


def test_schedule_due_after_interval_jobs():
    clock = FakeClock()
    sched = schedule(5, False, clock)
    assert [sched.record(1) for _ in range(4)] == [False] * 4
    assert sched.record(1) is True
    # The count starts again after a cleanup.
    assert sched.record(4) is False
    assert sched.record(1) is True
    # A batch bigger than the interval is due at once, and only once.
    assert sched.record(12) is True
    assert sched.record(1) is False


def test_schedule_due_after_interval_seconds():
    clock = FakeClock()
    sched = schedule(False, 60, clock)
    clock.now += 59.9
    assert sched.record(1) is False
    clock.now += 0.1
    assert sched.record(1) is True
    # The timer restarts at the cleanup.
    clock.now += 30
    assert sched.record(1000) is False
    clock.now += 30
    assert sched.record(0) is True


def test_schedule_either_bound_makes_it_due():
    clock = FakeClock()
    sched = schedule(3, 60, clock)
    assert sched.record(3) is True
    clock.now += 61
    assert sched.record(1) is True
    # Both counters reset, whichever bound fired.
    assert sched.record(2) is False
    clock.now += 59
    assert sched.record(0) is False
    assert sched.record(1) is True


def test_schedule_false_disables_both_bounds():
    clock = FakeClock()
    sched = schedule(False, False, clock)
    for _ in range(10):
        clock.now += 10 * DAY
        assert sched.record(10_000) is False


def test_schedule_minus_one_is_due_every_time_as_in_goodjob():
    clock = FakeClock()
    assert all(schedule(-1, False, clock).record(1) for _ in range(5))
    assert all(schedule(False, -1, clock).record(0) for _ in range(5))


def test_schedule_reads_the_settings():
    sched = cleanup.CleanupSchedule(Settings())
    assert sched.every_jobs == 1000 and sched.every_seconds == 600.0
    assert sched.record(999) is False
    assert sched.record(1) is True


# --- CLI --------------------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["GOOD_JOB_DATABASE_URL"] = os.environ["GOOD_JOB_DATABASE_URL"]
    return subprocess.run(
        supervisor_command(*args),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_cleanup_preserved_jobs(db):
    ok_old = finished_jobs(CleanupNoopJob, 2)
    failed_old = finished_jobs(CleanupBoomJob, 1)
    recent = finished_jobs(CleanupNoopJob, 1)
    pending = CleanupNoopJob.set(wait=3600).perform_later().id
    age(db, ok_old + failed_old, 2 * DAY)

    proc = run_cli("cleanup-preserved-jobs", f"--before-seconds-ago={DAY}", "--keep-discarded")
    assert proc.returncode == 0, proc.stderr
    assert "deleted 2 job(s)" in proc.stdout
    assert job_ids(db) == set(failed_old) | set(recent) | {pending}
    assert execution_job_ids(db) == set(failed_old) | set(recent)

    proc = run_cli("cleanup-preserved-jobs", f"--before-seconds-ago={DAY}")
    assert proc.returncode == 0, proc.stderr
    assert "deleted 1 job(s)" in proc.stdout
    assert job_ids(db) == set(recent) | {pending}
    assert execution_job_ids(db) == set(recent)


def test_cli_cleanup_uses_the_default_cutoff(db):
    two_weeks = 14 * DAY
    older = finished_jobs(CleanupNoopJob, 1)
    younger = finished_jobs(CleanupNoopJob, 1)
    age(db, older, two_weeks + 3600)
    age(db, younger, two_weeks - 3600)
    proc = run_cli("cleanup-preserved-jobs")
    assert proc.returncode == 0, proc.stderr
    assert "deleted 1 job(s)" in proc.stdout
    assert job_ids(db) == set(younger)


# --- the worker triggers cleanup --------------------------------------------------------------


def finished_count(db) -> int:
    return db.execute("SELECT count(*) FROM good_jobs WHERE finished_at IS NOT NULL").fetchone()[0]


def test_worker_cleans_up_every_cleanup_interval_jobs(db):
    old = finished_jobs(CleanupNoopJob, 3)
    age(db, old, 30 * DAY)
    worker_settings = settings(
        cleanup_interval_jobs=4, cleanup_interval_seconds=False, max_threads=1, poll_interval=0.2
    )
    worker = Worker(worker_settings).start()
    try:
        for i in range(3):
            CleanupNoopJob.perform_later(str(i))
        assert wait_for(lambda: finished_count(db) == 6)
        time.sleep(0.3)
        assert set(old) <= job_ids(db)  # 3 jobs of 4: not due yet
        CleanupNoopJob.perform_later("4th")
        assert wait_for(lambda: not (set(old) & job_ids(db)))
    finally:
        assert worker.shutdown(10)
    assert finished_count(db) == 4
    assert not (set(old) & execution_job_ids(db))


def test_worker_does_not_clean_up_when_disabled(db):
    old = finished_jobs(CleanupNoopJob, 2)
    age(db, old, 30 * DAY)
    worker = Worker(
        settings(cleanup_interval_jobs=False, cleanup_interval_seconds=False, max_threads=2)
    ).start()
    try:
        for i in range(5):
            CleanupNoopJob.perform_later(str(i))
        assert wait_for(lambda: finished_count(db) == 7)
        time.sleep(0.3)
    finally:
        assert worker.shutdown(10)
    assert set(old) <= job_ids(db)


def test_inline_mode_does_not_run_cleanup(db):
    # Only the worker's completer runs scheduled cleanup; perform_inline leaves old rows alone.
    gj.configure(cleanup_interval_jobs=1, cleanup_interval_seconds=False)
    old = finished_jobs(CleanupNoopJob, 1)
    age(db, old, 30 * DAY)
    finished_jobs(CleanupNoopJob, 3)
    assert set(old) <= job_ids(db)


def test_schedule_due_by_time_when_idle_ignores_every_time_and_off():
    clock = FakeClock()
    sched = schedule(False, 60, clock)
    clock.now += 59
    assert sched.due_by_time() is False
    clock.now += 1
    assert sched.due_by_time() is True
    assert sched.due_by_time() is False  # the timer restarted
    clock.now += 10 * DAY
    assert schedule(-1, -1, clock).due_by_time() is False  # -1 means after every job, not idle
    assert schedule(5, False, clock).due_by_time() is False


def test_idle_worker_cleans_up_on_the_time_bound(db, monkeypatch):
    from goodjob_mp.worker import worker as worker_mod

    monkeypatch.setattr(worker_mod, "IDLE_CLEANUP_CHECK", 0.1)
    old = finished_jobs(CleanupNoopJob, 2)
    age(db, old, 30 * DAY)
    worker = Worker(
        settings(cleanup_interval_jobs=False, cleanup_interval_seconds=0.5, max_threads=1)
    ).start()
    try:
        # No job runs at all: the seconds bound alone makes the idle worker clean up.
        assert wait_for(lambda: not (set(old) & job_ids(db)), 10)
    finally:
        assert worker.shutdown(10)
