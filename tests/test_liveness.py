"""Process liveness: each good_job_processes row is judged by its writer's own rule, and the
sweep hands back only the jobs of processes that are really gone.

Rows are written as GoodJob writes them (tests/fixtures/goodjob-reference), with GoodJob's lock
key computed here independently (md5 of "good_job_processes-<id>", first 64 bits).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid

import psycopg
import pytest

from goodjob_mp.db import processes
from goodjob_mp.db.job_store import utcnow
from goodjob_mp.db.processes import GOODJOB_EXPIRED_INTERVAL, ProcessRow, is_dead
from goodjob_mp.supervisor.maintenance import Registry
from tests.goodjob_emulation import goodjob_key
from tests.reference import REFERENCE_DIR
from tests.waiting import backend_gone

TIMEOUT = 20.0  # dead_process_timeout


def goodjob_process_rows() -> list[dict]:
    path = REFERENCE_DIR / "good_job_processes.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def insert_goodjob_process(
    db: psycopg.Connection, *, age: float, lock_type: int | None = None
) -> uuid.UUID:
    """A process row exactly as GoodJob 4.19 wrote it (the running capsule), ``age`` s old."""
    row = goodjob_process_rows()[1]
    assert row["lock_type"] is None  # production GoodJob: advisory_lock_heartbeat off
    process_id = uuid.uuid4()
    updated = utcnow() - dt.timedelta(seconds=age)
    db.execute(
        "INSERT INTO good_job_processes (id, created_at, updated_at, state, lock_type)"
        " VALUES (%s, %s, %s, %s, %s)",
        (process_id, updated, updated, json.dumps(row["state"]), lock_type),
    )
    return process_id


def insert_locked_job(
    db: psycopg.Connection, owner: uuid.UUID, queue: str | None = "q"
) -> uuid.UUID:
    job_id = uuid.uuid4()
    now = utcnow()
    db.execute(
        "INSERT INTO good_jobs (id, active_job_id, job_class, queue_name, serialized_params,"
        " scheduled_at, created_at, updated_at, performed_at, locked_by_id, locked_at, lock_type)"
        " VALUES (%s, %s, 'RubyJob', %s, '{}', %s, %s, %s, %s, %s, %s, 0)",
        (job_id, job_id, queue, now, now, now, now, owner, now),
    )
    return job_id


def locked_by(db: psycopg.Connection, job_id: uuid.UUID) -> uuid.UUID | None:
    return db.execute("SELECT locked_by_id FROM good_jobs WHERE id = %s", (job_id,)).fetchone()[0]


def process_ids(db: psycopg.Connection) -> set[uuid.UUID]:
    return {row[0] for row in db.execute("SELECT id FROM good_job_processes")}


@pytest.fixture()
def registry():
    reg = Registry(uuid.uuid4(), lambda: {"pid": 0, "test": True})
    reg.open()
    yield reg
    reg.deregister()


@pytest.fixture()
def other_session(database_url):
    """A second session: stands in for a GoodJob process holding its row's lock."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


# --- the rule (pure) --------------------------------------------------------------------------

NOW = dt.datetime(2026, 1, 1, 12, 0, 0)


@pytest.mark.parametrize(
    ("lock_type", "locked", "age", "dead"),
    [
        # advisory rows: alive while the lock is held, however old the heartbeat
        (0, True, 3600, False),
        (0, False, TIMEOUT - 1, False),  # lock gone, heartbeat fresh: maybe reconnecting
        (0, False, TIMEOUT + 1, True),
        # lock-less rows (GoodJob in production): alive for GoodJob's 5 minutes
        (None, False, 31, False),  # GoodJob's 30-33 s refresh lag
        (None, False, GOODJOB_EXPIRED_INTERVAL - 1, False),
        (None, False, GOODJOB_EXPIRED_INTERVAL + 1, True),
        (None, True, 3600, False),
        (7, False, GOODJOB_EXPIRED_INTERVAL - 1, False),  # unknown lock types: the patient rule
    ],
)
def test_each_row_is_judged_by_its_writers_rule(lock_type, locked, age, dead):
    row = ProcessRow(uuid.uuid4(), lock_type, NOW - dt.timedelta(seconds=age), locked)
    assert is_dead(row, NOW, TIMEOUT) is dead


def test_a_timeout_longer_than_goodjobs_expiry_also_protects_lockless_rows():
    row = ProcessRow(uuid.uuid4(), None, NOW - dt.timedelta(seconds=400), False)
    assert not is_dead(row, NOW, 600.0)


