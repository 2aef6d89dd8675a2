"""The enqueue event fires only for jobs whose rows committed."""

from __future__ import annotations

import psycopg
import pytest

import goodjob_mp as gj
from goodjob_mp.enqueue import flush_enqueue_events
from tests import jobs_for_tests as J


@pytest.fixture()
def enqueued():
    seen: list = []
    unsubscribe = gj.subscribe("enqueue", lambda **payload: seen.append(payload["job_id"]))
    yield seen
    unsubscribe()


def test_a_rolled_back_transaction_fires_no_enqueue_event(db, database_url, enqueued):
    with psycopg.connect(database_url) as conn:
        with gj.using_connection(conn), conn.transaction(force_rollback=True):
            J.remember.perform_later("never")
            assert enqueued == []
        assert enqueued == []
        with gj.using_connection(conn), conn.transaction():
            kept = J.remember.perform_later("kept")
            assert enqueued == []  # not committed yet
        assert enqueued == [kept.id]


def test_a_failing_transaction_fires_nothing(db, database_url, enqueued):
    conn = psycopg.connect(database_url)
    try:
        with pytest.raises(RuntimeError), gj.using_connection(conn), conn.transaction():
            J.remember.perform_later("never")
            raise RuntimeError("caller fails")
    finally:
        conn.close()
    assert enqueued == []
    assert db.execute("SELECT count(*) FROM good_jobs").fetchone()[0] == 0


def test_non_autocommit_connection_committed_after_the_block(db, database_url, enqueued):
    with psycopg.connect(database_url) as conn:
        with gj.using_connection(conn):
            first = J.remember.perform_later("a")
        assert enqueued == []  # the implicit transaction is still open
        conn.commit()
        flush_enqueue_events()
        assert enqueued == [first.id]
        with gj.using_connection(conn):
            J.remember.perform_later("b")
        conn.rollback()
        flush_enqueue_events()
        assert enqueued == [first.id]


def test_pending_events_fire_at_the_next_enqueue_once_committed(db, database_url, enqueued):
    with psycopg.connect(database_url) as conn:
        with gj.using_connection(conn):
            first = J.remember.perform_later("a")
        conn.commit()
    second = J.remember.perform_later("b")  # own autocommit connection
    assert enqueued == [first.id, second.id]


def test_an_autocommit_caller_connection_fires_at_once(db, database_url, enqueued):
    with psycopg.connect(database_url, autocommit=True) as conn, gj.using_connection(conn):
        handle = J.remember.perform_later("a")
        assert enqueued == [handle.id]


def test_bulk_inside_a_rolled_back_transaction_fires_nothing(db, database_url, enqueued):
    with psycopg.connect(database_url) as conn:
        with gj.using_connection(conn), conn.transaction(force_rollback=True), gj.bulk():
            J.remember.perform_later("x")
            J.remember.perform_later("y")
        assert enqueued == []
        with gj.using_connection(conn), conn.transaction(), gj.bulk() as b:
            J.remember.perform_later("z")
        assert enqueued == [h.id for h in b.jobs]
