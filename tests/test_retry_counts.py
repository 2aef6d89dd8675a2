"""Each ``retry_on`` rule counts its own executions, as Active Job does (``executions_for`` in
activejob/lib/active_job/exceptions.rb): ``exception_executions[exceptions.to_s]`` is what
``attempts`` and ``wait`` see, not the job's total ``executions``. The hash carries the counts
between Rails and goodjob_mp both ways (the real GoodJob at the end)."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest

import goodjob_mp as gj
from tests import goodjob_ruby as harness
from tests.goodjob_ruby import GoodJobRuby

goodjob_ruby = harness.goodjob_ruby
goodjob_ruby_source = harness.goodjob_ruby_source

plan: list[type[BaseException]] = []
seen: list[int] = []


class CountAError(Exception):
    pass


class CountBError(Exception):
    pass


class CountedJob(gj.Job):
    retry_on = [
        gj.RetryOn(CountAError, wait="polynomially_longer", attempts=10, jitter=0),
        gj.RetryOn(CountBError, wait=0, attempts=2, jitter=0),
    ]

    def perform(self) -> None:
        raise plan.pop(0)("planned")


def _seen_wait(executions: int) -> float:
    seen.append(executions)
    return 3600.0


class RailsKeyedJob(gj.Job):
    retry_on = [gj.RetryOn(CountAError, wait=_seen_wait, executions_key="[Net::ReadTimeout]")]

    def perform(self) -> None:
        raise CountAError("timeout")


@pytest.fixture(autouse=True)
def _fresh_plan():
    plan.clear()
    seen.clear()
    yield
    plan.clear()


def _state(db, job_id):
    """(serialized_params, error_event, finished, wait in seconds after the attempt ended)."""
    params, event, finished, scheduled_at, updated_at = db.execute(
        "SELECT serialized_params, error_event, finished_at IS NOT NULL, scheduled_at, updated_at"
        " FROM good_jobs WHERE id = %s",
        (job_id,),
    ).fetchone()
    return params, event, finished, (scheduled_at - updated_at).total_seconds()


def _rewrite_params(db, job_id, **changes):
    """The job as another writer (a Rails app, an old Active Job) left it: due now."""
    params = db.execute(
        "SELECT serialized_params FROM good_jobs WHERE id = %s", (job_id,)
    ).fetchone()[0]
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = value
    db.execute(
        "UPDATE good_jobs SET serialized_params = %s, scheduled_at = now() WHERE id = %s",
        (json.dumps(params), job_id),
    )


def test_a_rules_wait_uses_its_own_count_not_the_jobs_executions(db):
    plan[:] = [CountBError, CountAError]
    handle = CountedJob.perform_later()
    assert gj.perform_inline() == 2  # B retried at once (wait 0), then A
    params, event, finished, wait = _state(db, handle.id)
    assert params["executions"] == 2
    assert params["exception_executions"] == {"[CountBError]": 1, "[CountAError]": 1}
    assert event == 3 and not finished
    # polynomially_longer for A's first count: 1**4 + 2 = 3 s (by total executions it was 18 s)
    assert 2.5 <= wait <= 3.5


def test_attempts_compare_the_rules_count(db):
    plan[:] = [CountBError, CountAError, CountBError]
    handle = CountedJob.perform_later()
    gj.perform_inline()  # B (count 1, retried at once), A (count 1, waits 3 s)
    db.execute("UPDATE good_jobs SET scheduled_at = now() WHERE id = %s", (handle.id,))
    assert gj.perform_inline() == 1  # B again: its count is 2 of attempts=2, the retry stops
    params, event, finished, _ = _state(db, handle.id)
    assert event == 4 and finished


def test_a_count_left_by_rails_is_carried_on_and_other_rules_counts_kept(db):
    handle = CountedJob.perform_later()
    _rewrite_params(
        db,
        handle.id,
        executions=3,
        exception_executions={"[CountAError]": 2, "[Net::ReadTimeout]": 1},
    )
    plan[:] = [CountAError]
    assert gj.perform_inline() == 1
    params, event, _, wait = _state(db, handle.id)
    assert params["executions"] == 4
    assert params["exception_executions"] == {"[CountAError]": 3, "[Net::ReadTimeout]": 1}
    assert event == 3
    assert 82.5 <= wait <= 83.5  # 3**4 + 2 (by total executions, 4**4 + 2 = 258)


def test_a_job_stored_without_exception_executions_counts_by_executions(db):
    # Active Job before 6.0 stored no per-rule counts: Rails' executions_for falls back to the
    # job's executions and keeps the field empty; so do we.
    handle = CountedJob.perform_later()
    _rewrite_params(db, handle.id, executions=2, exception_executions=None)
    plan[:] = [CountAError]
    assert gj.perform_inline() == 1
    params, event, _, wait = _state(db, handle.id)
    assert params["executions"] == 3 and params.get("exception_executions") is None
    assert event == 3
    assert 82.5 <= wait <= 83.5  # 3**4 + 2


def test_executions_key_names_the_count_as_the_rails_rule_does(db):
    handle = RailsKeyedJob.perform_later()
    _rewrite_params(db, handle.id, executions=5, exception_executions={"[Net::ReadTimeout]": 2})
    assert gj.perform_inline() == 1
    params, event, _, _ = _state(db, handle.id)
    assert params["exception_executions"] == {"[Net::ReadTimeout]": 3}
    assert seen == [3] and event == 3


def test_a_bad_executions_key_is_refused_at_definition():
    with pytest.raises(gj.JobDefinitionError, match="executions_key"):
        gj.RetryOn(CountAError, executions_key="  ")
    assert gj.RetryOn((CountAError, CountBError)).key == "[CountAError, CountBError]"


# --- with the real GoodJob ----------------------------------------------------------------------


class RetryCountFirstError(Exception):
    pass


class RetryCountError(Exception):
    pass


class RubyRetryCountJob(gj.Job):
    """tests/ruby/app.rb's RubyRetryCountJob, with the same rules: the first execution raises
    RetryCountFirstError, later ones RetryCountError; a rule waits its count in hours."""

    job_class_name = "RubyRetryCountJob"
    retry_on = [
        gj.RetryOn(RetryCountFirstError, wait=lambda n: n * 3600, attempts=10),
        gj.RetryOn(RetryCountError, wait=lambda n: n * 3600, attempts=4),
    ]

    def perform(self, *args: object) -> None:
        if self.executions == 1:
            raise RetryCountFirstError("first")
        raise RetryCountError(f"again {self.executions}")


def _due_now(db, job_id):
    db.execute("UPDATE good_jobs SET scheduled_at = now() WHERE id = %s", (job_id,))


def _hours_waited(db, job_id) -> float:
    scheduled_at, updated_at = db.execute(
        "SELECT scheduled_at, updated_at FROM good_jobs WHERE id = %s", (job_id,)
    ).fetchone()
    return round((scheduled_at - updated_at) / dt.timedelta(hours=1), 2)


def test_rails_and_goodjob_mp_carry_each_others_counts(db, goodjob_ruby: GoodJobRuby):
    # Ruby enqueues and runs attempt 1, Python 2, Ruby 3, Python 4 (and 5, which stops).
    out = goodjob_ruby.run("rails_steps.rb", "enqueue:RubyRetryCountJob:counts:1", "perform:counts")
    job_id = uuid.UUID(json.loads(out.splitlines()[0])["ids"][0])
    params = _state(db, job_id)[0]
    assert params["executions"] == 1
    assert params["exception_executions"] == {"[RetryCountFirstError]": 1}
    assert _hours_waited(db, job_id) == 1

    _due_now(db, job_id)
    assert gj.perform_inline("counts") == 1
    params = _state(db, job_id)[0]
    assert params["executions"] == 2
    assert params["exception_executions"] == {"[RetryCountFirstError]": 1, "[RetryCountError]": 1}
    assert _hours_waited(db, job_id) == 1  # RetryCountError's first, not the job's second

    _due_now(db, job_id)
    goodjob_ruby.run("rails_steps.rb", "perform:counts")
    params = _state(db, job_id)[0]
    assert params["executions"] == 3
    assert params["exception_executions"] == {"[RetryCountFirstError]": 1, "[RetryCountError]": 2}
    assert _hours_waited(db, job_id) == 2

    _due_now(db, job_id)
    assert gj.perform_inline("counts") == 1
    params, event, finished, _ = _state(db, job_id)
    assert params["exception_executions"] == {"[RetryCountFirstError]": 1, "[RetryCountError]": 3}
    assert _hours_waited(db, job_id) == 3 and event == 3 and not finished

    _due_now(db, job_id)
    assert gj.perform_inline("counts") == 1  # count 4 of attempts=4: stopped, as Rails stops it
    _, event, finished, _ = _state(db, job_id)
    assert event == 4 and finished
