"""Event hooks (goodjob_mp.subscribe), preservation modes, retry_on_unhandled_error,
on_thread_error, labels and the stored error strings / error_event codes."""

from __future__ import annotations

import datetime as dt
import functools
import threading
import time

import pytest

import goodjob_mp as gj
from goodjob_mp import events
from goodjob_mp.config import load_settings
from goodjob_mp.execution import PreserveInfo
from goodjob_mp.worker.worker import Worker
from tests.waiting import wait_for

MODULE = __name__

# --- jobs -------------------------------------------------------------------------------------

ran: list[str] = []


class EvTransientError(Exception):
    pass


class EvGoneError(Exception):
    pass


class EvOuter:
    class NestedError(Exception):
        pass


class EvOkJob(gj.Job):
    queue_name = "ev"
    priority = 7

    def perform(self, tag: str = "") -> None:
        ran.append(f"ok:{tag}")


class EvSlowJob(gj.Job):
    def perform(self, seconds: float) -> None:
        ran.append("slow")
        time.sleep(seconds)


class EvRetryJob(gj.Job):
    """Fails ``failures`` times with EvTransientError; retried at once, 3 attempts."""

    retry_on = [gj.RetryOn(EvTransientError, wait=0, attempts=3, jitter=0)]

    def perform(self, failures: int) -> None:
        ran.append(f"retry:{self.executions}")
        if self.executions <= failures:
            raise EvTransientError(f"attempt {self.executions} failed")


class EvDiscardJob(gj.Job):
    discard_on = [EvGoneError]

    def perform(self, record_id: int) -> None:
        raise EvGoneError(f"record {record_id} is gone")


class EvBoomJob(gj.Job):
    def perform(self, message: str = "kaboom") -> None:
        raise ValueError(message)


class EvNestedErrorJob(gj.Job):
    def perform(self) -> None:
        raise EvOuter.NestedError("deep")


class EvUnhandledThenOkJob(gj.Job):
    def perform(self) -> None:
        ran.append(f"unhandled:{self.executions}")
        if self.executions == 1:
            raise KeyError("missing")


class EvLabelledJob(gj.Job):
    labels = [" billing ", "billing", "", "  ", "eu"]

    def perform(self) -> None:
        pass


@gj.job(labels=("fn-label", " fn-label", "second"))
def ev_labelled_function() -> None:
    pass


@pytest.fixture(autouse=True)
def _reset_ran():
    ran.clear()
    yield
    ran.clear()


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.threads: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, event: str, **payload) -> None:
        with self._lock:
            self.calls.append((event, payload))
            self.threads.append(threading.current_thread().name)

    def of(self, event: str) -> list[dict]:
        return [p for e, p in self.calls if e == event]

    def names(self) -> list[str]:
        return [e for e, _ in self.calls]


@pytest.fixture()
def recorder():
    rec = Recorder()
    unsubscribes = [gj.subscribe(name, functools.partial(rec, name)) for name in events.EVENTS]
    yield rec
    for unsubscribe in unsubscribes:
        unsubscribe()


def job_row(db, job_id, columns="finished_at, error, error_event"):
    return db.execute(f"SELECT {columns} FROM good_jobs WHERE id = %s", (job_id,)).fetchone()


def executions(db, job_id, columns="error, error_event"):
    return db.execute(
        f"SELECT {columns} FROM good_job_executions WHERE active_job_id = %s ORDER BY created_at",
        (job_id,),
    ).fetchall()


def count(db, table):
    return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


# --- events -----------------------------------------------------------------------------------


def test_enqueue_event_payload(db, recorder):
    handle = EvOkJob.set(wait=60).perform_later("a")
    [payload] = recorder.of("enqueue")
    assert set(payload) == {"job_id", "job_class", "queue_name", "priority", "scheduled_at"}
    assert payload["job_id"] == handle.id
    assert payload["job_class"] == f"{MODULE}.EvOkJob"
    assert payload["queue_name"] == "ev" and payload["priority"] == 7
    stored = job_row(db, handle.id, "scheduled_at")[0]
    assert payload["scheduled_at"] == stored == handle.scheduled_at
    assert recorder.names() == ["enqueue"]  # external mode: nothing performed


def test_enqueue_event_for_each_job_of_a_bulk_after_the_write(db, recorder):
    seen_rows = []

    def at_enqueue(**payload):
        seen_rows.append(count(db, "good_jobs"))

    unsubscribe = gj.subscribe("enqueue", at_enqueue)
    try:
        with gj.bulk() as b:
            for i in range(3):
                EvOkJob.perform_later(str(i))
            assert recorder.of("enqueue") == []
    finally:
        unsubscribe()
    assert [p["job_id"] for p in recorder.of("enqueue")] == [h.id for h in b.jobs]
    assert seen_rows == [3, 3, 3]


