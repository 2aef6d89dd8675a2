"""Handing back a dead process's jobs: only attempts whose body really started count.

A worker claims short jobs hundreds at a time into a local buffer. When it is killed, the jobs
still in the buffer were never started: they must go back to the queue as if never claimed, with
no InterruptedError execution and nothing counted toward max_interrupts.
"""

from __future__ import annotations

import os
import signal
import uuid

import pytest

import goodjob_mp as gj
from goodjob_mp.db import job_store, start_journal
from tests import jobs_for_tests as J
from tests.supervising import Supervisor
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(120)


@pytest.fixture()
def records(tmp_path, monkeypatch):
    monkeypatch.setenv(J.RECORD_DIR_ENV, str(tmp_path))
    return tmp_path


def _claimed(db, process_id: uuid.UUID, n: int) -> list[uuid.UUID]:
    """Lock ``n`` fresh jobs to ``process_id`` exactly as a claim does."""
    with gj.bulk():
        for _ in range(n):
            J.noop.perform_later()
    jobs = job_store.claim_jobs(db, gj_selector(), process_id, n)
    assert len(jobs) == n
    return [j.id for j in jobs]


def gj_selector():
    from goodjob_mp.queues import parse_queue_selector

    return parse_queue_selector("*")


def _rows(db):
    return {
        r[0]: r[1:]
        for r in db.execute(
            "SELECT id, performed_at IS NOT NULL, executions_count, locked_by_id FROM good_jobs"
        )
    }


def test_hand_back_with_a_journal_keeps_only_started_attempts(db):
    process_id = uuid.uuid4()
    ids = _claimed(db, process_id, 3)
    journal = start_journal.StartJournal(process_id)
    try:
        journal.started(ids[0])
        assert job_store.hand_back_jobs(db, [process_id]) == 3
    finally:
        journal.close()
    rows = _rows(db)
    assert rows[ids[0]] == (True, 1, None)  # started: the next claimer records an interrupt
    assert rows[ids[1]] == (False, 0, None)  # buffered: back as if never claimed
    assert rows[ids[2]] == (False, 0, None)
    assert not start_journal.journal_path(process_id).exists()


def test_hand_back_without_a_journal_treats_every_claim_as_started(db):
    """Another host died: nothing here says which jobs it started, so stay conservative."""
    process_id = uuid.uuid4()
    ids = _claimed(db, process_id, 2)
    assert job_store.hand_back_jobs(db, [process_id]) == 2
    assert {v for k, v in _rows(db).items() if k in ids} == {(True, 1, None)}


def test_kill9_of_a_child_holding_a_buffer_records_only_the_started_job(tmp_path, records, db):
    sup = Supervisor(tmp_path, "--queues=*:1")
    try:
        [child] = sup.wait_ready()
        # Short jobs first, so the worker learns they are short and claims ahead into its buffer.
        with gj.bulk():
            for _ in range(50):
                J.noop.perform_later()
        assert wait_for(lambda: _unfinished(db) == 0), sup.output()
        with gj.bulk():
            blocker = J.sleepy.set(priority=-10).perform_later("blocker", 3.0)
            for _ in range(30):
                J.noop.perform_later()
        assert wait_for(lambda: J.lines(records, "started") == ["blocker"]), sup.output()
        # The one thread runs the blocker; the 30 short jobs wait, claimed, in the buffer.
        assert wait_for(lambda: _locked(db) == 31), sup.output()
        os.kill(child, signal.SIGKILL)
        assert wait_for(lambda: _unfinished(db) == 0, timeout=60), sup.output()
    finally:
        sup.stop()
    interrupted = db.execute(
        "SELECT active_job_id FROM good_job_executions WHERE error_event = 0"
    ).fetchall()
    assert [r[0] for r in interrupted] == [blocker.id]
    counts = db.execute(
        "SELECT count(*) FROM good_job_executions WHERE active_job_id <> %s GROUP BY active_job_id",
        (blocker.id,),
    ).fetchall()
    assert len(counts) == 80 and {c[0] for c in counts} == {1}
    assert J.lines(records, "started") == ["blocker", "blocker"]


def _unfinished(db) -> int:
    return db.execute("SELECT count(*) FROM good_jobs WHERE finished_at IS NULL").fetchone()[0]


def _locked(db) -> int:
    return db.execute("SELECT count(*) FROM good_jobs WHERE locked_by_id IS NOT NULL").fetchone()[0]
