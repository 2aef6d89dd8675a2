"""Cron inside real supervisors: two ``goodjob-supervisor --enable-cron`` on one database, an
entry that fires every second (the shortest schedule the cron module takes: six fields).

Over several ticks, and across the leader stopping, every run is enqueued exactly once: one
good_jobs row per (cron_key, cron_at), and no second missing between the first run and the last
(GOOD_JOB_CRON_GRACEFUL_RESTART_PERIOD lets the new leader enqueue the runs that fell due
while no leader ran).
"""

from __future__ import annotations

import datetime as dt
import json
import signal

import psutil
import pytest

from goodjob_mp.cron import LEADER_LOCK_KEY
from tests.supervising import *  # noqa: F403 - the start and records fixtures
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(120)

KEY = "every_second_two_supervisors"
CRON = {KEY: {"cron": "* * * * * *", "class": "tests.jobs_for_tests.noop",
              "set": {"queue": "cron_two_unserved"}}}  # fmt: skip
ENV = {"GOOD_JOB_CRON": json.dumps(CRON), "GOOD_JOB_CRON_GRACEFUL_RESTART_PERIOD": "60"}
# The leader's session advisory lock, as pg_locks shows a bigint key.
LEADER_LOCK = """
SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = %s
  AND l.objsubid = 1
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


def _runs(db) -> list[tuple[dt.datetime, int]]:
    """(cron_at, rows with it) for the entry, in order."""
    return db.execute(
        "SELECT cron_at, count(*) FROM good_jobs WHERE cron_key = %s GROUP BY cron_at"
        " ORDER BY cron_at",
        (KEY,),
    ).fetchall()


def _leader(db, sups) -> object | None:
    """The supervisor whose connection holds the cron leader lock, or None."""
    row = db.execute(LEADER_LOCK, (LEADER_LOCK_KEY >> 32, LEADER_LOCK_KEY & 0xFFFFFFFF)).fetchone()
    if row is None:
        return None
    for sup in sups:
        try:
            ports = {c.laddr.port for c in psutil.Process(sup.pid).net_connections("tcp")}
        except psutil.Error:
            continue
        if row[0] in ports:
            return sup
    return None


def _assert_each_run_once_without_gaps(runs) -> None:
    assert all(count == 1 for _, count in runs), runs
    ats = [at for at, _ in runs]
    expected = [ats[0] + dt.timedelta(seconds=i) for i in range(len(ats))]
    assert ats == expected, ats  # every second from the first run to the last, none missing


def test_two_cron_supervisors_enqueue_every_run_exactly_once(start, db):
    args = ("--queues=cron_two_other:1", "--enable-cron")
    first = start(*args, env=ENV, name="first")
    second = start(*args, env=ENV, name="second")
    sups = [first, second]
    first.wait_ready()
    second.wait_ready()
    assert wait_for(lambda: len(_runs(db)) >= 5, 60), first.output() + second.output()

    # Stop whichever leads: the other takes over and enqueues what fell due in between.
    assert wait_for(lambda: _leader(db, sups) is not None, 20)
    leader = _leader(db, sups)
    other = second if leader is first else first
    before = len(_runs(db))
    leader.signal(signal.SIGTERM)
    assert leader.wait_exit() == 0
    assert wait_for(lambda: _leader(db, sups) is other, 30), other.output()
    assert wait_for(lambda: len(_runs(db)) >= before + 5, 60), other.output()

    other.signal(signal.SIGTERM)
    assert other.wait_exit() == 0
    runs = _runs(db)
    assert len(runs) >= 10
    _assert_each_run_once_without_gaps(runs)
    logs = first.output() + second.output()
    assert "cron: enqueued" in first.output() or "cron: enqueued" in second.output(), logs
    assert "while no leader ran" not in logs  # the graceful period filled the hand-over gap