def test_perform_start_and_finish_on_success(db, recorder):
    handle = EvSlowJob.perform_later(0.05)
    gj.perform_inline()
    assert recorder.names() == ["enqueue", "perform_start", "perform_finish"]
    [start] = recorder.of("perform_start")
    assert start == {
        "job_id": handle.id,
        "job_class": f"{MODULE}.EvSlowJob",
        "queue_name": "default",
        "executions": 1,
    }
    [finish] = recorder.of("perform_finish")
    assert set(finish) == {
        "job_id",
        "job_class",
        "queue_name",
        "duration",
        "outcome",
        "error",
    }
    assert finish["job_id"] == handle.id and finish["job_class"] == f"{MODULE}.EvSlowJob"
    assert finish["outcome"] == "succeeded" and finish["error"] is None
    assert 0.05 <= finish["duration"] < 5


def test_perform_start_is_emitted_before_the_job_runs(db):
    order = []
    unsubscribe = gj.subscribe("perform_start", lambda **p: order.append(("start", list(ran))))
    try:
        EvOkJob.perform_later("x")
        gj.perform_inline()
    finally:
        unsubscribe()
    assert order == [("start", [])]
    assert ran == ["ok:x"]


def test_retry_events_then_success(db, recorder):
    handle = EvRetryJob.perform_later(1)
    assert gj.perform_inline() == 2  # wait=0: the retry is due in the same drain
    [retry] = recorder.of("retry")
    assert retry == {
        "job_id": handle.id,
        "job_class": f"{MODULE}.EvRetryJob",
        "error": f"{MODULE}.EvTransientError: attempt 1 failed",
        "wait": 0,
    }
    assert [p["executions"] for p in recorder.of("perform_start")] == [1, 2]
    finishes = recorder.of("perform_finish")
    assert [(f["outcome"], f["error"]) for f in finishes] == [
        ("retried", f"{MODULE}.EvTransientError: attempt 1 failed"),
        ("succeeded", None),
    ]
    assert recorder.of("discard") == []


def test_retry_stopped_outcome(db, recorder):
    handle = EvRetryJob.perform_later(99)
    assert gj.perform_inline() == 3
    assert len(recorder.of("retry")) == 2  # the third failure is not retried
    outcomes = [f["outcome"] for f in recorder.of("perform_finish")]
    assert outcomes == ["retried", "retried", "retry_stopped"]
    assert recorder.of("discard") == []
    assert ran == ["retry:1", "retry:2", "retry:3"]
    assert executions(db, handle.id, "error_event") == [(3,), (3,), (4,)]
    row = job_row(db, handle.id)
    assert row[0] is not None and row[2] == 4
    assert row[1] == f"{MODULE}.EvTransientError: attempt 3 failed"


def test_discard_event(db, recorder):
    handle = EvDiscardJob.perform_later(5)
    gj.perform_inline()
    [discard] = recorder.of("discard")
    assert discard == {
        "job_id": handle.id,
        "job_class": f"{MODULE}.EvDiscardJob",
        "queue_name": "default",
        "error": f"{MODULE}.EvGoneError: record 5 is gone",
    }
    [finish] = recorder.of("perform_finish")
    assert finish["outcome"] == "discarded" and finish["error"] == discard["error"]
    assert recorder.of("retry") == []


def test_unhandled_error_outcome_failed(db, recorder):
    handle = EvBoomJob.perform_later("bad")
    gj.perform_inline()
    [finish] = recorder.of("perform_finish")
    assert finish["job_id"] == handle.id
    assert finish["outcome"] == "failed" and finish["error"] == "ValueError: bad"
    assert recorder.of("retry") == [] and recorder.of("discard") == []


def _simulate_dead_process(db, job_id):
    """A process claimed and started the job, then died; its lock was handed back."""
    db.execute(
        "UPDATE good_jobs SET performed_at = (now() AT TIME ZONE 'UTC') - interval '5 seconds',"
        " executions_count = 1 WHERE id = %s",
        (job_id,),
    )


