"""Results are never dropped: one refused row fails alone, and the completer outlives the
executors (issue 15.18).

A trigger on good_job_executions stands in for any row the database refuses (a data error, a
constraint): it rejects the success record of jobs whose arguments carry a marker, or every
record of a job with another marker.
"""

from __future__ import annotations

import uuid

import pytest

from goodjob_mp import events, features
from goodjob_mp.config import load_settings
from goodjob_mp.db import job_store
from goodjob_mp.db.connection import connect
from goodjob_mp.queues import QueueSelector
from goodjob_mp.worker.result_writer import RESULT_WRITE_ERROR, ResultWriter
from goodjob_mp.worker.worker import Worker
from tests import jobs_for_tests as J
from tests.waiting import wait_for

REJECT_TRIGGER = """
CREATE OR REPLACE FUNCTION test_reject_result() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.serialized_params::text LIKE '%%reject-always%%'
       OR (NEW.error IS NULL AND NEW.serialized_params::text LIKE '%%reject-success%%') THEN
        RAISE EXCEPTION 'test trigger refuses this result';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER test_reject_result BEFORE INSERT ON good_job_executions
    FOR EACH ROW EXECUTE FUNCTION test_reject_result();
"""


@pytest.fixture()
def rejecting(db):
    db.execute(REJECT_TRIGGER)
    yield db
    db.execute("DROP TRIGGER IF EXISTS test_reject_result ON good_job_executions")


@pytest.fixture()
def records(tmp_path, monkeypatch):
    monkeypatch.setenv(J.RECORD_DIR_ENV, str(tmp_path))
    return tmp_path


def _rows(db):
    return {
        r[0]: r[1:]
        for r in db.execute(
            "SELECT serialized_params->'arguments'->>0, finished_at IS NOT NULL, error,"
            " locked_by_id IS NOT NULL FROM good_jobs"
        )
    }


def test_a_refused_row_fails_alone_and_is_recorded_as_an_error(rejecting):
    db = rejecting
    tags = ["a", "b", "reject-success", "c", "reject-always"]
    for tag in tags:
        J.remember.perform_later(tag)
    process_id = uuid.uuid4()
    lost_events = []
    unsubscribe = events.subscribe("result_lost", lambda **p: lost_events.append(p))
    try:
        with connect() as conn:
            claimed = job_store.claim_jobs(conn, QueueSelector("all", ()), process_id, len(tags))
            assert len(claimed) == len(tags)
            now = job_store.utcnow()
            results = [job_store.JobResult(j.id, now, now, True) for j in claimed]
            conn, lost = ResultWriter(process_id, "test", connect).write(conn, results)
            conn.close()
    finally:
        unsubscribe()
    assert lost == []
    rows = _rows(db)
    for tag in ("a", "b", "c"):
        assert rows[tag] == (True, None, False), tag
    finished, error, locked = rows["reject-success"]
    assert finished and not locked
    assert error.startswith(f"{RESULT_WRITE_ERROR}: the result of this attempt (succeeded)"), error
    assert "test trigger refuses this result" in error
    recorded = db.execute(
        "SELECT e.error FROM good_job_executions e JOIN good_jobs j USING (active_job_id)"
        " WHERE j.serialized_params->'arguments'->>0 = 'reject-success'"
    ).fetchall()
    assert recorded == [(error,)]
    # Refused even as an error: not recorded, but said so; the job stays ours to hand back.
    assert rows["reject-always"] == (False, None, True)
    assert [e["job_id"] for e in lost_events] == [
        j.id for j in claimed if j.serialized_params["arguments"] == ["reject-always"]
    ]


def test_a_refused_result_does_not_stop_the_pool_or_cut_off_jobs_beside_it(rejecting, records):
    db = rejecting
    worker = Worker(load_settings({"max_threads": 2, "poll_interval": 0.2})).start()
    try:
        J.sleepy.perform_later("beside", 1.0)
        assert wait_for(lambda: J.lines(records, "started") == ["beside"])
        J.remember.perform_later("reject-success")
        assert wait_for(lambda: J.lines(records, "remember") == ["reject-success"])
        J.remember.perform_later("after")
        assert wait_for(lambda: "after" in J.lines(records, "remember"))
        assert wait_for(
            lambda: (
                db.execute("SELECT count(*) FROM good_jobs WHERE finished_at IS NULL").fetchone()[0]
                == 0
            )
        )
    finally:
        assert worker.shutdown(10)
    assert worker.fatal_error is None
    rows = _rows(db)
    assert rows["beside"][:2] == (True, None)
    assert rows["after"][:2] == (True, None)
    assert rows["reject-success"][1].startswith(RESULT_WRITE_ERROR)


def test_the_completer_writes_every_running_jobs_result_before_the_worker_stops(db, records):
    """A bug while writing one batch stops the worker, but the completer goes on until the
    executors are done: the job running beside it is recorded, not cut off."""
    marker: list[uuid.UUID] = []

    def buggy_hook(conn, results):
        if any(r.id in marker for r in results):
            raise RuntimeError("a bug in a finish hook")

    remove = features.add_finish_hook(buggy_hook)
    worker = Worker(load_settings({"max_threads": 2, "poll_interval": 0.2})).start()
    try:
        J.sleepy.perform_later("beside", 1.0)
        assert wait_for(lambda: J.lines(records, "started") == ["beside"])
        marker.append(J.remember.perform_later("trips-the-bug").id)
        assert worker.join_stopped(20)
        assert isinstance(worker.fatal_error, RuntimeError)
        # Stopped means every running job's result is written.
        assert J.lines(records, "finished") == ["beside"]
        rows = _rows(db)
        assert rows["beside"] == (True, None, False)
    finally:
        remove()
        worker.shutdown(10)
