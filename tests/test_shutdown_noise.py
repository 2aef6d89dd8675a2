"""Shutting down leaves nothing in the Postgres log (issue 16.7): a process releases its row's
advisory lock only on the session that holds it; unlocking elsewhere makes Postgres log
"you don't own a lock of type ExclusiveLock" at every shutdown."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from goodjob_mp.config import load_settings
from goodjob_mp.db import connection, processes
from goodjob_mp.worker import worker as worker_module
from goodjob_mp.worker.worker import Worker
from tests import jobs_for_tests as J
from tests.test_registry_lock import lock_holders
from tests.waiting import wait_for


@pytest.fixture()
def records(tmp_path, monkeypatch):
    monkeypatch.setenv(J.RECORD_DIR_ENV, str(tmp_path))
    return tmp_path


def collect_notices(conn: psycopg.Connection, into: list[str]) -> psycopg.Connection:
    conn.add_notice_handler(lambda diag: into.append(f"{diag.severity}: {diag.message_primary}"))
    return conn


def test_deregister_on_another_session_warns_nothing_and_the_holder_releases(db, database_url):
    notices: list[str] = []
    process_id = uuid.uuid4()
    with (
        collect_notices(psycopg.connect(database_url, autocommit=True), notices) as holder,
        collect_notices(psycopg.connect(database_url, autocommit=True), notices) as other,
    ):
        assert processes.register_process(holder, process_id, {})
        assert processes.deregister_process(other, process_id)
        assert lock_holders(db, process_id) == [holder.info.backend_pid]
        processes.deregister_process(holder, process_id)
        assert lock_holders(db, process_id) == []
    assert notices == []


def test_a_worker_shutdown_sends_no_warnings(db, records, monkeypatch):
    notices: list[str] = []

    def connect(*args, **kwargs):
        return collect_notices(connection.connect(*args, **kwargs), notices)

    monkeypatch.setattr(worker_module, "connect", connect)
    worker = Worker(load_settings({"max_threads": 2})).start()
    J.remember.perform_later("x")
    assert wait_for(lambda: J.lines(records, "remember") == ["x"])
    assert worker.shutdown(10)
    assert lock_holders(db, worker.process_id) == []
    assert notices == []
