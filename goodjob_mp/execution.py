"""Perform one claimed job and decide what its attempt means: success, retry, discard, failure.

Owns the Active Job error semantics (``retry_on`` attempts per rule, ``discard_on``,
``retry_on_unhandled_error``, error strings ``"ErrorClass: message"`` and GoodJob's
``error_event`` codes) and the preservation policy. Runs user code on the calling thread; never
touches the database: it returns a ``JobResult`` for the completer to write.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from goodjob_mp import events, features
from goodjob_mp.backoff import retry_wait_seconds
from goodjob_mp.config import Settings
from goodjob_mp.db import job_store
from goodjob_mp.db.job_store import ClaimedJob, JobResult, utcnow
from goodjob_mp.db.jsonb import UnreadableJSON
from goodjob_mp.features import concurrency as concurrency_policy
from goodjob_mp.features.batches import locate_arguments
from goodjob_mp.features.concurrency import Concurrency
from goodjob_mp.jobs import Job, RetryOn, UnknownJobClassError, importable_packages, lookup
from goodjob_mp.serialization import DeserializationError, GlobalID, deserialize_arguments
from goodjob_mp.timeouts import time_limit

log = logging.getLogger("goodjob_mp.job")

# GoodJob's error_event codes.
INTERRUPTED, UNHANDLED, HANDLED, RETRIED, RETRY_STOPPED, DISCARDED = range(6)
INTERRUPTED_ERROR = "GoodJob::InterruptedError"
MAX_BACKTRACE_LINES = 50


def clean_text(text: str) -> str:
    """Text that a Postgres ``text`` column (and jsonb) accepts: a NUL byte becomes the six
    characters ``\\u0000`` and a lone surrogate its ``\\udXXX`` escape, so one job's odd
    message can never fail the write of a whole batch of results."""
    if text.isascii() and "\x00" not in text:
        return text
    text = text.replace("\x00", "\\u0000")
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def error_string(exc: BaseException) -> str:
    """GoodJob's ``"ErrorClass: message"``; builtins by bare name, others by import path."""
    cls = type(exc)
    name = (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )
    try:
        message = str(exc)
    except Exception as str_error:  # a broken __str__ must not lose the job's result
        message = f"<str() of the exception failed: {type(str_error).__name__}>"
    return clean_text(f"{name}: {message}")


def backtrace_lines(exc: BaseException) -> list[str]:
    """Ruby-style ``file:line:in `function'`` lines, innermost first, as GoodJob stores them."""
    frames = traceback.extract_tb(exc.__traceback__)[-MAX_BACKTRACE_LINES:]
    return [clean_text(f"{f.filename}:{f.lineno}:in `{f.name}'") for f in reversed(frames)]


def interrupted_message(started_at: dt.datetime) -> str:
    started = f"{started_at:%Y-%m-%d %H:%M:%S}"
    return f"{INTERRUPTED_ERROR}: Interrupted after starting perform at '{started} UTC'"


@dataclass(frozen=True)
class PreserveInfo:
    """What a ``preserve_job_records`` callable is asked about."""

    job_class: str | None
    queue_name: str
    outcome: str
    error: str | None


def should_preserve(settings: Settings, job: ClaimedJob, outcome: str, error: str | None) -> bool:
    if job.cron_key is not None:
        return True  # the (cron_key, cron_at) row is what makes cron runs unique
    policy = settings.preserve_job_records
    if policy is True or policy is False:
        return policy
    if policy == "on_unhandled_error":
        return outcome in ("failed", "retry_stopped")
    return bool(policy(PreserveInfo(job.job_class, job.queue_name, outcome, error)))


# --- the current job's thread -----------------------------------------------------------------

_current = threading.local()


def current_thread_running() -> bool:
    """True on a thread that is performing a job right now (GoodJob's
    ``current_thread_running?``): e.g. to skip work that only a web request needs."""
    return bool(getattr(_current, "running", False))


def current_thread_shutting_down() -> bool:
    """True inside a job whose worker is shutting down: long jobs may stop early and retry."""
    check: Callable[[], bool] | None = getattr(_current, "shutting_down", None)
    return bool(check and check())


def set_thread_shutdown_check(check: Callable[[], bool] | None) -> None:
    _current.shutting_down = check


# --- perform ----------------------------------------------------------------------------------


