"""Every setting whose documented value "-1" or "false" disables something really disables it.

The settings with such a value (docs/settings.md):
- cleanup_preserved_jobs_before_seconds_ago = -1: nothing is ever deleted (here);
- cleanup_interval_jobs / cleanup_interval_seconds = false: no scheduled cleanup
  (tests/test_cleanup.py::test_worker_does_not_clean_up_when_disabled and the schedule tests);
- cleanup_discarded_jobs = false: discarded jobs survive cleanup (here);
- dead_process_timeout = -1: no process is ever judged dead (here, with a real supervisor);
- enable_cron = false: a supervisor with cron entries enqueues none of them (here);
- preserve_job_records = false: finished jobs are deleted, not kept (here);
- poll_interval = -1 belongs to the worker's loop (helper "claim");
- heartbeat_interval = -1: no heartbeat writes and no spinning, in the worker and the
  supervisor (tests/test_heartbeat_disabled.py);
- null_scheduled_check_interval = -1: a supervisor never reads or names rows with a NULL
  scheduled_at (here, with a real supervisor).
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import uuid
from pathlib import Path

import goodjob_mp as gj
from goodjob_mp import cleanup
from goodjob_mp.cli import supervisor_command
from goodjob_mp.config import load_settings
from goodjob_mp.worker.worker import Worker
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent
DAY = 24 * 3600


class DisablingNoopJob(gj.Job):
    def perform(self) -> None:
        pass


class DisablingBoomJob(gj.Job):
    def perform(self) -> None:
        raise RuntimeError("boom")


def finished(count: int, job: type[gj.Job] = DisablingNoopJob) -> list[uuid.UUID]:
    ids = [job.perform_later().id for _ in range(count)]
    gj.perform_inline()
    return ids


def age_all(db, seconds: float) -> None:
    db.execute(
        "UPDATE good_jobs SET finished_at = finished_at - make_interval(secs => %s)"
        " WHERE finished_at IS NOT NULL",
        (seconds,),
    )


def count_jobs(db) -> int:
    return db.execute("SELECT count(*) FROM good_jobs").fetchone()[0]


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        supervisor_command(*args),
        cwd=ROOT,
        env=dict(os.environ, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


# --- cleanup_preserved_jobs_before_seconds_ago = -1 ------------------------------------------


def test_cleanup_cutoff_minus_one_deletes_nothing(db):
    finished(3)
    age_all(db, 30 * DAY)
    settings = load_settings({"cleanup_preserved_jobs_before_seconds_ago": -1})
    assert cleanup.cleanup_preserved_jobs(db, settings) == 0
    assert count_jobs(db) == 3


def test_cleanup_cutoff_minus_one_from_the_environment_deletes_nothing_from_the_cli(db):
    finished(3)
    age_all(db, 30 * DAY)
    proc = run_cli(
        "cleanup-preserved-jobs", GOOD_JOB_CLEANUP_PRESERVED_JOBS_BEFORE_SECONDS_AGO="-1"
    )
    assert proc.returncode == 0, proc.stderr
    assert "disabled" in proc.stdout
    proc = run_cli("cleanup-preserved-jobs", "--before-seconds-ago=-1")
    assert proc.returncode == 0, proc.stderr
    assert count_jobs(db) == 3


def test_cleanup_cli_refuses_a_negative_or_nan_cutoff_in_one_line(db):
    for value in ("-5", "nan", "inf"):
        proc = run_cli("cleanup-preserved-jobs", f"--before-seconds-ago={value}")
        assert proc.returncode == 2, proc.stdout
        assert "Traceback" not in proc.stderr
        assert "--before-seconds-ago" in proc.stderr


def test_worker_cleaning_after_every_job_with_cutoff_minus_one_keeps_everything(db):
    finished(2)
    age_all(db, 30 * DAY)
    settings = load_settings(
        {
            "cleanup_preserved_jobs_before_seconds_ago": -1,
            "cleanup_interval_jobs": -1,
            "max_threads": 1,
            "poll_interval": 0.2,
        }
    )
    worker = Worker(settings).start()
    try:
        for _ in range(3):
            DisablingNoopJob.perform_later()
        assert wait_for(
            lambda: (
                db.execute(
                    "SELECT count(*) FROM good_jobs WHERE finished_at IS NOT NULL"
                ).fetchone()[0]
                == 5
            )
        )
    finally:
        assert worker.shutdown(10)
    assert count_jobs(db) == 5


# --- cleanup_discarded_jobs = false, preserve_job_records = false ----------------------------


def test_cleanup_discarded_jobs_false_keeps_jobs_that_finished_with_an_error(db):
    ok = finished(1)
    failed = finished(1, DisablingBoomJob)
    age_all(db, 30 * DAY)
    settings = load_settings({"cleanup_discarded_jobs": False})
    assert cleanup.cleanup_preserved_jobs(db, settings) == 1
    assert {r[0] for r in db.execute("SELECT id FROM good_jobs")} == set(failed)
    assert ok


def test_preserve_job_records_false_keeps_no_finished_job(db):
    gj.configure(preserve_job_records=False)
    finished(2)
    assert count_jobs(db) == 0


# --- dead_process_timeout = -1 and enable_cron = false, in a real supervisor -----------------

APP = """
import goodjob_mp as gj

