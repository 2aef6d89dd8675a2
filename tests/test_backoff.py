"""Retry waits (Active Job's ``retry_on wait:``) and the supervisor's restart back-off."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import timedelta

import pytest

from goodjob_mp.backoff import restart_backoff_seconds, retry_wait_seconds


def fixed(value: float) -> Callable[[], float]:
    return lambda: value


def never() -> float:
    raise AssertionError("rand must not be called when jitter is 0")


# --- retry_wait_seconds --------------------------------------------------------------------
# (wait, executions, jitter, rand value, expected seconds)

RETRY_WAITS = [
    # A number: delay + rand * delay * jitter.
    (3, 1, 0.0, None, 3.0),
    (3, 5, 0.0, None, 3.0),
    (3, 1, 0.15, 0.0, 3.0),
    (3, 1, 0.15, 1.0, 3.45),
    (10, 1, 0.15, 0.5, 10.75),
    (10, 1, 0.5, 0.5, 12.5),
    (2.5, 1, 0.0, None, 2.5),
    (2.5, 1, 0.2, 1.0, 3.0),
    (0, 1, 0.15, 0.9, 0.0),
    (300, 7, 0.15, 0.2, 309.0),
    (timedelta(minutes=5), 1, 0.0, None, 300.0),
    (timedelta(seconds=10), 1, 0.15, 0.5, 10.75),
    # Polynomial: executions**4 + rand * executions**4 * jitter + 2 (2 s outside the jitter).
    ("polynomially_longer", 0, 0.15, 0.5, 2.0),
    ("polynomially_longer", 1, 0.0, None, 3.0),
    ("polynomially_longer", 2, 0.0, None, 18.0),
    ("polynomially_longer", 3, 0.0, None, 83.0),
    ("polynomially_longer", 4, 0.0, None, 258.0),
    ("polynomially_longer", 10, 0.0, None, 10_002.0),
    ("polynomially_longer", 1, 0.15, 1.0, 3.15),
    ("polynomially_longer", 2, 0.15, 1.0, 20.4),
    ("polynomially_longer", 3, 0.15, 0.5, 81 + 81 * 0.075 + 2),
    ("polynomially_longer", 2, 1.0, 0.25, 16 + 4 + 2),
    # The deprecated Rails name: the very same formula.
    ("exponentially_longer", 1, 0.0, None, 3.0),
    ("exponentially_longer", 3, 0.0, None, 83.0),
    ("exponentially_longer", 2, 0.15, 1.0, 20.4),
    # A callable: its result as is, no jitter even when jitter is set.
    (lambda n: n * 2, 3, 0.15, None, 6.0),
    (lambda n: 7.5, 1, 0.0, None, 7.5),
    (lambda n: 0, 9, 0.9, None, 0.0),
]


@pytest.mark.parametrize(("wait", "executions", "jitter", "rand_value", "expected"), RETRY_WAITS)
def test_retry_wait_seconds(
    wait: object, executions: int, jitter: float, rand_value: float | None, expected: float
) -> None:
    rand = never if rand_value is None else fixed(rand_value)
    result = retry_wait_seconds(wait, executions, jitter=jitter, rand=rand)  # type: ignore[arg-type]
    assert isinstance(result, float)
    assert result == pytest.approx(expected)


@pytest.mark.parametrize("algorithm", ["polynomially_longer", "exponentially_longer"])
@pytest.mark.parametrize("executions", range(0, 12))
def test_algorithms_agree_and_stay_within_jitter(algorithm: str, executions: int) -> None:
    base = executions**4 + 2
    for value in (0.0, 0.3, 0.999):
        wait = retry_wait_seconds(algorithm, executions, jitter=0.15, rand=fixed(value))
        same = retry_wait_seconds("polynomially_longer", executions, 0.15, fixed(value))
        assert wait == same
        assert base <= wait <= base + executions**4 * 0.15


def test_default_jitter_is_fifteen_percent() -> None:
    assert retry_wait_seconds(100, 1, rand=fixed(1.0)) == pytest.approx(115.0)


def test_default_rand_stays_within_bounds() -> None:
    for _ in range(200):
        assert 10.0 <= retry_wait_seconds(10, 1) <= 11.5


def test_callable_receives_executions() -> None:
    seen: list[int] = []
    retry_wait_seconds(lambda n: seen.append(n) or 1, 4)
    assert seen == [4]


def wait_none(executions: int) -> object:
    return None


BAD_WAITS = [
    # (wait, executions, jitter, rand, fragments in the message)
    ("exponential", 1, 0.15, random.random, ["'exponential'", "not a known algorithm"]),
    (":polynomially_longer", 1, 0.15, random.random, ["':polynomially_longer'"]),
    ("", 1, 0.15, random.random, ["''", "not a known algorithm"]),
    (None, 1, 0.15, random.random, ["retry wait None", "not understood"]),
    ([3], 1, 0.15, random.random, ["retry wait [3]"]),
    (True, 1, 0.15, random.random, ["retry wait True", "not understood"]),
    (-1, 1, 0.15, random.random, ["retry wait -1", ">= 0"]),
    (math.nan, 1, 0.15, random.random, ["retry wait nan"]),
    (math.inf, 1, 0.15, random.random, ["retry wait inf"]),
    (timedelta(seconds=-5), 1, 0.15, random.random, ["retry wait datetime.timedelta(days=-1"]),
    (wait_none, 2, 0.15, random.random, ["wait_none", "returned None", "executions=2"]),
    (lambda n: "3", 1, 0.15, random.random, ["returned '3'"]),
    (lambda n: math.inf, 1, 0.15, random.random, ["returned inf"]),
    (lambda n: -2, 1, 0.15, random.random, ["returned -2 for executions=1", ">= 0"]),
    (3, -1, 0.15, random.random, ["executions -1", ">= 0"]),
    (3, 1.0, 0.15, random.random, ["executions 1.0"]),
    (3, 1, -0.1, random.random, ["retry jitter -0.1"]),
    (3, 1, math.nan, random.random, ["retry jitter nan"]),
    (3, 1, 0.15, fixed(1.5), ["returned 1.5", "0.0..1.0"]),
    (3, 1, 0.15, fixed(-0.1), ["returned -0.1"]),
]


@pytest.mark.parametrize(("wait", "executions", "jitter", "rand", "fragments"), BAD_WAITS)
def test_retry_wait_seconds_refuses(
    wait: object, executions: object, jitter: float, rand: Callable[[], float], fragments: list[str]
) -> None:
    with pytest.raises(ValueError) as caught:
        retry_wait_seconds(wait, executions, jitter=jitter, rand=rand)  # type: ignore[arg-type]
    for fragment in fragments:
        assert fragment in str(caught.value)


# --- restart_backoff_seconds ---------------------------------------------------------------
# (failures, base, cap, rand value, expected seconds): ceiling = min(cap, base * 2**(n-1)),
# wait = ceiling * (0.5 + 0.5 * rand).

RESTARTS = [
    (1, 0.5, 30.0, 1.0, 0.5),
    (1, 0.5, 30.0, 0.0, 0.25),
    (2, 0.5, 30.0, 1.0, 1.0),
    (3, 0.5, 30.0, 1.0, 2.0),
    (4, 0.5, 30.0, 0.5, 3.0),
    (7, 0.5, 30.0, 1.0, 30.0),
    (7, 0.5, 30.0, 0.0, 15.0),
    (8, 0.5, 30.0, 1.0, 30.0),
    (1_000, 0.5, 30.0, 1.0, 30.0),
    (100_000, 0.5, 30.0, 0.0, 15.0),
    (3, 1.0, 3.0, 1.0, 3.0),
    (1, 2.0, 2.0, 0.5, 1.5),
    (5, 0.1, 60.0, 1.0, 1.6),
]


@pytest.mark.parametrize(("failures", "base", "cap", "rand_value", "expected"), RESTARTS)
def test_restart_backoff_seconds(
    failures: int, base: float, cap: float, rand_value: float, expected: float
) -> None:
    wait = restart_backoff_seconds(failures, base=base, cap=cap, rand=fixed(rand_value))
    assert wait == pytest.approx(expected)


def test_restart_backoff_never_shrinks_and_stays_within_half_to_full() -> None:
    previous_floor = 0.0
    for failures in range(1, 40):
        ceiling = min(30.0, 0.5 * 2 ** (failures - 1))
        low = restart_backoff_seconds(failures, rand=fixed(0.0))
        high = restart_backoff_seconds(failures, rand=fixed(1.0))
        assert low == pytest.approx(ceiling / 2)
        assert high == pytest.approx(ceiling)
        assert low >= previous_floor
        previous_floor = low
        assert ceiling / 2 <= restart_backoff_seconds(failures) <= ceiling


BAD_RESTARTS = [
    # (failures, base, cap, rand, fragments)
    (0, 0.5, 30.0, random.random, ["restart failures 0", ">= 1"]),
    (-3, 0.5, 30.0, random.random, ["restart failures -3"]),
    (1.5, 0.5, 30.0, random.random, ["restart failures 1.5"]),
    (True, 0.5, 30.0, random.random, ["restart failures True"]),
    (1, 0.0, 30.0, random.random, ["base 0.0", "> 0"]),
    (1, -1.0, 30.0, random.random, ["base -1.0"]),
    (1, math.inf, 30.0, random.random, ["base inf"]),
    (1, 0.5, 0.1, random.random, ["cap 0.1 is below the base 0.5"]),
    (1, 0.5, math.nan, random.random, ["cap nan"]),
    (1, 0.5, 30.0, fixed(2.0), ["returned 2.0"]),
]


@pytest.mark.parametrize(("failures", "base", "cap", "rand", "fragments"), BAD_RESTARTS)
def test_restart_backoff_refuses(
    failures: object, base: float, cap: float, rand: Callable[[], float], fragments: list[str]
) -> None:
    with pytest.raises(ValueError) as caught:
        restart_backoff_seconds(failures, base=base, cap=cap, rand=rand)  # type: ignore[arg-type]
    for fragment in fragments:
        assert fragment in str(caught.value)