def _discard(job: ClaimedJob, started: dt.datetime, error: str, settings: Settings) -> JobResult:
    # Every discard is announced: discard_on, unknown class, unreadable payload, poison job.
    if events.has_subscribers("discard"):
        events.emit(
            "discard",
            job_id=job.id,
            job_class=job.job_class,
            queue_name=job.queue_name,
            error=error,
        )
    return JobResult(
        id=job.id,
        started_at=started,
        ended_at=utcnow(),
        finished=True,
        error=error,
        error_event=DISCARDED,
        preserve=should_preserve(settings, job, "discarded", error),
        had_executions=job.executions_count > 1,
        outcome="discarded",
        batch_id=job.batch_id,
        batch_callback_id=job.batch_callback_id,
    )


def close_interrupted_attempt(
    conn: psycopg.Connection, job: ClaimedJob, settings: Settings
) -> JobResult | None:
    """A claimed job whose earlier attempt was cut off: record that attempt as interrupted
    (event 0) and announce it. Returns the discard result of a poison job, which must not run
    again, or None when the job should be performed."""
    started_at = job.prev_performed_at or utcnow()  # set for every interrupted claim
    job_store.record_interrupt(conn, job, interrupted_message(started_at), utcnow())
    log.warning(
        "job %s %s was interrupted (attempt started %s); %d interrupt(s) so far",
        job.id,
        job.job_class,
        job.prev_performed_at,
        job.interrupts + 1,
    )
    return _count_interrupt(job, settings)


def _count_interrupt(job: ClaimedJob, settings: Settings) -> JobResult | None:
    """Announce one more interrupt of ``job``; the discard result once it is poison."""
    if events.has_subscribers("interrupt"):
        events.emit(
            "interrupt",
            job_id=job.id,
            job_class=job.job_class,
            queue_name=job.queue_name,
            interrupts=job.interrupts + 1,
        )
    if job.interrupts + 1 >= settings.max_interrupts:
        return discard_poison(job, settings)
    return None


def discard_poison(job: ClaimedJob, settings: Settings) -> JobResult:
    """A job whose process died under it too often is discarded rather than run again."""
    error = (
        f"{INTERRUPTED_ERROR}: discarded after {job.interrupts + 1} interrupted attempts "
        f"(max_interrupts={settings.max_interrupts}): the process performing it died each time"
    )
    return _discard(job, utcnow(), error, settings)


@functools.lru_cache(maxsize=8)
def _importable_for(app: str | None, job_packages: tuple[str, ...]) -> tuple[str, ...]:
    return importable_packages(app, job_packages)


def _importable(settings: Settings) -> tuple[str, ...]:
    return _importable_for(settings.app, tuple(settings.job_packages))


def perform(job: ClaimedJob, settings: Settings) -> JobResult:
    """Run one claimed job to a result. Never raises: not for the job's own errors (even
    ``sys.exit()`` or ``KeyboardInterrupt`` raised by job code, which fail the attempt like any
    other error), nor for an internal error, which backs the job off (see
    ``internal_error_result``). The worker stops its threads with events, never by raising into
    them, so nothing that escapes a job can be the worker's own shutdown."""
    try:
        result = _perform(job, settings)
    except BaseException as exc:
        return internal_error_result(job, exc)
    # For the finish hooks (batches), so a write without batch jobs skips them.
    result.batch_id, result.batch_callback_id = job.batch_id, job.batch_callback_id
    return result


def internal_error_result(job: ClaimedJob, exc: BaseException) -> JobResult:
    """An error in goodjob_mp's own handling of a job (not in the job's code): keep the job and
    retry it after a polynomial back-off on its execution count, never at once, so a bug cannot
    spin a job through the queue. Recorded as unhandled (event 1)."""
    log.error("internal error performing job %s %s", job.id, job.job_class, exc_info=exc)
    now = utcnow()
    wait = retry_wait_seconds("polynomially_longer", max(job.executions_count, 1), 0.15)
    return JobResult(
        id=job.id,
        started_at=now,
        ended_at=now,
        finished=False,
        retry_at=now + dt.timedelta(seconds=wait),
        error=error_string(exc),
        error_event=UNHANDLED,
        backtrace=backtrace_lines(exc),
        had_executions=True,
        outcome="retried",
        queue_name=job.queue_name,
    )


def _perform(job: ClaimedJob, settings: Settings) -> JobResult:
    step = begin(job, settings)
    if isinstance(step, JobResult):
        return step
    if step.is_async:
        from goodjob_mp.async_jobs import run_blocking

        return run_blocking(run_async(step))
    return run_sync(step)


