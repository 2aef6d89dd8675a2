"""Job definitions checked when the class is defined, and how retry rules re-enqueue."""

from __future__ import annotations

import datetime as dt
import math

import pytest

import goodjob_mp as gj
from goodjob_mp.jobs import JobDefinitionError


class DefTransientError(Exception):
    pass


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"wait": "slowly"}, "wait='slowly'"),
        ({"wait": -1}, "wait=-1"),
        ({"wait": math.nan}, "wait=nan"),
        ({"wait": True}, "wait=True"),
        ({"wait": dt.timedelta(seconds=-5)}, "wait=datetime.timedelta"),
        ({"attempts": 0}, "attempts=0"),
        ({"attempts": 2.5}, "attempts=2.5"),
        ({"jitter": -0.1}, "jitter=-0.1"),
        ({"queue": ""}, "queue=''"),
        ({"priority": "high"}, "priority='high'"),
    ],
)
def test_a_bad_retry_rule_fails_when_the_class_is_defined(kwargs, fragment):
    with pytest.raises(JobDefinitionError, match="RetryOn") as info:

        class BadRetry(gj.Job):
            retry_on = [gj.RetryOn(DefTransientError, **kwargs)]

    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_a_non_exception_in_retry_on_or_discard_on_names_the_job():
    with pytest.raises(JobDefinitionError, match=r"BadList\.retry_on: RetryOn: 'oops'"):

        class BadList(gj.Job):
            retry_on = ["oops"]

    with pytest.raises(JobDefinitionError, match=r"BadDiscard\.discard_on: DiscardOn: 42"):

        class BadDiscard(gj.Job):
            discard_on = [42]

    with pytest.raises(JobDefinitionError, match="not an exception class"):
        gj.DiscardOn(int)


def test_the_decorator_checks_its_rules_too():
    with pytest.raises(JobDefinitionError, match="wait='later'"):

        @gj.job(retry_on=[gj.RetryOn(DefTransientError, wait="later")])
        def bad_function() -> None: ...


def test_good_rules_are_accepted():
    class GoodRetry(gj.Job):
        retry_on = [
            DefTransientError,
            gj.RetryOn((KeyError, ValueError), wait="polynomially_longer", attempts=gj.INFINITE),
            gj.RetryOn(OSError, wait=dt.timedelta(seconds=5), queue="slow", priority=10),
            gj.RetryOn(TimeoutError, wait=lambda executions: executions * 2),
        ]
        discard_on = [LookupError, gj.DiscardOn((TypeError, ArithmeticError))]

    assert len(GoodRetry._retry_rules) == 4
    assert GoodRetry._discard_types == (LookupError, TypeError, ArithmeticError)


# --- RetryOn(queue=, priority=) ---------------------------------------------------------------


class MovingRetryJob(gj.Job):
    queue_name = "first"
    priority = 5
    retry_on = [
        gj.RetryOn(DefTransientError, wait=0, attempts=3, jitter=0, queue="retries", priority=-3)
    ]

    def perform(self) -> None:
        if self.executions == 1:
            raise DefTransientError("once")


def test_retry_on_queue_and_priority_move_the_retry(db):
    handle = MovingRetryJob.perform_later()
    assert gj.perform_inline("first") == 1
    queue, priority, params, finished = db.execute(
        "SELECT queue_name, priority, serialized_params, finished_at FROM good_jobs WHERE id = %s",
        (handle.id,),
    ).fetchone()
    assert finished is None
    assert (queue, priority) == ("retries", -3)
    assert (params["queue_name"], params["priority"]) == ("retries", -3)
    [(ran_on,)] = db.execute(
        "SELECT queue_name FROM good_job_executions WHERE active_job_id = %s", (handle.id,)
    ).fetchall()
    assert ran_on == "first"  # the execution records where the attempt ran
    assert gj.perform_inline("first") == 0
    assert gj.perform_inline("retries") == 1
    assert db.execute(
        "SELECT finished_at IS NOT NULL, error FROM good_jobs WHERE id = %s", (handle.id,)
    ).fetchone() == (True, None)


