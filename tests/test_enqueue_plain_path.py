"""A plain single enqueue (no labels, cron, batch or concurrency key; no hook wants the row;
no caller connection) is one text-parameter INSERT+NOTIFY on the pooled connection's kept
RawCursor. It must write exactly the row and the NOTIFY the general path writes; the pool it
borrows from keeps its bound, its errors and its fork rule."""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import uuid

import psycopg
import pytest

import goodjob_mp as gj
from goodjob_mp import enqueue as enqueue_module
from goodjob_mp.db import connection, job_store
from goodjob_mp.db.connection import DatabaseUnavailableError, EnqueuePool
from goodjob_mp.db.migrate import SchemaOutdatedError


@gj.job(queue="plain", priority=3)
def plain_job(n: int, name: str = "x") -> None:
    pass


COLUMNS = (
    "job_class, queue_name, priority, serialized_params, scheduled_at, created_at, updated_at, "
    "labels, cron_key, cron_at, batch_id, batch_callback_id, concurrency_key, active_job_id, id"
)


def row_of(db, job_id: uuid.UUID) -> dict:
    cur = db.cursor(row_factory=psycopg.rows.dict_row)
    return cur.execute(f"SELECT {COLUMNS} FROM good_jobs WHERE id = %s", (job_id,)).fetchone()


def comparable(row: dict) -> dict:
    """A row without what differs between any two jobs (id, times), checked apart."""
    params = dict(row["serialized_params"])
    for key in ("job_id", "enqueued_at", "scheduled_at"):
        params.pop(key, None)
    return dict(
        row, serialized_params=params, id=None, active_job_id=None, created_at=None, updated_at=None
    ) | {"scheduled_at": None}


def listen(url: str) -> psycopg.Connection:
    conn = psycopg.connect(url, autocommit=True)
    conn.execute("LISTEN good_job")
    return conn


def notifications(conn: psycopg.Connection) -> list[dict]:
    return [json.loads(n.payload) for n in conn.notifies(timeout=0.5, stop_after=1)]


def test_a_plain_enqueue_takes_the_plain_statement(db, monkeypatch):
    seen = []
    real = job_store.insert_plain
    monkeypatch.setattr(
        enqueue_module, "insert_plain", lambda cur, job: seen.append(job) or real(cur, job)
    )
    handle = plain_job.perform_later(1)
    assert [job.id for job in seen] == [handle.id]
    # Labels, a caller's connection: the general path.
    plain_job.set(labels=["a"]).perform_later(2)
    with gj.using_connection(db):
        plain_job.perform_later(3)
    assert len(seen) == 1
    assert db.execute("SELECT count(*) FROM good_jobs").fetchone()[0] == 3


def test_the_plain_row_and_notify_equal_the_general_paths(db, database_url):
    listener = listen(database_url)
    try:
        plain = plain_job.perform_later(7, name='ü\t"q"')
        plain_notify = notifications(listener)
        with gj.using_connection(db):  # the general path, on a caller's autocommit connection
            general = plain_job.perform_later(7, name='ü\t"q"')
        general_notify = notifications(listener)
    finally:
        listener.close()
    a, b = row_of(db, plain.id), row_of(db, general.id)
    assert comparable(a) == comparable(b)
    assert a["id"] == a["active_job_id"] == plain.id
    assert a["serialized_params"]["job_id"] == str(plain.id)
    assert a["created_at"] == a["updated_at"] == a["scheduled_at"] == plain.scheduled_at
    assert a["serialized_params"]["enqueued_at"] == a["created_at"].isoformat() + "Z"
    assert a["serialized_params"]["arguments"] == [
        7,
        {"name": 'ü\t"q"', "_aj_ruby2_keywords": ["name"]},
    ]
    assert a["priority"] == 3 and a["queue_name"] == "plain"
    assert plain_notify == [
        {"queue_name": "plain", "scheduled_at": plain.scheduled_at.isoformat() + "Z"}
    ]
    assert general_notify == [
        {"queue_name": "plain", "scheduled_at": general.scheduled_at.isoformat() + "Z"}
    ]


def test_a_delayed_plain_job_keeps_its_scheduled_time(db, database_url):
    at = dt.datetime(2031, 5, 6, 7, 8, 9, 123456)
    listener = listen(database_url)
    try:
        handle = plain_job.set(wait_until=at).perform_later(1)
        notified = notifications(listener)
    finally:
        listener.close()
    row = row_of(db, handle.id)
    assert row["scheduled_at"] == at
    assert row["created_at"] < at
    assert row["serialized_params"]["scheduled_at"] == at.isoformat() + "Z"
    assert notified == [{"queue_name": "plain", "scheduled_at": "2031-05-06T07:08:09.123456Z"}]