@gj.job(queue="disabling_cron")  # not served: the supervisor stays idle
def disabling_cron_job() -> None:
    pass

gj.configure(cron={"every_second": {"cron": "* * * * * *", "class": disabling_cron_job}})
"""


def _ghost_with_a_locked_job(db) -> uuid.UUID:
    """A process row an hour stale, no lock held: dead by any enabled sweep; it holds a job."""
    ghost = uuid.uuid4()
    stale = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(hours=1)
    db.execute(
        "INSERT INTO good_job_processes (id, created_at, updated_at, state, lock_type)"
        " VALUES (%s, %s, %s, '{}', 0)",
        (ghost, stale, stale),
    )
    job_id = DisablingNoopJob.set(queue="elsewhere").perform_later().id
    db.execute(
        "UPDATE good_jobs SET locked_by_id = %s, locked_at = %s, performed_at = %s WHERE id = %s",
        (ghost, stale, stale, job_id),
    )
    return ghost


def _locked_by(db, ghost: uuid.UUID) -> int:
    return db.execute(
        "SELECT count(*) FROM good_jobs WHERE locked_by_id = %s", (ghost,)
    ).fetchone()[0]


def test_dead_process_timeout_minus_one_and_cron_off_in_a_real_supervisor(db, tmp_path):
    (tmp_path / "disabling_app.py").write_text(APP)
    ghost = _ghost_with_a_locked_job(db)
    args = ("--app=disabling_app", "--queues=disabling:1", "--idle-timeout=3")
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}

    proc = run_cli(*args, GOOD_JOB_DEAD_PROCESS_TIMEOUT="-1", **env)
    assert proc.returncode == 0, proc.stderr
    assert _locked_by(db, ghost) == 1  # never judged dead
    assert (
        db.execute("SELECT count(*) FROM good_jobs WHERE cron_key IS NOT NULL").fetchone()[0] == 0
    )

    # The same run with both switched on: the ghost's job is handed back and cron enqueues.
    proc = run_cli(*args, "--enable-cron", **env)
    assert proc.returncode == 0, proc.stderr
    assert _locked_by(db, ghost) == 0
    assert db.execute("SELECT count(*) FROM good_jobs WHERE cron_key IS NOT NULL").fetchone()[0] > 0


# --- null_scheduled_check_interval = -1, in a real supervisor ---------------------------------


def test_null_scheduled_check_interval_minus_one_in_a_real_supervisor(db):
    stuck = DisablingNoopJob.set(queue="elsewhere").perform_later().id
    db.execute("UPDATE good_jobs SET scheduled_at = NULL WHERE id = %s", (stuck,))
    args = ("--queues=disabling:1", "--idle-timeout=3")

    proc = run_cli(*args, GOOD_JOB_NULL_SCHEDULED_CHECK_INTERVAL="-1")
    assert proc.returncode == 0, proc.stderr
    assert "has no scheduled_at" not in proc.stderr + proc.stdout

    # The same run with the check every 0.2 s names the row.
    proc = run_cli(*args, GOOD_JOB_NULL_SCHEDULED_CHECK_INTERVAL="0.2")
    assert proc.returncode == 0, proc.stderr
    assert f"job {stuck} " in proc.stderr and "has no scheduled_at" in proc.stderr
