"""heartbeat_interval = -1 disables the heartbeat: an idle worker fetcher and an idle supervisor
write their process row at start only, and neither loop spins.

Heartbeat writes are counted by a trigger on ``good_job_processes`` (every UPDATE, including
a re-registration's ON CONFLICT update). The windows end on events (claims, finished jobs), and
the disabled case asserts zero writes, which no amount of load or scheduling can change; before
the fix both loops wrote thousands of rows a second.
"""

from __future__ import annotations

import signal

import pytest

from goodjob_mp.config import load_settings
from goodjob_mp.worker.worker import Worker
from tests import jobs_for_tests as J
from tests.supervising import *  # noqa: F403 - the start and records fixtures
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(120)

COUNT_UPDATES = """
CREATE TABLE IF NOT EXISTS heartbeat_writes (pid text);
TRUNCATE heartbeat_writes;
CREATE OR REPLACE FUNCTION count_heartbeat_write() RETURNS trigger AS $$
BEGIN
    INSERT INTO heartbeat_writes VALUES (NEW.state->>'pid');
    RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE OR REPLACE TRIGGER count_heartbeat_writes AFTER UPDATE ON good_job_processes
    FOR EACH ROW EXECUTE FUNCTION count_heartbeat_write();
"""


@pytest.fixture()
def writes(db):
    """A function: how many updates of process rows (of one pid, if given) so far."""
    db.execute(COUNT_UPDATES)

    def count(pid: int | None = None) -> int:
        if pid is None:
            return db.execute("SELECT count(*) FROM heartbeat_writes").fetchone()[0]
        return db.execute(
            "SELECT count(*) FROM heartbeat_writes WHERE pid = %s", (str(pid),)
        ).fetchone()[0]

    yield count
    db.execute("DROP TRIGGER count_heartbeat_writes ON good_job_processes")


def _idle_worker(**settings: object) -> Worker:
    return Worker(load_settings({"max_threads": 1, "queues": "heartbeat_idle", **settings}))


def test_the_trigger_counts_a_worker_heartbeat(writes):
    # The control: with a heartbeat, the same trigger sees the fetcher's writes.
    worker = _idle_worker(heartbeat_interval=0.1, poll_interval=0.2).start()
    try:
        assert wait_for(lambda: writes() >= 2)
    finally:
        assert worker.shutdown(10)


def test_an_idle_fetcher_with_heartbeat_minus_one_never_writes_and_does_not_spin(writes):
    worker = _idle_worker(heartbeat_interval=-1, poll_interval=0.2).start()
    try:
        # The window: five polls of an idle worker (each poll claims nothing).
        assert wait_for(lambda: worker.empty_claims >= 5)
        passes = worker.loop_passes
        claims = worker.empty_claims
    finally:
        assert worker.shutdown(10)
    assert writes() == 0
    # One wait per poll (and a spare for start-up); a spinning loop makes thousands.
    assert passes <= 2 * claims + 5, (passes, claims)


def test_polling_and_heartbeat_both_off_the_fetcher_waits_for_notify(writes, records):
    # Nothing timed ahead at all: the fetcher waits, untimed, for NOTIFY (or its stop).
    worker = Worker(
        load_settings({"max_threads": 1, "heartbeat_interval": -1, "poll_interval": -1})
    ).start()
    try:
        for tag in ("a", "b", "c"):
            J.remember.perform_later(tag)
            assert wait_for(lambda t=tag: t in J.lines(records, "remember"), 30)
        passes = worker.loop_passes
    finally:
        assert worker.shutdown(10)
    assert writes() == 0
    assert passes <= 50, passes  # a few wake-ups per job; a spinning loop makes thousands


def test_a_supervisor_with_heartbeat_minus_one_writes_no_heartbeat(start, records, writes):
    sup = start("--queues=*:1", env={"GOOD_JOB_HEARTBEAT_INTERVAL": "-1"})
    sup.wait_ready()
    # The window: three jobs, one after another, through the child (each takes >= 1 status
    # report of the child and several passes of the supervisor's loop).
    for tag in ("one", "two", "three"):
        J.remember.perform_later(tag)
        assert wait_for(lambda t=tag: t in J.lines(records, "remember"), 30), sup.output()
    assert writes() == 0, sup.output()
    sup.signal(signal.SIGTERM)
    assert sup.wait_exit() == 0


def test_the_trigger_counts_a_supervisor_heartbeat(start, records, writes):
    sup = start("--queues=*:1", env={"GOOD_JOB_HEARTBEAT_INTERVAL": "0.2"})
    sup.wait_ready()
    assert wait_for(lambda: writes(sup.pid) >= 2, 30), sup.output()
    sup.signal(signal.SIGTERM)
    assert sup.wait_exit() == 0