def test_interrupt_event_from_the_worker(db, recorder):
    handle = EvOkJob.perform_later("interrupted")
    _simulate_dead_process(db, handle.id)
    worker = Worker(load_settings({"max_threads": 1, "poll_interval": 0.2})).start()
    try:
        assert wait_for(lambda: job_row(db, handle.id)[0] is not None)
    finally:
        assert worker.shutdown(10)
    [interrupt] = recorder.of("interrupt")
    assert interrupt == {
        "job_id": handle.id,
        "job_class": f"{MODULE}.EvOkJob",
        "queue_name": "ev",
        "interrupts": 1,
    }
    names = recorder.names()
    assert names.index("interrupt") < names.index("perform_start")
    assert [f["outcome"] for f in recorder.of("perform_finish")] == ["succeeded"]
    # Perform events run on a worker thread, not on the test's thread.
    start_thread = recorder.threads[names.index("perform_start")]
    assert start_thread.startswith("gj-executor-")


def test_interrupt_event_inline(db, recorder):
    handle = EvOkJob.perform_later("interrupted")
    _simulate_dead_process(db, handle.id)
    gj.perform_inline()
    assert recorder.of("interrupt") == [
        {
            "job_id": handle.id,
            "job_class": f"{MODULE}.EvOkJob",
            "queue_name": "ev",
            "interrupts": 1,
        }
    ]
    assert ran == ["ok:interrupted"]


def test_failing_subscriber_does_not_break_the_job(db, recorder, caplog):
    def broken(**payload):
        raise RuntimeError("subscriber bug")

    unsubscribes = [gj.subscribe(name, broken) for name in events.EVENTS]
    after = []
    unsubscribes.append(gj.subscribe("perform_finish", lambda **p: after.append(p["outcome"])))
    try:
        gj.configure(execution_mode="inline")
        handle = EvOkJob.perform_later("still")
        retried = EvRetryJob.perform_later(1)
        discarded = EvDiscardJob.perform_later(1)
    finally:
        for unsubscribe in unsubscribes:
            unsubscribe()
    assert ran == ["ok:still", "retry:1", "retry:2"]
    row = job_row(db, handle.id)
    assert row[0] is not None and row[1:] == (None, None)
    assert job_row(db, retried.id)[1:] == (None, None)
    assert job_row(db, discarded.id)[2] == 5
    # Subscribers after the broken one still ran; the failure was logged.
    assert after == ["succeeded", "retried", "succeeded", "discarded"]
    assert len(recorder.of("perform_finish")) == 4
    assert any(r.exc_info and "subscriber bug" in str(r.exc_info[1]) for r in caplog.records)


def test_unsubscribe(db):
    seen = []

    def first(**payload):
        seen.append(("first", payload["job_id"]))

    def second(**payload):
        seen.append(("second", payload["job_id"]))

    stop_first = gj.subscribe("enqueue", first)
    stop_second = gj.subscribe("enqueue", second)
    try:
        a = EvOkJob.perform_later()
        stop_first()
        stop_first()  # a second call is harmless
        b = EvOkJob.perform_later()
    finally:
        stop_second()
    c = EvOkJob.perform_later()
    assert seen == [("first", a.id), ("second", a.id), ("second", b.id)]
    assert c.id not in {job_id for _, job_id in seen}
    assert not events.has_subscribers("enqueue")


def test_unsubscribe_removes_only_that_subscription_of_a_shared_callback(db):
    seen = []

    def callback(**payload):
        seen.append(payload["job_id"])

    stop_enqueue = gj.subscribe("enqueue", callback)
    stop_start = gj.subscribe("perform_start", callback)
    try:
        stop_enqueue()
        handle = EvOkJob.perform_later()
        gj.perform_inline()
    finally:
        stop_start()
    assert seen == [handle.id]  # the perform_start subscription is still there


def test_unknown_event_name_raises():
    with pytest.raises(ValueError, match="unknown event 'perform_done'") as info:
        gj.subscribe("perform_done", lambda **p: None)
    for name in events.EVENTS:
        assert name in str(info.value)


# --- preservation -----------------------------------------------------------------------------


def test_preserve_true_keeps_finished_rows_and_executions(db):
    gj.configure(preserve_job_records=True)
    ok = EvOkJob.perform_later()
    retried = EvRetryJob.perform_later(1)
    gj.perform_inline()
    assert job_row(db, ok.id)[0] is not None
    assert job_row(db, retried.id)[0] is not None
    assert len(executions(db, ok.id)) == 1
    assert executions(db, retried.id) == [
        (f"{MODULE}.EvTransientError: attempt 1 failed", 3),
        (None, None),
    ]


