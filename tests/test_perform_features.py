"""Perform callbacks, rescue_from, per-job timeouts, current_thread_running, the error_event code
of every path, find(), enqueue by class name and the typed perform_later."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import goodjob_mp as gj
from goodjob_mp.config import load_settings
from goodjob_mp.db.job_reads import job_state
from goodjob_mp.worker.worker import Worker
from tests import jobs_for_jobsapi as A
from tests import jobs_for_tests as J
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent
calls: list[str] = []


@pytest.fixture(autouse=True)
def _reset_calls():
    calls.clear()


@pytest.fixture()
def records(tmp_path, monkeypatch):
    monkeypatch.setenv(J.RECORD_DIR_ENV, str(tmp_path))
    return tmp_path


class FeatCardDeclinedError(Exception):
    pass


class FeatOtherError(Exception):
    pass


class FeatRetryError(Exception):
    pass


class FeatGoneError(Exception):
    pass


class CallbackJob(gj.Job):
    def before_perform(self) -> None:
        calls.append(f"before:{self.arguments}")

    def around_perform(self, perform):
        calls.append("around:in")
        result = perform()
        calls.append("around:out")
        return result

    def after_perform(self) -> None:
        calls.append("after")

    def perform(self, n: int, *, fail: bool = False) -> None:
        calls.append(f"perform:{n}")
        if fail:
            raise FeatOtherError("no")


class SkippingJob(gj.Job):
    def around_perform(self, perform):
        calls.append("skipped")

    def perform(self) -> None:
        calls.append("perform")


class BeforeFailsJob(gj.Job):
    def before_perform(self) -> None:
        raise FeatOtherError("not ready")

    def perform(self) -> None:
        calls.append("perform")


class RescuingJob(gj.Job):
    retry_on = [gj.RetryOn(FeatRetryError, wait=0, attempts=2, jitter=0)]
    discard_on = [FeatGoneError]

    @gj.rescue_from(FeatCardDeclinedError)
    def declined(self, error: FeatCardDeclinedError) -> None:
        calls.append(f"declined:{error}")

    @gj.rescue_from(FeatOtherError)
    def broken_handler(self, error: FeatOtherError) -> None:
        raise RuntimeError(f"handler failed on {error}")

    def perform(self, kind: str) -> None:
        errors = {
            "declined": FeatCardDeclinedError,
            "other": FeatOtherError,
            "retry": FeatRetryError,
            "gone": FeatGoneError,
            "plain": KeyError,
        }
        if kind in errors:
            raise errors[kind](kind)


class SubRescuingJob(RescuingJob):
    @gj.rescue_from(FeatCardDeclinedError)
    def declined(self, error: FeatCardDeclinedError) -> None:
        calls.append("sub-declined")


class FindRetryJob(gj.Job):
    retry_on = [gj.RetryOn(FeatRetryError, wait=3600, attempts=2, jitter=0)]

    def perform(self) -> None:
        raise FeatRetryError("again")


def row(db, job_id, columns="finished_at IS NOT NULL, error, error_event"):
    return db.execute(f"SELECT {columns} FROM good_jobs WHERE id = %s", (job_id,)).fetchone()


def events_of(db, job_id):
    return [
        r[0]
        for r in db.execute(
            "SELECT error_event FROM good_job_executions WHERE active_job_id = %s "
            "ORDER BY created_at",
            (job_id,),
        ).fetchall()
    ]


# --- callbacks --------------------------------------------------------------------------------


def test_callbacks_run_in_order_around_perform(db):
    CallbackJob.perform_later(7)
    assert gj.perform_inline() == 1
    assert calls == ["before:((7,), {})", "around:in", "perform:7", "around:out", "after"]


def test_after_perform_does_not_run_after_an_exception(db):
    handle = CallbackJob.perform_later(1, fail=True)
    gj.perform_inline()
    assert calls == ["before:((1,), {'fail': True})", "around:in", "perform:1"]
    assert row(db, handle.id)[1:] == (f"{__name__}.FeatOtherError: no", 1)


def test_around_perform_that_does_not_call_perform_skips_the_job(db):
    handle = SkippingJob.perform_later()
    gj.perform_inline()
    assert calls == ["skipped"]
    assert row(db, handle.id) == (True, None, None)


def test_an_error_in_before_perform_fails_the_attempt_unperformed(db):
    handle = BeforeFailsJob.perform_later()
    gj.perform_inline()
    assert calls == []
    assert row(db, handle.id)[1:] == (f"{__name__}.FeatOtherError: not ready", 1)


def test_perform_now_runs_callbacks_and_rescue_handlers():
    CallbackJob.perform_now(3)
    assert calls[-1] == "after"
    assert RescuingJob.perform_now("declined") is None
    assert calls[-1] == "declined:declined"
    with pytest.raises(KeyError):
        RescuingJob.perform_now("plain")


# --- error_event: every path ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "finished", "event", "error_start"),
    [
        ("declined", True, 2, "FeatCardDeclinedError"),  # handled by rescue_from
        ("other", True, 1, "RuntimeError: handler failed"),  # the handler's own error
        ("plain", True, 1, "KeyError"),  # unhandled
        ("gone", True, 5, "FeatGoneError"),  # discard_on
    ],
)
def test_error_event_of_each_path(db, kind, finished, event, error_start):
    handle = RescuingJob.perform_later(kind)
    gj.perform_inline()
    done, error, code = row(db, handle.id)
    assert (done, code) == (finished, event)
    assert error.removeprefix(f"{__name__}.").startswith(error_start)
    assert events_of(db, handle.id) == [event]


def test_error_events_retried_then_retry_stopped(db):
    handle = RescuingJob.perform_later("retry")
    gj.perform_inline()
    gj.perform_inline()
    assert events_of(db, handle.id) == [3, 4]
    assert row(db, handle.id)[2] == 4


def test_error_event_interrupted(db):
    handle = RescuingJob.perform_later("none")
    # A process took the job and died: performed_at set, lock gone.
    db.execute(
        "UPDATE good_jobs SET performed_at = now() AT TIME ZONE 'UTC', executions_count = 1 "
        "WHERE id = %s",
        (handle.id,),
    )
    gj.perform_inline()
    assert events_of(db, handle.id) == [0, None]


def test_error_event_unhandled_retried_with_retry_on_unhandled_error(db):
    gj.configure(retry_on_unhandled_error=True)
    handle = RescuingJob.perform_later("plain")
    gj.perform_inline()
    assert row(db, handle.id)[0] is False and events_of(db, handle.id) == [1]


def test_error_event_discarded_for_an_unreadable_payload(db):
    handle = RescuingJob.perform_later("none")
    db.execute(
        "UPDATE good_jobs SET serialized_params = jsonb_set(serialized_params, '{arguments}', "
        '\'[{"_aj_serialized": "Ruby::OnlySerializer"}]\') WHERE id = %s',
        (handle.id,),
    )
    gj.perform_inline()
    done, error, code = row(db, handle.id)
    assert (done, code) == (True, 5) and error.startswith("DeserializationError")


def test_a_subclass_handler_overrides_the_base_one(db):
    SubRescuingJob.perform_later("declined")
    gj.perform_inline()
    assert calls == ["sub-declined"]


def test_rescue_from_needs_exception_classes():
    with pytest.raises(gj.JobDefinitionError, match="rescue_from"):
        gj.rescue_from("ValueError")


# --- timeout ----------------------------------------------------------------------------------


def test_a_job_past_its_timeout_fails_with_job_timeout_error_in_a_real_worker(db, records):
    slow = A.TimedOutJob.perform_later(30)
    after = A.quick_after_timeout.perform_later("next")
    worker = Worker(load_settings({"queues": "jobsapi", "max_threads": 1})).start()
    try:
        assert wait_for(lambda: row(db, slow.id)[0] and row(db, after.id)[0], 30)
    finally:
        worker.shutdown(10)
    assert row(db, slow.id)[1:] == (
        "goodjob_mp.timeouts.JobTimeoutError: the job ran longer than its timeout of 0.3 s",
        1,
    )
    assert J.lines(records, "timed") == ["start:1"]
    assert row(db, after.id) == (True, None, None)
    assert J.lines(records, "quick") == ["next:True"]


def test_a_timeout_is_a_timeout_error_for_retry_on(db, records):
    handle = A.RetriedTimeoutJob.perform_later(30)
    gj.perform_inline()
    gj.perform_inline()
    assert events_of(db, handle.id) == [3, 4]
    assert J.lines(records, "timed") == ["start:1", "start:2"]


def test_a_job_within_its_timeout_is_not_touched(db, records):
    handle = A.TimedOutJob.perform_later(0)
    gj.perform_inline()
    assert row(db, handle.id) == (True, None, None)
    assert J.lines(records, "timed") == ["start:1", "end:1"]


def test_a_bad_timeout_fails_at_class_definition():
    with pytest.raises(gj.JobDefinitionError, match=r"timeout = -1 is invalid"):

        class BadTimeout(gj.Job):
            timeout = -1

    with pytest.raises(gj.JobDefinitionError, match="timeout"):

        @gj.job(timeout=float("nan"))
        def bad() -> None: ...


def test_current_thread_running_only_inside_a_job(db, records):
    assert gj.current_thread_running() is False
    A.quick_after_timeout.perform_later("inline")
    gj.perform_inline()
    assert J.lines(records, "quick") == ["inline:True"]
    assert gj.current_thread_running() is False


# --- find -------------------------------------------------------------------------------------


def test_find_gives_state_error_executions_and_scheduled_at(db):
    later = J.remember.set(wait=3600).perform_later("x")
    info = gj.find(later.id)
    assert isinstance(info, gj.JobInfo)
    assert info.state == "scheduled" and info.scheduled_at == later.scheduled_at
    assert info.executions == () and info.arguments == ["x"]

    failing = FindRetryJob.perform_later()
    assert gj.find(str(failing.id)).state == "queued"
    gj.perform_inline()
    info = gj.find(failing.id)
    assert info.state == "retried"  # waiting for its retry, with the error of the last attempt
    assert info.error == f"{__name__}.FeatRetryError: again" and info.error_event == 3
    [attempt] = info.executions
    assert isinstance(attempt, gj.JobExecution)
    assert attempt.error_event == 3 and attempt.backtrace and attempt.duration is not None
    db.execute(
        "UPDATE good_jobs SET scheduled_at = now() AT TIME ZONE 'UTC' WHERE id = %s", (failing.id,)
    )
    gj.perform_inline()
    info = gj.find(failing.id)
    assert info.state == "discarded" and info.error_event == 4
    assert [e.error_event for e in info.executions] == [3, 4]
    assert info.executions_count == 2


def test_find_unknown_or_malformed_id_is_none(db):
    assert gj.find(uuid.uuid4()) is None
    assert gj.find("not-a-uuid") is None


def test_job_state_follows_goodjobs_rule():
    now = dt.datetime(2026, 1, 1, 12)
    past, future = now - dt.timedelta(seconds=1), now + dt.timedelta(seconds=1)
    base = {"finished_at": None, "performed_at": None, "scheduled_at": past, "error": None}
    assert job_state(**base, created_at=past, now=now) == "queued"
    assert job_state(**{**base, "scheduled_at": future}, created_at=past, now=now) == "scheduled"
    retried = {**base, "scheduled_at": future, "error": "E: x"}
    assert job_state(**retried, created_at=past, now=now) == "retried"
    assert job_state(**{**base, "performed_at": past}, created_at=past, now=now) == "running"
    assert job_state(**{**base, "finished_at": past}, created_at=past, now=now) == "succeeded"
    done = {**base, "finished_at": past, "error": "E: x"}
    assert job_state(**done, created_at=past, now=now) == "discarded"
    assert job_state(**{**base, "scheduled_at": None}, created_at=future, now=now) == "scheduled"


# --- enqueue by class name --------------------------------------------------------------------


def test_enqueue_by_class_name_writes_an_active_job_row(db):
    handle = gj.enqueue("RubyMailer", [42], {"greeting": "hi"}, queue="mailers", wait=60)
    job_class, queue, priority, params, scheduled, created = row(
        db,
        handle.id,
        "job_class, queue_name, priority, serialized_params, scheduled_at, created_at",
    )
    assert (job_class, queue, priority) == ("RubyMailer", "mailers", 0)
    assert params["job_class"] == "RubyMailer" and params["priority"] is None
    assert params["arguments"] == [42, {"greeting": "hi", "_aj_ruby2_keywords": ["greeting"]}]
    assert (scheduled - created).total_seconds() == pytest.approx(60, abs=0.01)
    assert handle.job_class == "RubyMailer"


def test_enqueue_by_name_of_a_python_job_uses_its_defaults(db):
    handle = gj.enqueue(A.ExitingJob.job_class_name, [0])
    assert row(db, handle.id, "queue_name")[0] == "jobsapi"


def test_enqueue_by_name_refuses_bad_input(db):
    with pytest.raises(ValueError, match="class name"):
        gj.enqueue("", [])
    with pytest.raises(TypeError, match="list of arguments"):
        gj.enqueue("RubyMailer", "42")
    with pytest.raises(gj.SerializationError):
        gj.enqueue("RubyMailer", [object()])


def test_enqueue_module_paths_still_work():
    import goodjob_mp.enqueue as module

    assert module.bulk is gj.bulk and callable(gj.enqueue)


# --- typing -----------------------------------------------------------------------------------


def test_perform_later_is_typed_from_the_function_signature(tmp_path):
    pytest.importorskip("mypy")
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import goodjob_mp as gj\n"
        "@gj.job(queue='mail')\n"
        "def send(user_id: int, *, template: str = 'x') -> None: ...\n"
        "send.perform_later(1, template='y')\n"
        "send.set(wait=5).perform_later(2)\n"
        "send.perform_later('one')\n"
        "send.perform_later(1, colour='red')\n"
        "reveal_type(send.perform_later(1).id)\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--follow-imports=silent", str(sample)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = result.stdout
    assert 'sample.py:6: error: Argument 1 to "perform_later" of "JobFunction"' in out, out
    assert 'sample.py:7: error: Unexpected keyword argument "colour"' in out, out
    assert "sample.py:4:" not in out and "sample.py:5:" not in out, out
    assert 'Revealed type is "uuid.UUID"' in out, out


@pytest.mark.timeout(120)
def test_deadlines_at_the_edge_never_escape_their_block_nor_hang_a_thread():
    """Many threads whose work ends right around their deadline: every JobTimeoutError lands
    inside its time_limit block, and no thread is left holding the watchdog's lock (before the
    job threads took only the bare lock, this deadlocked)."""
    import random
    import threading
    import time

    from goodjob_mp.timeouts import JobTimeoutError, time_limit

    counts = {"inside": 0, "outside": 0, "other": 0}
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)  # more thread switches, more edges

    def busy(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pass

    def worker() -> None:
        try:
            for _ in range(300):
                try:
                    try:
                        with time_limit(0.003):
                            busy(random.uniform(0.002, 0.004))
                    except JobTimeoutError:
                        counts["inside"] += 1
                    busy(0.002)
                except JobTimeoutError:
                    counts["outside"] += 1
        except BaseException:
            counts["other"] += 1

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(4)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(100)
    finally:
        sys.setswitchinterval(interval)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    assert counts["outside"] == 0 and counts["other"] == 0, counts
    assert counts["inside"] > 0, counts
