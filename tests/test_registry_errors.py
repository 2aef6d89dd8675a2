"""The supervisor's Registry under failure (issue 15.15, 16.7): a database outage is logged once
when it starts and once when it ends, however many duties fail meanwhile; anything else is a
bug, logged with its traceback and reported in the probe, never retried silently."""

from __future__ import annotations

import logging
import uuid

import pytest

from goodjob_mp.config import load_settings
from goodjob_mp.db import connection
from goodjob_mp.supervisor.arbiter import Arbiter
from goodjob_mp.supervisor.maintenance import Registry
from tests.waiting import wait_for


def supervisor_records(caplog, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "goodjob_mp.supervisor" and r.levelno == level]


@pytest.fixture()
def unreachable_database(monkeypatch, database_url):
    """Point new connections at a port nobody listens on; yield a function that restores it."""
    monkeypatch.setenv("GOOD_JOB_DATABASE_URL", "postgresql://root@127.0.0.1:1/nowhere")
    connection.reset_database_url()

    def restore() -> None:
        monkeypatch.setenv("GOOD_JOB_DATABASE_URL", database_url)
        connection.reset_database_url()

    yield restore
    restore()


def test_an_outage_logs_one_line_when_it_starts_and_one_when_it_ends(
    db, registry, unreachable_database, caplog
):
    caplog.set_level(logging.DEBUG, logger="goodjob_mp.supervisor")
    backend = registry._conn.info.backend_pid
    db.execute("SELECT pg_terminate_backend(%s)", (backend,))
    for _ in range(100):
        registry.heartbeat()
        registry.sweep(20.0)
        registry.hand_back([uuid.uuid4()])
    assert registry.outage is not None and registry.status()["database_error"]
    warnings = supervisor_records(caplog, logging.WARNING)
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "unavailable" in warnings[0].getMessage()
    assert warnings[0].exc_info is None  # an outage is not a bug: no traceback

    unreachable_database()
    assert wait_for(lambda: registry.heartbeat() or registry.outage is None, 30)
    assert len(supervisor_records(caplog, logging.WARNING)) == 1
    infos = [r.getMessage() for r in supervisor_records(caplog, logging.INFO)]
    assert infos == ["supervisor: the database is reachable again"]
    assert registry.locked and registry.status()["error"] is None
    row = db.execute(
        "SELECT lock_type FROM good_job_processes WHERE id = %s", (registry.process_id,)
    ).fetchone()
    assert row == (0,)


def test_a_bug_in_a_duty_shows_its_traceback_once_and_surfaces_in_the_probe(db, caplog):
    broken = {"on": True}

    def state() -> dict:
        if broken["on"]:
            raise ValueError("state() is broken")
        return {"pid": 0}

    arbiter = Arbiter(load_settings({"queues": "*"}))
    arbiter.registry = Registry(uuid.uuid4(), lambda: {"pid": 0})
    arbiter.registry.open()
    try:
        arbiter.registry._state = state
        for _ in range(5):
            arbiter.registry.locked = False  # make the heartbeat re-register, calling state()
            arbiter.registry.heartbeat()
        errors = supervisor_records(caplog, logging.ERROR)
        assert len(errors) == 1
        assert errors[0].exc_info is not None and errors[0].exc_info[0] is ValueError
        detail = arbiter.probe_status().detail["registry"]
        assert detail["error"] == "heartbeat failed: ValueError: state() is broken"
        assert detail["database_error"] is None

        broken["on"] = False
        arbiter.registry.heartbeat()
        assert arbiter.probe_status().detail["registry"]["error"] is None
    finally:
        arbiter.registry.deregister()
