"""Write routers (goodjob_mp.enqueue): how a framework integration takes a ``perform_later``
or ``bulk()`` write, to defer it to its commit or run it on its own connection (real
PostgreSQL; the Django app's router is tested in tests/test_django_contrib.py)."""

from __future__ import annotations

import psycopg
import pytest

import goodjob_mp as gj
from goodjob_mp.enqueue import add_write_router, remove_write_router
from tests import jobs_for_tests as J


def count(db) -> int:
    return db.execute("SELECT count(*) FROM good_jobs").fetchone()[0]


@pytest.fixture()
def deferred():
    """A router that takes every write and keeps it for later, as on_commit would."""
    writes: list = []

    def router(write) -> bool:
        writes.append(write)
        return True

    add_write_router(router)
    add_write_router(router)  # idempotent
    yield writes
    remove_write_router(router)


def test_a_router_that_takes_writes_defers_perform_later_and_bulk(db, deferred):
    handle = J.noop.perform_later()
    with gj.bulk():
        J.remember.perform_later("a")
        J.remember.perform_later("b")
    assert count(db) == 0 and len(deferred) == 2
    for write in deferred:
        write(None)  # "commit": the default path now
    assert count(db) == 3
    assert gj.find(handle.id).job_class == handle.job_class


def test_a_router_can_write_on_its_own_connection_in_its_transaction(db, database_url):
    with psycopg.connect(database_url) as own:  # not autocommit: a transaction of its own
        taken: list = []

        def router(write) -> bool:
            taken.append(1)
            write(own)
            return True

        add_write_router(router)
        try:
            J.noop.perform_later()
            with gj.bulk():
                J.noop.perform_later()
            assert len(taken) == 2 and count(db) == 0  # written, not committed
            own.rollback()
            assert count(db) == 0
            J.noop.perform_later()
            own.commit()
            assert count(db) == 1
        finally:
            remove_write_router(router)


def test_routers_that_decline_and_explicit_connections_keep_the_default_path(db, database_url):
    def decline(write) -> bool:
        return False

    add_write_router(decline)
    try:
        J.noop.perform_later()
        assert count(db) == 1
    finally:
        remove_write_router(decline)

    def refuse(write) -> bool:
        raise AssertionError("a write on an explicit connection was routed")

    add_write_router(refuse)
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            with gj.using_connection(conn):
                J.noop.perform_later()
            with gj.bulk(conn):
                J.noop.perform_later()
        assert count(db) == 3
    finally:
        remove_write_router(refuse)


def test_inline_mode_performs_a_deferred_write_when_it_runs(db, deferred):
    gj.configure(execution_mode="inline")
    J.noop.perform_later()
    assert count(db) == 0
    deferred[0](None)
    state = db.execute("SELECT finished_at IS NOT NULL FROM good_jobs").fetchone()[0]
    assert state is True