@dataclass
class Prepared:
    """A job ready for its body: class found, arguments read, ``perform_start`` announced."""

    job: ClaimedJob
    job_cls: type[Job]
    job_class: str | None
    instance: Job
    params: dict[str, Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    started: dt.datetime
    t0: float
    settings: Settings
    # Admitted under these concurrency limits (the perform seam): released when the body ends.
    admitted: Concurrency | None = None

    @property
    def is_async(self) -> bool:
        return self.job_cls.is_async()


def begin(job: ClaimedJob, settings: Settings) -> Prepared | JobResult:
    """Everything before the job's body; a ``JobResult`` when it must not run (discarded).
    Never raises. The worker's seam: a ``Prepared`` whose ``is_async`` goes to the pool's
    event loop (``run_async``), any other to ``run_sync`` on the executor thread."""
    try:
        return _begin(job, settings)
    except BaseException as exc:
        return internal_error_result(job, exc)


def _begin(job: ClaimedJob, settings: Settings) -> Prepared | JobResult:
    started = utcnow()
    t0 = time.perf_counter()
    params = job.serialized_params
    job_class = job.job_class or (params.get("job_class") if isinstance(params, dict) else None)
    try:
        if isinstance(params, UnreadableJSON):
            raise DeserializationError(
                f"serialized_params of job {job.id} cannot be read: {params.reason}"
            )
        if not isinstance(params, dict) or not isinstance(params.get("arguments", []), list):
            raise DeserializationError(
                f"serialized_params of job {job.id} is not an Active Job payload: {params!r:.200}"
            )
        job_cls = lookup(job_class or "", import_under=_importable(settings))
        args, kwargs = deserialize_arguments(params.get("arguments") or [])
        if args and any(type(a) is GlobalID for a in args):
            args = locate_arguments(args)  # a batch callback's batch
    except (UnknownJobClassError, DeserializationError) as exc:
        error = f"{type(exc).__name__}: {exc}"
        # One log line for it: _finish_events says "discarded" with the error.
        result = _discard(job, started, error, settings)
        _finish_events(job, job_class, result, time.perf_counter() - t0)
        return result

    instance = job_cls()
    instance.job_id = str(params.get("job_id") or job.active_job_id)
    instance.provider_job_id = str(job.id)
    instance.executions = int(params.get("executions") or 0) + 1
    config = job_cls._concurrency
    if config is not None:  # the only test other jobs pay
        # The perform seam: admitted under the key's limits until the body ends (run_sync /
        # run_async release it), or refused and retried as GoodJob retries it.
        refusal = features.admit_perform(job, config)
        if refusal is not None:
            result = _refused(job, job_cls, instance, params, refusal, started)
            _finish_events(job, job_class, result, time.perf_counter() - t0)
            return result
    if events.has_subscribers("perform_start"):
        events.emit(
            "perform_start",
            job_id=job.id,
            job_class=job_class,
            queue_name=job.queue_name,
            executions=instance.executions,
        )
    return Prepared(
        job,
        job_cls,
        job_class,
        instance,
        params,
        tuple(args),
        dict(kwargs),
        started,
        t0,
        settings,
        config,
    )


def run_sync(p: Prepared) -> JobResult:
    """The body of a prepared sync job on this thread, to its result. Never raises."""
    try:
        _current.running = True
        try:
            seconds = p.job_cls._timeout_seconds
            if seconds is None:  # what time_limit(None) does, without a context manager per job
                p.instance.run_callbacks_and_perform(p.args, p.kwargs)
            else:
                with time_limit(seconds):
                    p.instance.run_callbacks_and_perform(p.args, p.kwargs)
        except BaseException as exc:  # job code's sys.exit()/KeyboardInterrupt fail it too
            result = _failed(p.job, p.job_cls, p.instance, p.params, exc, p.started, p.settings)
        else:
            result = _succeeded(p)
        finally:
            _current.running = False
            _end_admission(p)
        _finish_events(p.job, p.job_class, result, time.perf_counter() - p.t0)
        return result
    except BaseException as exc:
        return internal_error_result(p.job, exc)


async def run_async(p: Prepared) -> JobResult:
    """The body of a prepared ``async def`` job on the running loop, to its result. Never
    raises: a cancellation that is not the job's own timeout (the worker shutting down past
    ``shutdown_timeout``) is recorded as an interrupted attempt, and the job runs again."""
    from goodjob_mp.async_jobs import time_limit_async

    try:
        try:
            async with time_limit_async(p.job_cls._timeout_seconds):
                await p.instance.run_callbacks_and_perform_async(p.args, p.kwargs)
        except asyncio.CancelledError:
            result = interrupted_result(p.job, p.started, p.settings)
        except BaseException as exc:
            result = _failed(p.job, p.job_cls, p.instance, p.params, exc, p.started, p.settings)
        else:
            result = _succeeded(p)
        finally:
            _end_admission(p)
        _finish_events(p.job, p.job_class, result, time.perf_counter() - p.t0)
        return result
    except BaseException as exc:
        return internal_error_result(p.job, exc)


def _end_admission(p: Prepared) -> None:
    if p.admitted is not None:
        features.end_perform(p.job, p.admitted)


def _refused(
    job: ClaimedJob,
    job_cls: type[Job],
    instance: Job,
    params: dict[str, Any],
    refusal: str,
    started: dt.datetime,
) -> JobResult:
    """Over a perform limit or throttle: GoodJob's before_perform raises ConcurrencyExceededError
    (or ThrottleExceededError), and its ``retry_on ..., attempts: Float::INFINITE, wait:
    :polynomially_longer`` retries the job; no job code has run. The backtrace is empty, as
    GoodJob suppresses it."""
    counts, refusals = rule_executions(params, concurrency_policy.RETRY_KEY, instance.executions)
    assert job_cls._concurrency is not None
    wait = job_cls._concurrency.retry_seconds(refusals)
    error = concurrency_policy.refusal_error(refusal)
    return _retry(job, params, instance, counts, error, [], wait, RETRIED, started)


def _succeeded(p: Prepared) -> JobResult:
    return JobResult(
        id=p.job.id,
        started_at=p.started,
        # One clock reading per job: the end is the start plus the measured duration.
        ended_at=p.started + dt.timedelta(seconds=time.perf_counter() - p.t0),
        finished=True,
        preserve=should_preserve(p.settings, p.job, "succeeded", None),
        had_executions=p.job.executions_count > 1,
    )


def interrupted_result(job: ClaimedJob, started: dt.datetime, settings: Settings) -> JobResult:
    """A running attempt this process cut off itself (a coroutine cancelled at shutdown):
    recorded as ``InterruptedError`` (event 0) and due again at once, as a killed process's
    attempt is on its next claim; discarded as poison after ``max_interrupts``."""
    log.warning("job %s %s interrupted: cancelled at shutdown", job.id, job.job_class)
    poison = _count_interrupt(job, settings)
    if poison is not None:
        return poison
    now = utcnow()
    return JobResult(
        id=job.id,
        started_at=started,
        ended_at=now,
        finished=False,
        retry_at=now,
        error=interrupted_message(started),
        error_event=INTERRUPTED,
        had_executions=True,
        outcome="interrupted",
        queue_name=job.queue_name,
    )


def _failed(
    job: ClaimedJob,
    job_cls: type[Job],
    instance: Job,
    params: dict[str, Any],
    exc: BaseException,
    started: dt.datetime,
    settings: Settings,
) -> JobResult:
    error = error_string(exc)
    backtrace = backtrace_lines(exc)
    if isinstance(exc, job_cls._discard_types):
        result = _discard(job, started, error, settings)
        result.backtrace = backtrace
        return result
    for rule in job_cls._retry_rules:
        if not isinstance(exc, rule.exceptions):
            continue
        counts, count = rule_executions(params, rule.key, instance.executions)
        if count < rule.attempts:
            wait = retry_wait_seconds(rule.wait, count, rule.jitter)
            return _retry(
                job, params, instance, counts, error, backtrace, wait, RETRIED, started, rule
            )
        return _final(job, started, error, backtrace, RETRY_STOPPED, "retry_stopped", settings)
    if job_cls._rescues:
        try:
            handled = instance.rescue_with_handler(exc)
        except BaseException as handler_error:  # the handler failed: that error is unhandled
            exc, error, backtrace = (
                handler_error,
                error_string(handler_error),
                backtrace_lines(handler_error),
            )
        else:
            if handled:
                return _final(job, started, error, backtrace, HANDLED, "handled", settings)
    _report_thread_error(exc, settings)
    if settings.retry_on_unhandled_error:
        # GoodJob retries at once; a polynomial wait keeps a broken job from spinning the queue.
        wait = retry_wait_seconds("polynomially_longer", instance.executions, 0.15)
        counts = params.get("exception_executions")  # no retry_on rule counted this one
        return _retry(job, params, instance, counts, error, backtrace, wait, UNHANDLED, started)
    return _final(job, started, error, backtrace, UNHANDLED, "failed", settings)


def rule_executions(
    params: dict[str, Any], key: str, executions: int
) -> tuple[dict[str, Any] | None, int]:
    """Active Job's ``executions_for``: a ``retry_on`` rule's own count, this attempt included.

    ``exception_executions`` maps each rule's key (its exception list as ``to_s`` spells it,
    ``"[Net::ReadTimeout]"``) to how many times that rule has handled an error; the count is
    incremented here and is what ``attempts`` and ``wait`` see. Other rules' counts (a Rails
    app's too) are kept as they are. A job stored without the hash (Active Job before 6.0)
    counts by its total ``executions``, and is stored again without one, as Rails does.
    Returns the hash to store and the count."""
    stored = params.get("exception_executions")
    if not isinstance(stored, dict):
        return stored, executions
    counts = dict(stored)
    previous = counts.get(key)
    count = (previous if type(previous) is int and previous > 0 else 0) + 1
    counts[key] = count
    return counts, count


def _retry(
    job: ClaimedJob,
    params: dict[str, Any],
    instance: Job,
    counts: dict[str, Any] | None,
    error: str,
    backtrace: list[str],
    wait: float,
    event: int,
    started: dt.datetime,
    rule: RetryOn | None = None,
) -> JobResult:
    ended = utcnow()
    new_params = dict(params)
    new_params["executions"] = instance.executions
    new_params["exception_executions"] = counts
    new_params["provider_job_id"] = str(job.id)
    queue_name = job.queue_name
    # Active Job's retry_job(queue:, priority:): the retry is enqueued there. The row's
    # queue_name and priority columns follow serialized_params when the result is written.
    if rule is not None and rule.queue is not None:
        queue_name = new_params["queue_name"] = rule.queue
    if rule is not None and rule.priority is not None:
        new_params["priority"] = rule.priority
    if events.has_subscribers("retry"):
        events.emit("retry", job_id=job.id, job_class=job.job_class, error=error, wait=wait)
    return JobResult(
        id=job.id,
        started_at=started,
        ended_at=ended,
        finished=False,
        retry_at=ended + dt.timedelta(seconds=wait),
        error=error,
        error_event=event,
        new_params=new_params,
        backtrace=backtrace,
        had_executions=True,
        outcome="retried",
        queue_name=queue_name,
    )


def _final(
    job: ClaimedJob,
    started: dt.datetime,
    error: str,
    backtrace: list[str],
    event: int,
    outcome: str,
    settings: Settings,
) -> JobResult:
    return JobResult(
        id=job.id,
        started_at=started,
        ended_at=utcnow(),
        finished=True,
        error=error,
        error_event=event,
        backtrace=backtrace,
        preserve=should_preserve(settings, job, outcome, error),
        had_executions=job.executions_count > 1,
        outcome=outcome,
    )


def _report_thread_error(exc: BaseException, settings: Settings) -> None:
    if settings.on_thread_error is None:
        return
    try:
        settings.on_thread_error(exc)
    except Exception:
        log.exception("on_thread_error callback failed")


def _finish_events(job: ClaimedJob, job_class: str | None, result: JobResult, took: float) -> None:
    if result.outcome == "succeeded":
        if log.isEnabledFor(logging.INFO):
            log.info(
                "job %s %s queue=%s succeeded in %.3fs", job.id, job_class, job.queue_name, took
            )
    elif result.error in concurrency_policy.REFUSAL_ERRORS:
        # Expected under a limit: the job waits its turn; not a failure.
        log.info(
            "job %s %s queue=%s not run now: %s", job.id, job_class, job.queue_name, result.error
        )
    else:
        log.warning(
            "job %s %s queue=%s %s in %.3fs: %s",
            job.id,
            job_class,
            job.queue_name,
            result.outcome,
            took,
            result.error,
        )
    if events.has_subscribers("perform_finish"):
        events.emit(
            "perform_finish",
            job_id=job.id,
            job_class=job_class,
            queue_name=job.queue_name,
            duration=took,
            outcome=result.outcome,
            error=result.error,
        )