def test_an_int_enum_priority_is_written_as_its_number(db):
    import enum

    class Level(enum.IntEnum):
        HIGH = -5

    handle = plain_job.set(priority=Level.HIGH).perform_later(1)
    assert row_of(db, handle.id)["priority"] == -5


def test_enqueue_without_tables_says_run_migrate(database_url, monkeypatch):
    info = psycopg.conninfo.conninfo_to_dict(database_url)
    admin = psycopg.conninfo.make_conninfo(**dict(info, dbname="postgres"))
    name = f"goodjob_plain_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    monkeypatch.setenv(
        "GOOD_JOB_DATABASE_URL", psycopg.conninfo.make_conninfo(**dict(info, dbname=name))
    )
    connection.reset_database_url()
    connection.close_enqueue_pool()
    try:
        for _ in range(2):  # the connection goes back to the pool and is usable again
            with pytest.raises(SchemaOutdatedError, match="goodjob-supervisor migrate"):
                plain_job.perform_later(1)
        assert connection.enqueue_pool().idle_count == 1
    finally:
        connection.close_enqueue_pool()
        monkeypatch.undo()
        connection.reset_database_url()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- the pool ---------------------------------------------------------------------------------


def test_the_pool_is_bounded_and_says_which_setting_to_raise(database_url):
    pool = EnqueuePool(1)
    try:
        conn = pool.take()
        with pytest.raises(DatabaseUnavailableError, match="GOOD_JOB_ENQUEUE_POOL_SIZE"):
            pool.take(wait=0.05)
        pool.give_back(conn)
        again = pool.take(wait=0.05)
        assert again is conn  # reused, not reopened
        pool.give_back(again)
    finally:
        pool.close()


def test_a_failed_connect_releases_its_slot(monkeypatch):
    pool = EnqueuePool(1)
    monkeypatch.setenv("GOOD_JOB_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/x")
    connection.reset_database_url()
    try:
        for _ in range(3):  # the same one slot each time: never "stayed busy"
            with pytest.raises(DatabaseUnavailableError, match="cannot connect"):
                pool.take(wait=0.05)
    finally:
        monkeypatch.undo()
        connection.reset_database_url()
        pool.close()


def test_a_broken_connection_and_its_cursor_are_dropped(database_url):
    pool = EnqueuePool(2)
    try:
        conn = pool.take()
        cur = pool.raw_cursor(conn)
        assert pool.raw_cursor(conn) is cur  # kept
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))
        with pytest.raises(psycopg.OperationalError):
            cur.execute("SELECT 1")
        pool.give_back(conn)
        assert conn.closed and pool.idle_count == 0
        fresh = pool.take()
        assert fresh is not conn and pool.raw_cursor(fresh) is not cur
        pool.raw_cursor(fresh).execute("SELECT 1")
        pool.give_back(fresh)
        assert pool.idle_count == 1
    finally:
        pool.close()


def test_a_connection_left_in_a_transaction_is_not_reused(database_url):
    pool = EnqueuePool(1)
    try:
        conn = pool.take()
        conn.autocommit = False
        conn.execute("SELECT 1")  # now INTRANS
        pool.give_back(conn)
        assert conn.closed and pool.idle_count == 0
    finally:
        pool.close()


def test_threads_share_the_bounded_pool(db):
    errors: list[BaseException] = []

    def enqueue_some() -> None:
        try:
            for i in range(25):
                plain_job.perform_later(i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=enqueue_some) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert db.execute("SELECT count(*) FROM good_jobs").fetchone()[0] == 150
    pool = connection.enqueue_pool()
    assert 1 <= pool.idle_count <= pool.size


def test_a_forked_child_enqueues_on_its_own_pool(db):
    plain_job.perform_later(0)  # the parent's pool holds an idle connection now
    parent_pool = connection.enqueue_pool()
    parent_conn = parent_pool._idle[-1]
    pid = os.fork()
    if pid == 0:  # the child: must not touch the parent's session
        code = 1
        try:
            child_pool = connection.enqueue_pool()
            handle = plain_job.perform_later(1)
            ok = child_pool is not parent_pool and handle.id is not None
            code = 0 if ok else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # The parent's connection still works: the child never closed it.
    assert not parent_conn.closed
    plain_job.perform_later(2)
    assert db.execute("SELECT count(*) FROM good_jobs").fetchone()[0] == 3