def test_preserve_false_deletes_successful_job_with_earlier_attempts(db):
    gj.configure(preserve_job_records=False)
    retried = EvRetryJob.perform_later(1)
    assert gj.perform_inline() == 2
    assert ran == ["retry:1", "retry:2"]
    assert count(db, "good_jobs") == 0
    assert count(db, "good_job_executions") == 0
    assert retried.id  # it did exist


def test_preserve_false_keeps_a_job_waiting_for_its_retry(db):
    gj.configure(preserve_job_records=False)

    class EvSlowRetryJob(gj.Job):
        retry_on = [gj.RetryOn(EvTransientError, wait=3600, attempts=3, jitter=0)]

        def perform(self) -> None:
            raise EvTransientError("later")

    handle = EvSlowRetryJob.perform_later()
    gj.perform_inline()
    row = job_row(db, handle.id)
    assert row[0] is None and row[2] == 3
    assert executions(db, handle.id) == [(f"{MODULE}.EvTransientError: later", 3)]


def test_preserve_false_still_keeps_cron_jobs(db):
    gj.configure(preserve_job_records=False)
    handle = EvOkJob.perform_later("cron")
    db.execute(
        "UPDATE good_jobs SET cron_key = 'ev_cron', cron_at = now() AT TIME ZONE 'UTC'"
        " WHERE id = %s",
        (handle.id,),
    )
    gj.perform_inline()
    assert ran == ["ok:cron"]
    assert job_row(db, handle.id)[0] is not None


def test_on_unhandled_error_keeps_only_unhandled_failures(db):
    gj.configure(preserve_job_records="on_unhandled_error")
    ok = EvOkJob.perform_later()
    retried_ok = EvRetryJob.perform_later(1)
    stopped = EvRetryJob.perform_later(99)
    discarded = EvDiscardJob.perform_later(3)
    failed = EvBoomJob.perform_later()
    gj.perform_inline()
    kept = {r[0] for r in db.execute("SELECT id FROM good_jobs")}
    assert kept == {stopped.id, failed.id}
    assert {r[0] for r in db.execute("SELECT active_job_id FROM good_job_executions")} == kept
    assert len(executions(db, stopped.id)) == 3
    for gone in (ok, retried_ok, discarded):
        assert job_row(db, gone.id) is None


def test_preserve_callable_decides(db):
    asked: list[PreserveInfo] = []

    def keep_failures_and_ev_queue(info: PreserveInfo) -> bool:
        asked.append(info)
        return info.queue_name == "ev" or info.error is not None

    gj.configure(preserve_job_records=keep_failures_and_ev_queue)
    ev = EvOkJob.perform_later("ev")
    other = EvOkJob.set(queue="other").perform_later("other")
    discarded = EvDiscardJob.perform_later(9)
    retried = EvRetryJob.set(queue="other").perform_later(1)
    gj.perform_inline()
    kept = {r[0] for r in db.execute("SELECT id FROM good_jobs")}
    assert kept == {ev.id, discarded.id}
    assert job_row(db, other.id) is None and job_row(db, retried.id) is None
    # Asked once per finished job (not for the retried attempt), with what happened.
    by_outcome = sorted((i.outcome, i.queue_name, i.job_class, i.error) for i in asked)
    assert by_outcome == [
        (
            "discarded",
            "default",
            f"{MODULE}.EvDiscardJob",
            f"{MODULE}.EvGoneError: record 9 is gone",
        ),
        ("succeeded", "ev", f"{MODULE}.EvOkJob", None),
        ("succeeded", "other", f"{MODULE}.EvOkJob", None),
        ("succeeded", "other", f"{MODULE}.EvRetryJob", None),
    ]


def test_preserve_mode_from_environment(db, monkeypatch):
    monkeypatch.setenv("GOOD_JOB_PRESERVE_JOB_RECORDS", "false")
    ok = EvOkJob.perform_later()
    gj.perform_inline()
    assert job_row(db, ok.id) is None
    monkeypatch.setenv("GOOD_JOB_PRESERVE_JOB_RECORDS", "on_unhandled_error")
    gj.configure()  # forget the cached settings
    failed = EvBoomJob.perform_later()
    ok = EvOkJob.perform_later()
    gj.perform_inline()
    assert job_row(db, failed.id) is not None and job_row(db, ok.id) is None


def test_invalid_preserve_mode_is_refused():
    with pytest.raises(gj.ConfigError, match="preserve_job_records"):
        load_settings({"preserve_job_records": "sometimes"})


# --- retry_on_unhandled_error and on_thread_error ---------------------------------------------


