"""How many jobs to claim next: the adaptive batch-size policy (pure).

Short jobs are claimed well beyond the free threads, into a small bounded local buffer, because
one claim statement per few hundred jobs is what makes the throughput possible. Long jobs are
claimed no faster than threads free up, so one process never hoards work that another process
could start now.
"""

from __future__ import annotations

# Jobs in the local buffer should all start within this many seconds.
BUFFER_HORIZON_SECONDS = 0.05


def claim_target(
    max_threads: int,
    busy: int,
    avg_duration: float | None,
    claim_buffer: int,
    horizon: float = BUFFER_HORIZON_SECONDS,
) -> int:
    """How many unstarted jobs this process should hold (buffer included)."""
    idle = max(max_threads - busy, 0)
    if avg_duration is None:
        return idle  # nothing measured yet: one job per idle thread
    startable = int(max_threads * horizon / max(avg_duration, 1e-6))
    return max(idle, min(claim_buffer, startable))


def claim_limit(
    max_threads: int,
    busy: int,
    buffered: int,
    avg_duration: float | None,
    claim_buffer: int,
    select_limit: int | None = None,
) -> int:
    """How many jobs the next claim statement should ask for (0: do not claim now)."""
    want = claim_target(max_threads, busy, avg_duration, claim_buffer) - buffered
    if select_limit is not None:
        want = min(want, select_limit)
    return max(want, 0)


def ewma(previous: float | None, sample: float, weight: float = 0.1) -> float:
    """Exponentially weighted moving average of job durations."""
    return sample if previous is None else previous + weight * (sample - previous)
