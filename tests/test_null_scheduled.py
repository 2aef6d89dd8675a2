"""Unfinished rows with a NULL ``scheduled_at`` are never claimed (as in GoodJob); the supervisor
names each of them once, with the fix, and the fix makes the job run."""

from __future__ import annotations

import logging
import subprocess
import uuid

import pytest

import goodjob_mp as gj
from goodjob_mp.config import ConfigError, load_settings
from goodjob_mp.supervisor import stuck_rows
from tests import jobs_for_tests as J
from tests.supervising import *  # noqa: F403 - the start and records fixtures
from tests.supervising import CLI, ROOT
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(120)

ENV = "GOOD_JOB_NULL_SCHEDULED_CHECK_INTERVAL"


def _null_scheduled(db, tag: str) -> uuid.UUID:
    """A real enqueued row whose scheduled_at is then set to NULL by SQL."""
    handle = J.remember.set(wait=3600).perform_later(tag)
    db.execute("UPDATE good_jobs SET scheduled_at = NULL WHERE id = %s", (handle.id,))
    return uuid.UUID(str(handle.id))


def _warnings_for(text: str, job_id: uuid.UUID) -> int:
    return sum(1 for line in text.splitlines() if f"job {job_id} " in line and "WARN" in line)


def test_the_check_names_each_row_once_across_runs(db, registry, caplog):
    first = _null_scheduled(db, "a")
    J.remember.perform_later("normal")  # scheduled_at set: not named
    finished = _null_scheduled(db, "done")
    db.execute("UPDATE good_jobs SET finished_at = now() WHERE id = %s", (finished,))
    check = stuck_rows.NullScheduledCheck(registry, interval=60.0)
    caplog.set_level(logging.WARNING, "goodjob_mp.supervisor")

    check.run(0.0)
    check.run(1.0)
    second = _null_scheduled(db, "b")
    check.run(2.0)
    check.run(3.0)

    named = [r.getMessage() for r in caplog.records if "has no scheduled_at" in r.getMessage()]
    assert len(named) == 2, named
    assert named[0] == stuck_rows.warning_text(first, "tests.jobs_for_tests.remember", "default")
    assert f"job {second} " in named[1]
    assert f"jobs reschedule {second}" in named[1]
    assert check.next_deadline() == 63.0


def test_each_pass_brings_rows_not_yet_named(db, registry, caplog):
    ids = {_null_scheduled(db, f"r{i}") for i in range(5)}
    check = stuck_rows.NullScheduledCheck(registry, interval=1.0, limit=2)
    caplog.set_level(logging.WARNING, "goodjob_mp.supervisor")
    for step in range(4):
        check.run(float(step))
    named = {job_id for job_id in ids for r in caplog.records if f"job {job_id} " in r.getMessage()}
    assert named == ids
    assert len([r for r in caplog.records if "has no scheduled_at" in r.getMessage()]) == 5


def test_the_seen_set_is_bounded(db, registry, monkeypatch):
    monkeypatch.setattr(stuck_rows, "SEEN_MAX", 3)
    check = stuck_rows.NullScheduledCheck(registry, interval=1.0)
    ids = [uuid.uuid4() for _ in range(5)]
    for job_id in ids:
        check._remember(job_id)
    assert list(check._seen) == ids[2:]


@pytest.mark.parametrize(("text", "expected"), [("5", 5.0), ("0.2", 0.2), ("-1", -1.0)])
def test_the_interval_is_a_setting_read_from_the_environment(text, expected):
    assert load_settings(environ={}).null_scheduled_check_interval == 60.0
    settings = load_settings(environ={ENV: text})
    assert settings.null_scheduled_check_interval == expected
    gj.configure(null_scheduled_check_interval=expected)
    assert load_settings(environ={}).null_scheduled_check_interval == expected


@pytest.mark.parametrize("text", ["0", "-2", "x", "nan"])
def test_a_bad_interval_is_refused_at_start_naming_the_setting(text):
    with pytest.raises(ConfigError, match="null_scheduled_check_interval"):
        load_settings(environ={ENV: text})


def test_a_real_supervisor_warns_once_per_row_and_the_fix_runs_it(start, records, db):
    stuck = _null_scheduled(db, "stuck")
    sup = start("--queues=*:1", env={ENV: "0.2"})
    sup.wait_ready()
    assert wait_for(lambda: _warnings_for(sup.output(), stuck) == 1, 30), sup.output()

    J.remember.perform_later("normal")
    assert wait_for(lambda: J.lines(records, "remember") == ["normal"], 30), sup.output()
    # Rows that go NULL later are named by later passes; the first row is never named again.
    later = [_null_scheduled(db, f"later{i}") for i in range(3)]
    for job_id in later:
        assert wait_for(lambda job_id=job_id: _warnings_for(sup.output(), job_id) == 1, 30)
    output = sup.output()
    assert _warnings_for(output, stuck) == 1, output
    assert f"goodjob-supervisor jobs reschedule {stuck}" in output

    # The fix the warning names makes the job run.
    fixed = subprocess.run(
        [*CLI, "jobs", "reschedule", str(stuck)], cwd=ROOT, capture_output=True, text=True
    )
    assert fixed.returncode == 0, fixed.stderr
    assert wait_for(lambda: "stuck" in J.lines(records, "remember"), 30), sup.output()
    assert J.lines(records, "remember") == ["normal", "stuck"]
    output = sup.output()
    assert all(_warnings_for(output, job_id) == 1 for job_id in [stuck, *later]), output
    assert "Traceback" not in output, output
