"""Inline execution mode (goodjob_mp.inline): ``perform_later`` performs the job it enqueued and
the jobs that job enqueues, nothing else (issue 15.9), as a registered process whose locks the
sweep can judge (issue 15.14)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import goodjob_mp as gj
from goodjob_mp.db.job_store import utcnow
from goodjob_mp.supervisor.maintenance import Registry
from tests import jobs_for_tests as J
from tests.test_registry_lock import lock_holders
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent
ran: list[str] = []
seen_rows: list[tuple] = []


@pytest.fixture(autouse=True)
def _clear():
    ran.clear()
    seen_rows.clear()


@pytest.fixture()
def records(tmp_path, monkeypatch):
    monkeypatch.setenv(J.RECORD_DIR_ENV, str(tmp_path))
    return tmp_path


@gj.job(queue="mine")
def leaf(tag: str) -> None:
    ran.append(f"leaf:{tag}")


@gj.job(queue="mine")
def parent(tag: str) -> None:
    ran.append(f"parent-start:{tag}")
    leaf.perform_later(f"{tag}.1")
    leaf.set(queue="elsewhere").perform_later(f"{tag}.2")  # its own children, any queue
    leaf.set(wait=3600).perform_later(f"{tag}.later")  # scheduled: only enqueued
    ran.append(f"parent-end:{tag}")


@gj.job(queue="mine")
def introspect() -> None:
    """Records the good_job_processes row that owns this job while it runs."""
    from goodjob_mp.db.connection import connect

    with connect() as conn:
        seen_rows.extend(
            conn.execute(
                "SELECT p.id, p.lock_type, p.state->>'execution_mode', (p.state->>'pid')::int"
                " FROM good_jobs j JOIN good_job_processes p ON p.id = j.locked_by_id"
                " WHERE j.job_class LIKE '%%introspect'"
            ).fetchall()
        )


class Transient(Exception):
    pass


class RetriedAtOnce(gj.Job):
    queue_name = "mine"
    retry_on = [gj.RetryOn(Transient, wait=0, attempts=3, jitter=0)]

    def perform(self, failures: int) -> None:
        ran.append(f"retry:{self.executions}")
        if self.executions <= failures:
            raise Transient("not yet")


class RetriedLater(RetriedAtOnce):
    retry_on = [gj.RetryOn(Transient, wait=3600, attempts=3, jitter=0)]


def unfinished(db) -> dict[str, int]:
    rows = db.execute(
        "SELECT queue_name, count(*) FROM good_jobs WHERE finished_at IS NULL GROUP BY 1"
    )
    return dict(rows.fetchall())


def test_perform_later_performs_only_its_own_job(db, records):
    waiting = [J.remember.set(queue=q).perform_later(q) for q in ("other", "mine", "default")]
    gj.configure(execution_mode="inline")
    leaf.perform_later("me")
    assert ran == ["leaf:me"]
    assert J.lines(records, "remember") == []  # the waiting jobs stay for their workers
    assert unfinished(db) == {"other": 1, "mine": 1, "default": 1}
    rows = db.execute(
        "SELECT count(*) FROM good_jobs WHERE id = ANY(%s) AND locked_by_id IS NULL"
        " AND performed_at IS NULL",
        ([w.id for w in waiting],),
    )
    assert rows.fetchone()[0] == 3


def test_jobs_a_job_enqueues_run_after_it_not_inside_it(db, records):
    J.remember.set(queue="elsewhere").perform_later("not mine")
    gj.configure(execution_mode="inline")
    parent.perform_later("p")
    assert ran == ["parent-start:p", "parent-end:p", "leaf:p.1", "leaf:p.2"]
    assert J.lines(records, "remember") == []
    assert unfinished(db) == {"elsewhere": 1, "mine": 1}  # the waiting job and p.later


def test_a_retry_due_at_once_runs_again_at_once_and_a_later_one_waits(db):
    """GoodJob's inline adapter loops while the retried job is due."""
    gj.configure(execution_mode="inline")
    RetriedAtOnce.perform_later(1)
    assert ran == ["retry:1", "retry:2"]
    ran.clear()
    RetriedLater.perform_later(1)
    assert ran == ["retry:1"]
    assert unfinished(db) == {"mine": 1}


def test_bulk_in_inline_mode_performs_the_bulk(db, records):
    J.remember.set(queue="other").perform_later("waiting")
    gj.configure(execution_mode="inline")
    with gj.bulk():
        leaf.perform_later("a")
        leaf.perform_later("b")
    assert sorted(ran) == ["leaf:a", "leaf:b"]
    assert unfinished(db) == {"other": 1}


def test_perform_inline_still_drains_due_jobs_of_its_queues(db, records):
    J.remember.set(queue="other").perform_later("o")
    J.remember.set(queue="mine").perform_later("m")
    assert gj.perform_inline("mine") == 1
    assert J.lines(records, "remember") == ["m"]
    assert gj.perform_inline() == 1
    assert J.lines(records, "remember") == ["m", "o"]


def test_inline_performer_is_a_registered_locked_process_while_it_runs(db):
    gj.configure(execution_mode="inline")
    introspect.perform_later()
    [(process_id, lock_type, mode, pid)] = seen_rows
    assert (lock_type, mode, pid) == (0, "inline", os.getpid())
    assert db.execute("SELECT count(*) FROM good_job_processes").fetchone()[0] == 0
    assert lock_holders(db, process_id) == []


INLINE_SCRIPT = """
import goodjob_mp as gj
from tests import jobs_for_tests as J
gj.configure(execution_mode="inline")
J.sleepy.perform_later("inline", 600)
"""


def test_a_killed_inline_process_has_its_job_handed_back_by_the_sweep(db, records):
    proc = subprocess.Popen([sys.executable, "-c", INLINE_SCRIPT], cwd=ROOT, env=os.environ.copy())
    try:
        assert wait_for(lambda: J.lines(records, "started") == ["inline"], 60)
        owner = db.execute("SELECT locked_by_id FROM good_jobs").fetchone()[0]
        row = db.execute(
            "SELECT lock_type, (state->>'pid')::int FROM good_job_processes WHERE id = %s",
            (owner,),
        ).fetchone()
        assert row == (0, proc.pid)
        assert lock_holders(db, owner)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    registry = Registry(uuid.uuid4(), lambda: {"pid": 0})
    registry.open()
    try:
        assert wait_for(lambda: not lock_holders(db, owner), 30)
        assert registry.sweep(20.0) == 0  # lock gone, but its row is fresh: not yet
        db.execute(
            "UPDATE good_job_processes SET updated_at = %s WHERE id = %s",
            (utcnow() - dt.timedelta(seconds=60), owner),
        )
        assert registry.sweep(20.0) == 1
    finally:
        registry.deregister()
    assert db.execute("SELECT locked_by_id FROM good_jobs").fetchone()[0] is None