# --- the sweep on real rows -------------------------------------------------------------------


def test_a_live_goodjob_process_without_a_lock_keeps_its_row_and_job(db, registry):
    """Issue 13.1: GoodJob refreshes lock-less rows every 30-33 s; 60 s is not dead."""
    alive = insert_goodjob_process(db, age=60)
    job = insert_locked_job(db, alive)
    assert registry.sweep(TIMEOUT) == 0
    assert alive in process_ids(db)
    assert locked_by(db, job) == alive


def test_an_expired_goodjob_process_is_removed_and_its_job_handed_back(db, registry):
    gone = insert_goodjob_process(db, age=GOODJOB_EXPIRED_INTERVAL + 10)
    job = insert_locked_job(db, gone)
    assert registry.sweep(TIMEOUT) == 1
    assert gone not in process_ids(db)
    assert locked_by(db, job) is None


def test_an_advisory_goodjob_row_is_alive_while_its_lock_is_held(db, registry, other_session):
    """A stalled process (heartbeat an hour old) holding its lock is never robbed."""
    stalled = insert_goodjob_process(db, age=3600, lock_type=0)
    job = insert_locked_job(db, stalled)
    other_session.execute(
        "SELECT pg_advisory_lock(%s)", (goodjob_key("good_job_processes", stalled),)
    )
    assert registry.sweep(TIMEOUT) == 0
    assert stalled in process_ids(db) and locked_by(db, job) == stalled

    other_session.execute("SELECT pg_advisory_unlock_all()")
    assert registry.sweep(TIMEOUT) == 1
    assert stalled not in process_ids(db) and locked_by(db, job) is None


def test_our_row_is_alive_while_locked_and_dead_once_unlocked_and_stale(db, registry, database_url):
    ours = uuid.uuid4()
    worker_conn = psycopg.connect(database_url, autocommit=True)
    assert processes.register_process(worker_conn, ours, {"pid": 1})
    job = insert_locked_job(db, ours)
    db.execute(
        "UPDATE good_job_processes SET updated_at = updated_at - interval '1 hour' WHERE id = %s",
        (ours,),
    )
    assert registry.sweep(TIMEOUT) == 0  # stale heartbeat, but the lock is held: alive

    worker_pid = worker_conn.info.backend_pid
    worker_conn.close()  # the process dies: Postgres drops its lock
    assert backend_gone(db, worker_pid)
    db.execute("UPDATE good_job_processes SET updated_at = %s WHERE id = %s", (utcnow(), ours))
    assert registry.sweep(TIMEOUT) == 0  # lock gone, heartbeat fresh: not yet
    db.execute(
        "UPDATE good_job_processes SET updated_at = updated_at - interval '1 minute' WHERE id = %s",
        (ours,),
    )
    assert registry.sweep(TIMEOUT) == 1
    assert ours not in process_ids(db) and locked_by(db, job) is None


def test_our_lock_key_is_goodjobs(db, database_url):
    ours = uuid.uuid4()
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert processes.register_process(conn, ours, {})
        backend = conn.info.backend_pid
        holders = db.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 1"
            " AND ((classid::bigint << 32) | objid::bigint) = %s",
            (goodjob_key("good_job_processes", ours),),
        ).fetchall()
        assert holders == [(backend,)]


def test_a_row_refreshed_after_the_judgement_is_not_deleted(db, registry):
    stale = insert_goodjob_process(db, age=GOODJOB_EXPIRED_INTERVAL + 10)
    [judged] = [r for r in processes.find_dead_processes(db, TIMEOUT) if r.id == stale]
    db.execute("UPDATE good_job_processes SET updated_at = %s WHERE id = %s", (utcnow(), stale))
    assert processes.delete_if_still_dead(db, [judged]) == []
    assert stale in process_ids(db)


def test_a_job_with_a_null_queue_name_does_not_stop_recovery(db, registry, caplog):
    """Issue 15.3: NULL queue_name is legal in GoodJob's schema; the sweep must not choke on it."""
    dead = insert_goodjob_process(db, age=3600, lock_type=0)
    jobs = [insert_locked_job(db, dead, queue=None), insert_locked_job(db, dead, queue="q")]
    with db.cursor() as listener:
        listener.execute("LISTEN good_job")
        assert registry.sweep(TIMEOUT) == 2
        payloads = [n.payload for n in db.notifies(timeout=1, stop_after=2)]
    assert [locked_by(db, job) for job in jobs] == [None, None]
    assert dead not in process_ids(db)
    assert registry.failure is None
    assert any('"queue_name":null' in p for p in payloads), payloads