class BadWaitFunctionJob(gj.Job):
    retry_on = [gj.RetryOn(DefTransientError, wait=lambda executions: -1, attempts=3)]

    def perform(self) -> None:
        raise DefTransientError("always")


def test_a_wait_function_that_returns_nonsense_backs_off_instead_of_looping(db):
    handle = BadWaitFunctionJob.perform_later()
    assert gj.perform_inline() == 1
    finished, error, scheduled_at, updated_at, count = db.execute(
        "SELECT finished_at, error, scheduled_at, updated_at, executions_count FROM good_jobs "
        "WHERE id = %s",
        (handle.id,),
    ).fetchone()
    assert finished is None and error.startswith("ValueError: retry wait function")
    assert (scheduled_at - updated_at).total_seconds() >= 2.5
    assert gj.perform_inline() == 0 and count == 1


# --- set(): wait=, priority -------------------------------------------------------------------


class PlainJob(gj.Job):
    queue_name = "plain"

    def perform(self, *args) -> None:
        pass


@pytest.mark.parametrize("wait", [math.nan, math.inf, -math.inf, float("nan")])
def test_a_wait_that_is_not_a_finite_number_is_refused(wait):
    with pytest.raises(ValueError, match="not a finite number of seconds") as info:
        PlainJob.set(wait=wait)
    assert "wait_until=" in str(info.value)


def test_a_wait_of_the_wrong_type_or_too_large_is_refused():
    with pytest.raises(TypeError, match="wait must be seconds or a timedelta"):
        PlainJob.set(wait="5")
    with pytest.raises(ValueError, match="beyond the largest datetime"):
        PlainJob.set(wait=1e20)


def _scheduled_in(db, handle) -> float:
    scheduled, created = db.execute(
        "SELECT scheduled_at, created_at FROM good_jobs WHERE id = %s", (handle.id,)
    ).fetchone()
    return (scheduled - created).total_seconds()


def test_set_wait_is_counted_from_perform_later_not_from_set(db, monkeypatch):
    configured = PlainJob.set(wait=60)
    real_now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    later = real_now + dt.timedelta(hours=1)
    # The configured job is reused an hour later: it must still wait its full 60 s.
    monkeypatch.setattr("goodjob_mp.enqueue.utcnow", lambda: later)
    handle = configured.perform_later()
    assert _scheduled_in(db, handle) == pytest.approx(60, abs=0.001)
    scheduled = db.execute(
        "SELECT scheduled_at FROM good_jobs WHERE id = %s", (handle.id,)
    ).fetchone()[0]
    assert scheduled > real_now + dt.timedelta(minutes=59)


def test_a_later_set_replaces_an_earlier_wait_or_wait_until(db):
    until = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
    handle = PlainJob.set(wait=60).set(wait_until=until).perform_later()
    assert handle.scheduled_at == dt.datetime(2030, 1, 1)
    handle = PlainJob.set(wait_until=until).set(wait=dt.timedelta(seconds=30)).perform_later()
    assert _scheduled_in(db, handle) == pytest.approx(30, abs=0.001)


def test_priority_is_null_in_serialized_params_when_unset_and_zero_in_the_column(db):
    unset = PlainJob.perform_later()
    explicit = PlainJob.set(priority=-5).perform_later()

    class ClassPriority(gj.Job):
        priority = 3

        def perform(self) -> None: ...

    by_class = ClassPriority.perform_later()
    rows = {
        r[0]: (r[1], r[2])
        for r in db.execute(
            "SELECT id, priority, serialized_params->'priority' FROM good_jobs"
        ).fetchall()
    }
    assert rows[unset.id] == (0, None)
    assert rows[explicit.id] == (-5, -5)
    assert rows[by_class.id] == (3, 3)
    assert unset.priority == 0
