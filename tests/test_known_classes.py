"""Jobs of classes this process cannot resolve are left alone (issue 15.5), unless asked to
discard them."""

from __future__ import annotations

import json
import logging

import pytest

from goodjob_mp.config import ConfigError, load_settings
from goodjob_mp.worker.worker import Worker
from tests import jobs_for_tests as J
from tests.waiting import wait_for


@pytest.fixture()
def records(tmp_path, monkeypatch):
    monkeypatch.setenv(J.RECORD_DIR_ENV, str(tmp_path))
    return tmp_path


def insert_foreign(db, job_class: str, n: int = 1) -> None:
    for _ in range(n):
        db.execute(
            "INSERT INTO good_jobs (id, active_job_id, job_class, queue_name, priority,"
            " serialized_params, scheduled_at, created_at, updated_at)"
            " VALUES (gen_random_uuid(), gen_random_uuid(), %s, 'default', -5, %s,"
            " now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC')",
            (job_class, json.dumps({"job_class": job_class, "arguments": []})),
        )


def test_unknown_classes_are_never_claimed_and_logged_once(db, records, caplog):
    insert_foreign(db, "Rails::OnlyMailer", 3)
    with caplog.at_level(logging.WARNING, logger="goodjob_mp.worker"):
        worker = Worker(load_settings({"poll_interval": 0.2})).start()
        try:
            J.remember.perform_later("mine")
            assert wait_for(lambda: J.lines(records, "remember") == ["mine"])
            assert wait_for(lambda: worker.empty_claims >= 5)
        finally:
            assert worker.shutdown(10)
    rows = db.execute(
        "SELECT locked_by_id, performed_at, executions_count, finished_at FROM good_jobs"
        " WHERE job_class = 'Rails::OnlyMailer'"
    ).fetchall()
    assert rows == [(None, None, None, None)] * 3  # untouched, for a process that knows them
    assert caplog.text.count("unknown class 'Rails::OnlyMailer'") == 1


def test_discard_setting_keeps_the_old_behaviour(db, records):
    insert_foreign(db, "Rails::OnlyMailer")
    worker = Worker(load_settings({"on_unknown_job_class": "discard"})).start()
    try:
        assert wait_for(
            lambda: (
                db.execute(
                    "SELECT error_event FROM good_jobs WHERE job_class = 'Rails::OnlyMailer'"
                ).fetchone()[0]
                == 5
            )
        )
    finally:
        assert worker.shutdown(10)


def test_a_class_registered_later_is_claimed_from_then_on(db, records):
    import goodjob_mp as gj

    insert_foreign(db, "Late::Job")
    worker = Worker(load_settings({"poll_interval": 0.2})).start()
    try:
        assert wait_for(lambda: worker.empty_claims >= 2)

        class LateJob(gj.Job):
            job_class_name = "Late::Job"

            def perform(self) -> None:
                J.record("remember", "late")

        assert wait_for(lambda: J.lines(records, "remember") == ["late"])
    finally:
        assert worker.shutdown(10)


def test_bad_mode_is_refused():
    with pytest.raises(ConfigError, match="on_unknown_job_class"):
        load_settings({"on_unknown_job_class": "drop"})
    with pytest.raises(ConfigError, match="advisory_locks"):
        load_settings({"advisory_locks": "sometimes"})
