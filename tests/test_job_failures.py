"""How one attempt fails: job code that raises BaseException (sys.exit, KeyboardInterrupt),
internal errors, and error text that a Postgres column would refuse. Run in real workers and a
real supervisor against the test database."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

import goodjob_mp as gj
from goodjob_mp.cli import supervisor_command
from goodjob_mp.config import load_settings
from goodjob_mp.worker.worker import Worker
from tests import jobs_for_jobsapi as A
from tests import jobs_for_tests as J
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(90)
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def records(tmp_path, monkeypatch):
    monkeypatch.setenv(J.RECORD_DIR_ENV, str(tmp_path))
    return tmp_path


def row(db, job_id, columns="finished_at, error, error_event, executions_count, scheduled_at"):
    return db.execute(f"SELECT {columns} FROM good_jobs WHERE id = %s", (job_id,)).fetchone()


def executions(db, job_id):
    return db.execute(
        "SELECT error, error_event FROM good_job_executions WHERE active_job_id = %s "
        "ORDER BY created_at",
        (job_id,),
    ).fetchall()


def test_sys_exit_in_a_job_fails_that_job_once_in_a_real_worker(db, records):
    handle = A.ExitingJob.perform_later(3)
    ok = A.jobsapi_ok.perform_later("after")
    worker = Worker(load_settings({"queues": "jobsapi", "max_threads": 1})).start()
    try:
        assert wait_for(lambda: row(db, handle.id)[0] is not None)
        assert wait_for(lambda: row(db, ok.id)[0] is not None)  # the thread survived
    finally:
        worker.shutdown(10)
    finished, error, event, count, _ = row(db, handle.id)
    assert (error, event, count) == ("SystemExit: 3", 1, 1)
    assert executions(db, handle.id) == [("SystemExit: 3", 1)]
    assert J.lines(records, "exiting") == ["1"]


def test_sys_exit_with_retry_on_unhandled_error_backs_off(db, records):
    handle = A.ExitingJob.perform_later(0)
    settings = load_settings(
        {"queues": "jobsapi", "max_threads": 1, "retry_on_unhandled_error": True}
    )
    worker = Worker(settings).start()
    try:
        assert wait_for(lambda: executions(db, handle.id))
    finally:
        worker.shutdown(10)
    finished, error, event, count, scheduled_at = row(db, handle.id)
    updated = row(db, handle.id, "updated_at")[0]
    assert finished is None and (error, event, count) == ("SystemExit: 0", 1, 1)
    assert (scheduled_at - updated).total_seconds() >= 2.5  # polynomial back-off, not "now"
    assert J.lines(records, "exiting") == ["1"]


def test_keyboard_interrupt_in_a_job_follows_its_retry_on_rule_in_a_supervisor(
    db, records, tmp_path
):
    handle = A.InterruptingJob.perform_later()
    log_path = tmp_path / "sup.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [*supervisor_command(), "--app", "tests.jobs_for_jobsapi", "--queues", "jobsapi:1"],
            cwd=ROOT,
            env={**os.environ, "GOOD_JOB_POLL_INTERVAL": "1"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            assert wait_for(lambda: row(db, handle.id)[0] is not None, 60), log_path.read_text()
            assert len(J.lines(records, "interrupting")) == 2
            ok = A.jobsapi_ok.perform_later("still-up")
            assert wait_for(lambda: J.lines(records, "ok") == ["still-up"], 60)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    assert row(db, ok.id, "error")[0] is None
    assert row(db, handle.id)[1:4] == ("KeyboardInterrupt: ", 4, 2)
    assert executions(db, handle.id) == [("KeyboardInterrupt: ", 3), ("KeyboardInterrupt: ", 4)]
    assert "restart" not in log_path.read_text().lower()


def test_an_internal_error_backs_the_job_off_instead_of_retrying_at_once(db):
    job_id = uuid.uuid4()
    params = {
        "job_class": A.ExitingJob.job_class_name,
        "job_id": str(job_id),
        "queue_name": "jobsapi",
        "arguments": [1],
        "executions": "not a number",  # breaks goodjob_mp's own bookkeeping, not the job
    }
    db.execute(
        "INSERT INTO good_jobs (id, active_job_id, job_class, queue_name, serialized_params, "
        "scheduled_at, created_at, updated_at) VALUES (%s, %s, %s, 'jobsapi', %s, "
        "now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC')",
        (job_id, job_id, A.ExitingJob.job_class_name, json.dumps(params)),
    )
    worker = Worker(load_settings({"queues": "jobsapi", "max_threads": 1})).start()
    try:
        assert wait_for(lambda: executions(db, job_id))
    finally:
        worker.shutdown(10)
    finished, error, event, count, scheduled_at = row(db, job_id)
    updated = row(db, job_id, "updated_at")[0]
    assert finished is None and event == 1 and error.startswith("ValueError")
    assert (scheduled_at - updated).total_seconds() >= 2.5
    assert count == 1
    assert gj.perform_inline() == 0  # not due again yet


def test_an_error_message_with_nul_and_a_lone_surrogate_is_written_escaped(db, records):
    bad = A.NulMessageJob.perform_later()
    ok = A.jobsapi_ok.perform_later("beside")
    worker = Worker(load_settings({"queues": "jobsapi", "max_threads": 2})).start()
    try:
        assert wait_for(lambda: row(db, bad.id)[0] is not None and row(db, ok.id)[0] is not None)
    finally:
        worker.shutdown(10)
    expected = "ValueError: bad\\u0000byte and a lone \\udc80 surrogate"
    assert row(db, bad.id)[1:3] == (expected, 1)
    assert executions(db, bad.id) == [(expected, 1)]
    assert row(db, ok.id, "error")[0] is None
    assert worker.fatal_error is None


def test_clean_text_leaves_ordinary_text_alone():
    from goodjob_mp.execution import clean_text

    assert clean_text("plain") == "plain"
    assert clean_text("größe ✓") == "größe ✓"
    assert clean_text("a\x00b") == "a\\u0000b"
    assert clean_text("\ud800x") == "\\ud800x"
