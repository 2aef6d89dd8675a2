"""GoodJob's per-job advisory locks survive a reconnect of the worker's fetcher session: the new
session takes them again, and a job whose lock someone else took in the gap is handed back, not
performed here (issue 13: otherwise a Rails GoodJob in its advisory strategy could run it too).

The session is cut with pg_terminate_backend, as a failover, a pooler restart or an idle-session
killer would."""

from __future__ import annotations

import logging
import uuid

import psycopg
import pytest

from goodjob_mp.config import load_settings
from goodjob_mp.db import job_store
from goodjob_mp.worker.job_locks import HeldJobLocks
from goodjob_mp.worker.worker import Worker
from tests import jobs_for_tests as J
from tests.waiting import wait_for

SETTINGS = {
    "advisory_locks": "always",
    "poll_interval": 0.2,
    "heartbeat_interval": 0.2,
    "enable_listen_notify": True,
}


@pytest.fixture()
def records(tmp_path, monkeypatch):
    monkeypatch.setenv(J.RECORD_DIR_ENV, str(tmp_path))
    return tmp_path


def lock_holders(db: psycopg.Connection, job_id: uuid.UUID) -> set[int]:
    key = job_store.job_lock_key(job_id)
    rows = db.execute(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND classid = ((%(k)s >> 32) & 4294967295)::oid"
        " AND objid = (%(k)s & 4294967295)::oid",
        {"k": key},
    ).fetchall()
    return {r[0] for r in rows}


def fetcher_pid(worker: Worker) -> int:
    conn = worker._fetch_conn
    assert conn is not None
    return conn.info.backend_pid


def held_by_fetcher(db: psycopg.Connection, worker: Worker, job_id: uuid.UUID) -> bool:
    conn = worker._fetch_conn
    return (
        conn is not None and not conn.closed and lock_holders(db, job_id) == {fetcher_pid(worker)}
    )


def test_a_reconnect_takes_the_locks_of_running_jobs_again(db, records):
    worker = Worker(load_settings({**SETTINGS, "max_threads": 2})).start()
    try:
        jobs = [J.gated.perform_later(tag) for tag in ("a", "b")]
        assert wait_for(lambda: sorted(J.lines(records, "started")) == ["a", "b"])
        assert all(held_by_fetcher(db, worker, j.id) for j in jobs)
        old = fetcher_pid(worker)
        db.execute("SELECT pg_terminate_backend(%s)", (old,))
        assert wait_for(lambda: fetcher_pid(worker) != old)
        # Checked from another session, as GoodJob's claim would see it.
        assert wait_for(lambda: all(held_by_fetcher(db, worker, j.id) for j in jobs)), [
            lock_holders(db, j.id) for j in jobs
        ]
        for tag in ("a", "b"):
            J.open_gate(records, tag)
        assert wait_for(lambda: sorted(J.lines(records, "finished")) == ["a", "b"])
        assert wait_for(lambda: worker.succeeded == 2)
        # Released on the session that holds them once the results are written.
        assert wait_for(lambda: not any(lock_holders(db, j.id) for j in jobs))
    finally:
        for tag in ("a", "b"):
            J.open_gate(records, tag)
        assert worker.shutdown(10)
    assert worker.errored == 0
    assert sorted(J.lines(records, "started")) == ["a", "b"]


