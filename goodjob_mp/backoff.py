"""Wait policies: how long a retried job waits, and how long the supervisor waits to restart a pool.

Owns: the arithmetic of ``retry_on(wait=...)`` (Active Job's semantics) and of the
supervisor's restart back-off.
Never: sleeps, reads the clock, touches the database or processes; randomness comes in as an
argument so that callers and tests decide it.

``retry_wait_seconds`` follows Active Job's ``determine_delay`` (Rails 7.1+,
``activejob/lib/active_job/exceptions.rb``):

- a number of seconds (or a ``timedelta``, Python's ``ActiveSupport::Duration``):
  ``delay + rand() * delay * jitter``.
- ``"polynomially_longer"``: ``executions**4 + rand() * executions**4 * jitter + 2``. The jitter
  is taken on ``executions**4`` only; the constant 2 seconds is added after it, as in Rails.
  With no jitter that is 3 s, 18 s, 83 s, 258 s ... for executions 1, 2, 3, 4 ...
- ``"exponentially_longer"``: the name Rails 7.0 and earlier used for the very same formula
  (it was never exponential). Rails 7.1 deprecated it "to avoid confusion and keep the same
  behavior"; we keep it for jobs ported from older Rails, with identical results.
- a callable: called with ``executions``; its result is the wait, with no jitter (Rails adds
  none either).

Jitter 0 means exact waits: ``rand`` is then not even called, as in Rails.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import timedelta

__all__ = [
    "EXPONENTIALLY_LONGER",
    "POLYNOMIALLY_LONGER",
    "restart_backoff_seconds",
    "retry_wait_seconds",
]

POLYNOMIALLY_LONGER = "polynomially_longer"
EXPONENTIALLY_LONGER = "exponentially_longer"
_ALGORITHMS = (POLYNOMIALLY_LONGER, EXPONENTIALLY_LONGER)


def retry_wait_seconds(
    wait: float | int | str | timedelta | Callable[[int], float],
    executions: int,
    jitter: float = 0.15,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before the next attempt, given how many times the job has run."""
    _require_whole(executions, "executions", minimum=0)
    _require_seconds(jitter, "retry jitter", "use a fraction such as 0.15 (15%), or 0 for none")

    if isinstance(wait, str):
        if wait not in _ALGORITHMS:
            raise ValueError(
                f"retry wait {wait!r} is not a known algorithm; use 'polynomially_longer', "
                "a number of seconds, a timedelta, or a function of executions"
            )
        delay = float(executions**4)
        return delay + _jitter(delay, jitter, rand) + 2.0
    if isinstance(wait, timedelta):
        delay = wait.total_seconds()
        _require_seconds(delay, "retry wait", "use a timedelta of zero or more", shown=wait)
        return delay + _jitter(delay, jitter, rand)
    if isinstance(wait, (int, float)) and _is_real(wait):
        _require_seconds(wait, "retry wait", "use a number of seconds >= 0")
        delay = float(wait)
        return delay + _jitter(delay, jitter, rand)
    if callable(wait):
        result = wait(executions)
        if not _is_real(result) or not math.isfinite(result) or result < 0:
            raise ValueError(
                f"retry wait function {wait!r} returned {result!r} for executions={executions}; "
                "it must return a number of seconds >= 0"
            )
        return float(result)
    raise ValueError(
        f"retry wait {wait!r} is not understood; use 'polynomially_longer', a number of "
        "seconds, a timedelta, or a function of executions"
    )


def restart_backoff_seconds(
    failures: int,
    base: float = 0.5,
    cap: float = 30.0,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before restarting a pool that has failed ``failures`` times in a row.

    The ceiling doubles from ``base`` with each failure up to ``cap``; the wait is a random
    point between half the ceiling and the ceiling, so that pools (and hosts) that crashed
    together do not restart in lockstep, while every wait still grows with the failures.
    """
    _require_whole(failures, "restart failures", minimum=1)
    _require_seconds(base, "restart back-off base", "use a number of seconds > 0")
    _require_seconds(cap, "restart back-off cap", "use a number of seconds >= the base")
    if base <= 0:
        raise ValueError(f"restart back-off base {base!r} must be > 0 seconds")
    if cap < base:
        raise ValueError(f"restart back-off cap {cap!r} is below the base {base!r}; raise the cap")
    # The exponent is clamped only so that 2.0**n cannot overflow; cap bounds the result anyway.
    ceiling = min(cap, base * 2.0 ** min(failures - 1, 1023))
    return ceiling * (0.5 + 0.5 * _unit(rand))


def _jitter(delay: float, jitter: float, rand: Callable[[], float]) -> float:
    if jitter == 0:
        return 0.0
    return _unit(rand) * delay * jitter


def _unit(rand: Callable[[], float]) -> float:
    value = rand()
    if not _is_real(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"random source {rand!r} returned {value!r}; it must return 0.0..1.0")
    return float(value)


def _is_real(value: object) -> bool:
    # bool is an int in Python, but wait=True is a mistake, never "1 second".
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _require_whole(value: object, what: str, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{what} {value!r} is invalid; use a whole number >= {minimum}")


def _require_seconds(value: object, what: str, fix: str, *, shown: object = None) -> None:
    shown = value if shown is None else shown
    if not isinstance(value, (int, float)) or not _is_real(value):
        raise ValueError(f"{what} {shown!r} is invalid; {fix}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{what} {shown!r} is invalid; {fix}")