def test_retry_on_unhandled_error_retries_instead_of_finishing(db, recorder):
    gj.configure(retry_on_unhandled_error=True)
    handle = EvUnhandledThenOkJob.perform_later()
    assert gj.perform_inline() == 1
    row = job_row(
        db,
        handle.id,
        "finished_at, error, error_event, scheduled_at, updated_at, serialized_params",
    )
    assert row[0] is None
    assert row[1] == "KeyError: 'missing'" and row[2] == 1
    wait = (row[3] - row[4]).total_seconds()
    assert 2.0 <= wait <= 4.0  # polynomially longer after the first attempt: ~3s
    assert row[5]["executions"] == 1
    assert executions(db, handle.id) == [("KeyError: 'missing'", 1)]
    [retry] = recorder.of("retry")
    assert retry["error"] == "KeyError: 'missing'" and retry["wait"] == pytest.approx(wait, abs=0.1)
    assert recorder.of("perform_finish")[0]["outcome"] == "retried"

    assert gj.perform_inline() == 0  # not due yet
    db.execute(
        "UPDATE good_jobs SET scheduled_at = now() AT TIME ZONE 'UTC' WHERE id = %s", (handle.id,)
    )
    assert gj.perform_inline() == 1
    row = job_row(db, handle.id, "finished_at, error, error_event, executions_count")
    assert row[0] is not None and row[1:] == (None, None, 2)
    assert executions(db, handle.id) == [("KeyError: 'missing'", 1), (None, None)]
    assert ran == ["unhandled:1", "unhandled:2"]


def test_without_retry_on_unhandled_error_the_job_finishes_failed(db):
    handle = EvUnhandledThenOkJob.perform_later()
    gj.perform_inline()
    row = job_row(db, handle.id)
    assert row[0] is not None and row[1:] == ("KeyError: 'missing'", 1)
    assert gj.perform_inline() == 0


def test_on_thread_error_receives_unhandled_exceptions_only(db):
    received: list[tuple[BaseException, str]] = []
    gj.configure(
        on_thread_error=lambda exc: received.append((exc, threading.current_thread().name))
    )
    EvBoomJob.perform_later("first")
    EvRetryJob.perform_later(1)  # handled by retry_on
    EvDiscardJob.perform_later(1)  # handled by discard_on
    EvOkJob.perform_later()
    EvBoomJob.perform_later("second")
    gj.perform_inline()
    assert [(type(e), str(e)) for e, _ in received] == [
        (ValueError, "first"),
        (ValueError, "second"),
    ]
    assert received[0][0].__traceback__ is not None
    assert {name for _, name in received} == {threading.current_thread().name}


def test_on_thread_error_is_called_with_retry_on_unhandled_error(db):
    received = []
    gj.configure(retry_on_unhandled_error=True, on_thread_error=received.append)
    handle = EvUnhandledThenOkJob.perform_later()
    gj.perform_inline()
    assert [type(e) for e in received] == [KeyError]
    assert job_row(db, handle.id)[0] is None


def test_on_thread_error_in_the_worker(db):
    received = []
    done = threading.Event()

    def on_error(exc):
        received.append((exc, threading.current_thread().name))
        done.set()

    worker = Worker(load_settings({"on_thread_error": on_error, "max_threads": 1})).start()
    try:
        handle = EvBoomJob.perform_later("in worker")
        assert done.wait(20)
        assert wait_for(lambda: job_row(db, handle.id)[0] is not None)
    finally:
        assert worker.shutdown(10)
    [(exc, thread_name)] = received
    assert isinstance(exc, ValueError) and str(exc) == "in worker"
    assert thread_name.startswith("gj-executor-")
    assert job_row(db, handle.id)[1:] == ("ValueError: in worker", 1)


def test_failing_on_thread_error_does_not_break_the_job(db):
    def broken(exc):
        raise RuntimeError("callback bug")

    gj.configure(on_thread_error=broken)
    handle = EvBoomJob.perform_later()
    ok = EvOkJob.perform_later()
    assert gj.perform_inline() == 2
    assert job_row(db, handle.id)[1:] == ("ValueError: kaboom", 1)
    assert job_row(db, ok.id)[1:] == (None, None)


def test_on_thread_error_must_be_callable():
    with pytest.raises(gj.ConfigError, match="on_thread_error"):
        load_settings({"on_thread_error": "not callable"})


# --- labels -----------------------------------------------------------------------------------


def labels_of(db, handle):
    return job_row(db, handle.id, "labels")[0]