def test_a_buffered_job_whose_lock_was_taken_in_the_gap_is_handed_back(
    db, records, database_url, caplog
):
    worker = Worker(load_settings({**SETTINGS, "max_threads": 1})).start()
    blocker = psycopg.connect(database_url)
    other = psycopg.connect(database_url, autocommit=True)
    try:
        # Short jobs first, so the worker buffers what waits behind a running one.
        for _ in range(10):
            J.noop.perform_later()
        assert wait_for(lambda: worker.succeeded == 10)
        worker._avg_duration = J.SHORT_JOB_SECONDS  # what they measure on an idle box
        running = J.gated.perform_later("running")
        assert wait_for(lambda: J.lines(records, "started") == ["running"])
        waiting = {tag: J.remember.perform_later(tag) for tag in ("x1", "x2", "x3")}
        assert wait_for(lambda: worker.buffered == 3)
        everything = [running, *waiting.values()]
        assert all(held_by_fetcher(db, worker, j.id) for j in everything)

        # Hold the reconnect back (it re-registers the process row first) so another session
        # can take one buffered job's lock in the gap, as a Rails GoodJob claiming it would.
        blocker.execute(
            "SELECT 1 FROM good_job_processes WHERE id = %s FOR UPDATE", (worker.process_id,)
        )
        old = fetcher_pid(worker)
        db.execute("SELECT pg_terminate_backend(%s)", (old,))
        assert wait_for(lambda: not lock_holders(db, running.id))
        taken = waiting["x2"].id
        other.execute("SELECT pg_advisory_lock(%s)", (job_store.job_lock_key(taken),))
        with caplog.at_level(logging.WARNING, logger="goodjob_mp.worker"):
            blocker.rollback()
            keep = [running, waiting["x1"], waiting["x3"]]
            assert wait_for(lambda: all(held_by_fetcher(db, worker, j.id) for j in keep)), [
                lock_holders(db, j.id) for j in keep
            ]
            assert fetcher_pid(worker) != old
            row = "SELECT locked_by_id, finished_at FROM good_jobs WHERE id = %s"
            assert wait_for(lambda: db.execute(row, (taken,)).fetchone() == (None, None))
            # Logged by the fetcher just after the hand-back commits: wait for it too.
            assert wait_for(lambda: "handed back 1" in caplog.text)

        J.open_gate(records, "running")
        assert wait_for(lambda: sorted(J.lines(records, "remember")) == ["x1", "x3"])
        empty = worker.empty_claims
        assert wait_for(lambda: worker.empty_claims >= empty + 3)  # polls passed x2 by
        assert sorted(J.lines(records, "remember")) == ["x1", "x3"]
        other.execute("SELECT pg_advisory_unlock(%s)", (job_store.job_lock_key(taken),))
        assert wait_for(lambda: sorted(J.lines(records, "remember")) == ["x1", "x2", "x3"])
        assert wait_for(lambda: worker.succeeded == 10 + 4)
    finally:
        J.open_gate(records, "running")
        blocker.close()
        other.close()
        assert worker.shutdown(10)
    assert worker.errored == 0
    assert sorted(J.lines(records, "remember")) == ["x1", "x2", "x3"]


def test_a_running_job_whose_lock_was_taken_in_the_gap_is_reported(
    db, records, database_url, caplog
):
    worker = Worker(load_settings({**SETTINGS, "max_threads": 1})).start()
    blocker = psycopg.connect(database_url)
    other = psycopg.connect(database_url, autocommit=True)
    try:
        running = J.gated.perform_later("running")
        assert wait_for(lambda: J.lines(records, "started") == ["running"])
        blocker.execute(
            "SELECT 1 FROM good_job_processes WHERE id = %s FOR UPDATE", (worker.process_id,)
        )
        old = fetcher_pid(worker)
        db.execute("SELECT pg_terminate_backend(%s)", (old,))
        assert wait_for(lambda: not lock_holders(db, running.id))
        other.execute("SELECT pg_advisory_lock(%s)", (job_store.job_lock_key(running.id),))
        with caplog.at_level(logging.ERROR, logger="goodjob_mp.worker"):
            blocker.rollback()
            assert wait_for(lambda: "may be running twice" in caplog.text)
            assert fetcher_pid(worker) != old
        assert str(running.id) in caplog.text
        J.open_gate(records, "running")
        assert wait_for(lambda: worker.succeeded == 1)
        # Not ours any more: the lock stays with the session that took it.
        assert lock_holders(db, running.id) == {other.info.backend_pid}
    finally:
        J.open_gate(records, "running")
        blocker.close()
        other.close()
        assert worker.shutdown(10)


GOODJOB_STATE = {
    "hostname": "rails",
    "pid": 1,
    "schedulers": [{"name": "GoodJob::Scheduler(queues=* max_threads=5)"}],
}


def test_jobs_claimed_before_a_goodjob_appeared_get_its_lock_when_it_does(db, records):
    """advisory_locks=auto: a job claimed (without GoodJob's lock) while no GoodJob ran, and
    still running when one registers, takes the lock then; else GoodJob's advisory strategy,
    which ignores locked_by_id, would run it too."""
    worker = Worker(load_settings({**SETTINGS, "advisory_locks": "auto", "max_threads": 1}))
    worker.start()
    try:
        running = J.gated.perform_later("running")
        assert wait_for(lambda: J.lines(records, "started") == ["running"])
        assert lock_holders(db, running.id) == set()
        db.execute(
            "INSERT INTO good_job_processes (id, created_at, updated_at, state)"
            " VALUES (gen_random_uuid(), now(), now(), %s)",
            (psycopg.types.json.Jsonb(GOODJOB_STATE),),
        )
        assert wait_for(lambda: worker._claim_statement.advisory_locks)
        assert wait_for(lambda: held_by_fetcher(db, worker, running.id))
        J.open_gate(records, "running")
        assert wait_for(lambda: worker.succeeded == 1)
        assert wait_for(lambda: not lock_holders(db, running.id))
    finally:
        J.open_gate(records, "running")
        assert worker.shutdown(10)


