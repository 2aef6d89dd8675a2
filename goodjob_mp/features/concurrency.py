"""Concurrency controls and throttles, as GoodJob's ``good_job_control_concurrency_with``
(pure policy: no SQL runs here; ``db/concurrency_store.py`` runs it).

A job class with ``concurrency = gj.Concurrency(...)`` gets, per job, a key computed once at
enqueue and stored in ``good_jobs.concurrency_key``; enqueue-stage rules refuse new rows over
their limit or throttle; perform-stage rules put a claimed job back (a retry with GoodJob's
back-off, recorded as GoodJob's ``ConcurrencyExceededError``) when running it would exceed
them. See docs/concurrency.md for how the limits hold across processes.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from goodjob_mp.backoff import retry_wait_seconds
from goodjob_mp.jobs import JobDefinitionError

# GoodJob's error classes. A Ruby exception raised without a message has its class name as the
# message, so the stored "Class: message" string names the class twice.
CONCURRENCY_ERROR_CLASS = "GoodJob::ActiveJobExtensions::Concurrency::ConcurrencyExceededError"
THROTTLE_ERROR_CLASS = "GoodJob::ActiveJobExtensions::Concurrency::ThrottleExceededError"
CONCURRENCY_ERROR = f"{CONCURRENCY_ERROR_CLASS}: {CONCURRENCY_ERROR_CLASS}"
THROTTLE_ERROR = f"{THROTTLE_ERROR_CLASS}: {THROTTLE_ERROR_CLASS}"
REFUSAL_ERRORS = (CONCURRENCY_ERROR, THROTTLE_ERROR)
# Active Job's exception_executions key of GoodJob's
# `retry_on ConcurrencyExceededError, attempts: Float::INFINITE` (the rule's exceptions, to_s).
RETRY_KEY = f"[{CONCURRENCY_ERROR_CLASS}]"
RETRY_JITTER = 0.15  # Active Job's default

LIMIT, THROTTLE = "limit", "throttle"


class ConcurrencyError(JobDefinitionError):
    """A ``Concurrency(...)`` that cannot work; raised where the job class is defined."""


@dataclass(frozen=True)
class Throttle:
    count: int
    period: float  # seconds

    def since(self, now: dt.datetime) -> dt.datetime:
        return now - dt.timedelta(seconds=self.period)


@dataclass(frozen=True)
class EnqueueRule:
    """What an enqueue of one key is checked against (None: not checked)."""

    limit: int | None
    waiting_only: bool  # enqueue_limit counts waiting jobs; total_limit counts running ones too
    throttle: Throttle | None


@dataclass(frozen=True)
class PerformRule:
    limit: int | None
    throttle: Throttle | None


_CLASS_NAME = object()  # key not given: the job's class name, as GoodJob


class Concurrency:
    """``gj.Concurrency(perform_limit=1, key=lambda account_id: f"sync-{account_id}")``.

    Limits are whole numbers >= 0; throttles are ``(count, period)`` with ``period`` in seconds
    or a ``timedelta``. ``key`` is a string, or a function called with the job's arguments
    (as ``perform``) that returns one; without it the key is the job's class name. A key of
    ``None`` or ``""`` means no limit applies to that job. ``retry_wait`` is the wait before a
    job refused at perform time is tried again (default Active Job's ``polynomially_longer``,
    as GoodJob's ``retry_on ConcurrencyExceededError``).
    """

    __slots__ = (
        "total_limit",
        "enqueue_limit",
        "perform_limit",
        "enqueue_throttle",
        "perform_throttle",
        "key",
        "retry_wait",
        "enqueue_rule",
        "perform_rule",
    )

    def __init__(
        self,
        *,
        total_limit: int | None = None,
        enqueue_limit: int | None = None,
        perform_limit: int | None = None,
        enqueue_throttle: tuple[int, float | dt.timedelta] | None = None,
        perform_throttle: tuple[int, float | dt.timedelta] | None = None,
        key: str | Callable[..., Any] | None = _CLASS_NAME,  # type: ignore[assignment]
        retry_wait: float | dt.timedelta | str | Callable[[int], float] = "polynomially_longer",
    ) -> None:
        self.total_limit = _limit("total_limit", total_limit)
        self.enqueue_limit = _limit("enqueue_limit", enqueue_limit)
        self.perform_limit = _limit("perform_limit", perform_limit)
        self.enqueue_throttle = _throttle("enqueue_throttle", enqueue_throttle)
        self.perform_throttle = _throttle("perform_throttle", perform_throttle)
        if not (key is _CLASS_NAME or key is None or isinstance(key, str) or callable(key)):
            raise ConcurrencyError(
                f"Concurrency(key={key!r}) is invalid; use a string, or a function of the job's "
                "arguments that returns one (e.g. key=lambda account_id: f'sync-{account_id}')"
            )
        self.key = key
        if not callable(retry_wait) or isinstance(retry_wait, str):
            try:
                retry_wait_seconds(retry_wait, 1, 0.0)  # type: ignore[arg-type]
            except ValueError as exc:
                raise ConcurrencyError(f"Concurrency(retry_wait={retry_wait!r}): {exc}") from None
        self.retry_wait = retry_wait
        # GoodJob: enqueue_limit, else total_limit; perform_limit, else total_limit.
        enqueue_limit_ = self.enqueue_limit if self.enqueue_limit is not None else self.total_limit
        self.enqueue_rule = (
            EnqueueRule(enqueue_limit_, self.enqueue_limit is not None, self.enqueue_throttle)
            if enqueue_limit_ is not None or self.enqueue_throttle is not None
            else None
        )
        perform_limit_ = self.perform_limit if self.perform_limit is not None else self.total_limit
        self.perform_rule = (
            PerformRule(perform_limit_, self.perform_throttle)
            if perform_limit_ is not None or self.perform_throttle is not None
            else None
        )
        if self.enqueue_rule is None and self.perform_rule is None:
            raise ConcurrencyError(
                "Concurrency() needs at least one of total_limit, enqueue_limit, perform_limit, "
                "enqueue_throttle or perform_throttle"
            )

    def __repr__(self) -> str:
        given = {
            name: getattr(self, name)
            for name in self.__slots__[:7]
            if getattr(self, name) is not None
            and getattr(self, name) is not _CLASS_NAME
            and not (name == "retry_wait" and self.retry_wait == "polynomially_longer")
        }
        return "Concurrency(" + ", ".join(f"{k}={v!r}" for k, v in given.items()) + ")"

    def key_for(self, job_class: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str | None:
        """The key to store for a job with these arguments (None: no key, no limits)."""
        if self.key is _CLASS_NAME:
            return job_class
        value = self.key(*args, **kwargs) if callable(self.key) else self.key
        return key_text(value, job_class)

    def retry_seconds(self, refusals: int) -> float:
        """Wait before a refused job is tried again: Active Job's ``retry_on`` passes the
        rule's own count (``exception_executions``) as the executions."""
        return retry_wait_seconds(self.retry_wait, refusals, RETRY_JITTER)  # type: ignore[arg-type]


def key_text(value: Any, job_class: str = "") -> str | None:
    """GoodJob's VALID_TYPES (String, Symbol, Numeric, Date, Time, true/false/nil), stored as
    their text; blank means no key."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"  # Ruby's to_s
    if isinstance(value, str):
        return value or None
    if isinstance(value, (int, float, dt.date)):
        return str(value)
    raise TypeError(
        f"concurrency key of {job_class or 'a job'} must be a string (or a number or date); "
        f"the key function returned {value!r} ({type(value).__name__})"
    )


def _limit(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConcurrencyError(
            f"Concurrency({name}={value!r}) is invalid; use a whole number >= 0, or leave it out"
        )
    return value


def _throttle(name: str, value: Any) -> Throttle | None:
    if value is None:
        return None
    ok = isinstance(value, (tuple, list)) and len(value) == 2
    count, period = value if ok else (None, None)
    if isinstance(period, dt.timedelta):
        period = period.total_seconds()
    if (
        not ok
        or isinstance(count, bool)
        or not isinstance(count, int)
        or count < 1
        or isinstance(period, bool)
        or not isinstance(period, (int, float))
        or not math.isfinite(period)
        or period <= 0
    ):
        raise ConcurrencyError(
            f"Concurrency({name}={value!r}) is invalid; use (count, period): a whole number >= 1 "
            "of jobs per period seconds (or a timedelta), e.g. (10, 60)"
        )
    return Throttle(count, float(period))


# --- decisions (the store supplies the counts) ---------------------------------------------


def enqueue_refusal(rule: EnqueueRule, counted: int, recent: int) -> str | None:
    """GoodJob's check_enqueue: ``counted`` jobs of the key that the limit counts, ``recent``
    created within the throttle's period (both including rows accepted earlier in the batch)."""
    if rule.limit is not None and counted + 1 > rule.limit:
        return LIMIT
    if rule.throttle is not None and recent + 1 > rule.throttle.count:
        return THROTTLE
    return None


def perform_refusal(rule: PerformRule, admitted: int, started: int) -> str | None:
    """``admitted``: other jobs of the key running now; ``started``: attempts of the key begun
    within the throttle's period (not this one)."""
    if rule.limit is not None and admitted >= rule.limit:
        return LIMIT
    if rule.throttle is not None and started >= rule.throttle.count:
        return THROTTLE
    return None


def refusal_error(refusal: str) -> str:
    return THROTTLE_ERROR if refusal == THROTTLE else CONCURRENCY_ERROR