def test_class_level_labels_are_cleaned(db):
    assert labels_of(db, EvLabelledJob.perform_later()) == ["billing", "eu"]


def test_decorator_labels_are_cleaned(db):
    assert labels_of(db, ev_labelled_function.perform_later()) == ["fn-label", "second"]


def test_set_labels_override_class_labels(db):
    handle = EvLabelledJob.set(labels=[" x", "y ", "x"]).perform_later()
    assert labels_of(db, handle) == ["x", "y"]
    chained = EvLabelledJob.set(labels=["a"]).set(priority=3).perform_later()
    assert labels_of(db, chained) == ["a"]
    assert job_row(db, chained.id, "priority")[0] == 3


def test_a_single_label_string_and_no_labels(db):
    assert labels_of(db, EvOkJob.set(labels="  solo ").perform_later()) == ["solo"]
    assert labels_of(db, EvOkJob.perform_later()) is None


def test_bulk_enqueue_stores_labels(db):
    with gj.bulk():
        EvLabelledJob.perform_later()
        EvOkJob.set(labels=["bulk", " bulk"]).perform_later()
    assert sorted(r[0] for r in db.execute("SELECT labels FROM good_jobs")) == [
        ["billing", "eu"],
        ["bulk"],
    ]


def test_non_string_label_is_refused_before_writing(db):
    with pytest.raises(TypeError, match="labels must be strings"):
        EvOkJob.set(labels=["ok", 3]).perform_later()
    assert count(db, "good_jobs") == 0


# --- error strings and error_event codes ------------------------------------------------------


def test_error_string_uses_the_qualified_name_of_nested_exception_classes(db):
    handle = EvNestedErrorJob.perform_later()
    gj.perform_inline()
    expected = f"{MODULE}.EvOuter.NestedError: deep"
    assert job_row(db, handle.id)[1:] == (expected, 1)
    assert executions(db, handle.id) == [(expected, 1)]


def test_execution_rows_keep_a_ruby_style_backtrace(db):
    handle = EvBoomJob.perform_later()
    gj.perform_inline()
    [(backtrace,)] = executions(db, handle.id, "error_backtrace")
    assert backtrace, "a failed execution keeps its backtrace"
    assert backtrace[0].endswith(":in `perform'") and "test_events_and_policies.py:" in backtrace[0]


def test_error_event_codes_over_a_jobs_life(db):
    """0 interrupted, 3 retried, 4 retry_stopped on the executions of one job."""
    handle = EvRetryJob.perform_later(99)
    _simulate_dead_process(db, handle.id)
    gj.perform_inline()
    assert [r[0] for r in executions(db, handle.id, "error_event")] == [0, 3, 3, 4]
    rows = executions(db, handle.id, "error")
    assert rows[0][0].startswith("GoodJob::InterruptedError: Interrupted after starting perform")
    assert [r[0] for r in rows[1:]] == [
        f"{MODULE}.EvTransientError: attempt {n} failed" for n in (1, 2, 3)
    ]
    assert job_row(db, handle.id)[2] == 4


def test_discarded_and_successful_executions(db):
    discarded = EvDiscardJob.perform_later(1)
    ok = EvOkJob.perform_later()
    gj.perform_inline()
    assert executions(db, discarded.id) == [(f"{MODULE}.EvGoneError: record 1 is gone", 5)]
    assert executions(db, ok.id) == [(None, None)]
    assert job_row(db, ok.id)[1:] == (None, None)


def test_finished_at_and_duration_are_recorded(db):
    handle = EvSlowJob.perform_later(0.05)
    before = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    gj.perform_inline()
    finished_at = job_row(db, handle.id)[0]
    assert before <= finished_at <= dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    [(duration,)] = executions(db, handle.id, "duration")
    assert dt.timedelta(seconds=0.05) <= duration < dt.timedelta(seconds=5)


def test_unknown_class_discard_is_announced(db, recorder):
    db.execute(
        "INSERT INTO good_jobs (id, active_job_id, job_class, queue_name, priority,"
        " serialized_params, scheduled_at, created_at, updated_at)"
        " VALUES (gen_random_uuid(), gen_random_uuid(), 'Nowhere::Job', 'default', 0,"
        ' \'{"job_class": "Nowhere::Job", "arguments": []}\', now(), now(), now())'
    )
    gj.perform_inline()
    [discard] = recorder.of("discard")
    assert discard["job_class"] == "Nowhere::Job"
    assert discard["error"].startswith("UnknownJobClassError: ")