# --- the pieces: which locks are held (pure), and the relock statement -----------------------


def _claimed_job(advisory_locked: bool = True) -> job_store.ClaimedJob:
    return job_store.ClaimedJob(
        uuid.uuid4(), uuid.uuid4(), "X", "default", None, {}, None, None, 1, None, 0,
        advisory_locked,
    )  # fmt: skip


def test_held_locks_revoke_skips_unstarted_and_reports_running():
    locks = HeldJobLocks()
    buffered, running, unlocked = _claimed_job(), _claimed_job(), _claimed_job(False)
    locks.add([buffered, running, unlocked])
    assert sorted(locks.held_ids()) == sorted([buffered.id, running.id])
    assert locks.start(running.id)
    revoked = locks.revoke([buffered.id, running.id, uuid.uuid4()])
    assert revoked.unstarted == [buffered] and revoked.running == [running]
    assert len(locks) == 0
    assert not locks.start(buffered.id)  # the executor skips it, once
    assert locks.start(buffered.id)
    assert locks.forget([buffered.id, running.id]) == []  # nothing left to release


def test_held_locks_forget_returns_only_what_is_still_held():
    locks = HeldJobLocks()
    a, b = _claimed_job(), _claimed_job()
    locks.add([a, b])
    assert locks.forget([a.id]) == [a.id]
    assert locks.forget([a.id, b.id]) == [b.id]
    assert len(locks) == 0


def test_held_locks_track_unlocked_claims_until_they_lock():
    locks = HeldJobLocks(track_unlocked=True)
    a, b, c = _claimed_job(False), _claimed_job(False), _claimed_job(False)
    locks.add([a, b, c])
    assert len(locks) == 0 and sorted(locks.unlocked_ids()) == sorted([a.id, b.id, c.id])
    assert locks.start(b.id)
    locks.locked_now([a.id])
    assert locks.held_ids() == [a.id]
    revoked = locks.revoke([b.id, c.id])
    assert revoked.running == [b] and revoked.unstarted == [c]
    assert locks.unlocked_ids() == []
    assert locks.forget([a.id]) == [a.id]
    untracked = HeldJobLocks()
    untracked.add([_claimed_job(False)])
    assert untracked.unlocked_ids() == []


def _claim(db, n: int, process_id: uuid.UUID) -> list[uuid.UUID]:
    from goodjob_mp.queues import parse_queue_selector

    for _ in range(n):
        J.noop.perform_later()
    jobs = job_store.claim_jobs(
        db,
        parse_queue_selector("*"),
        process_id,
        n,
        statement=job_store.ClaimStatement(parse_queue_selector("*"), advisory_locks=True),
    )
    assert len(jobs) == n and all(j.advisory_locked for j in jobs)
    return [j.id for j in jobs]


def test_relock_takes_ours_again_and_reports_the_rest(db, database_url):
    process_id = uuid.uuid4()
    with psycopg.connect(database_url, autocommit=True) as lost_session:
        ours, finished, taken, gone = _claim(lost_session, 4, process_id)
    # The session is gone and its locks with it; meanwhile one job was finished elsewhere, one
    # is locked by another session, one row was deleted.
    db.execute("UPDATE good_jobs SET finished_at = now() WHERE id = %s", (finished,))
    db.execute("DELETE FROM good_jobs WHERE id = %s", (gone,))
    with (
        psycopg.connect(database_url, autocommit=True) as other,
        psycopg.connect(database_url, autocommit=True) as new_session,
    ):
        other.execute("SELECT pg_advisory_lock(%s)", (job_store.job_lock_key(taken),))
        lost = job_store.relock_jobs(new_session, [ours, finished, taken, gone], process_id)
        assert sorted(lost) == sorted([finished, taken, gone])
        me = new_session.info.backend_pid
        assert lock_holders(db, ours) == {me}
        assert lock_holders(db, finished) == set()  # not ours: released again
        assert lock_holders(db, gone) == set()
        assert lock_holders(db, taken) == {other.info.backend_pid}
