"""The adaptive claim size (pure) and the scheduled-job cache (in memory, thread-safe)."""

from __future__ import annotations

import random
import threading

import pytest

from goodjob_mp.worker.batching import BUFFER_HORIZON_SECONDS, claim_limit, claim_target, ewma
from goodjob_mp.worker.cache import ScheduledCache

# --- claim_target / claim_limit ---------------------------------------------------------------


@pytest.mark.parametrize(("max_threads", "busy"), [(5, 0), (5, 3), (1, 0), (20, 7)])
def test_nothing_measured_claims_one_per_idle_thread(max_threads, busy):
    assert claim_target(max_threads, busy, None, claim_buffer=400) == max_threads - busy
    assert claim_limit(max_threads, busy, 0, None, claim_buffer=400) == max_threads - busy


def test_nothing_measured_and_all_threads_busy_claims_nothing():
    assert claim_limit(5, 5, 0, None, claim_buffer=400) == 0


@pytest.mark.parametrize("avg", [1e-5, 1e-4, 1e-3, 0.005])
def test_short_jobs_claim_well_beyond_idle_threads(avg):
    target = claim_target(5, 0, avg, claim_buffer=400)
    assert target >= 10 * 5  # far more than the 5 idle threads
    assert target <= 400


@pytest.mark.parametrize("claim_buffer", [10, 50, 400, 1000])
@pytest.mark.parametrize("avg", [0.0, 1e-9, 1e-6, 1e-4])
def test_short_jobs_never_claim_above_claim_buffer(claim_buffer, avg):
    assert claim_target(5, 0, avg, claim_buffer) == claim_buffer
    assert claim_limit(5, 0, 0, avg, claim_buffer) == claim_buffer


def test_short_jobs_target_follows_the_horizon():
    # 4 threads, 10 ms jobs: 4 * 0.05 / 0.01 = 20 jobs start within the buffer horizon.
    assert BUFFER_HORIZON_SECONDS == 0.05
    assert claim_target(4, 0, 0.01, claim_buffer=400) == 20
    assert claim_target(4, 0, 0.01, claim_buffer=400, horizon=0.1) == 40


@pytest.mark.parametrize("avg", [0.5, 1.0, 30.0, 3600.0])
@pytest.mark.parametrize("busy", [0, 2, 5])
def test_long_jobs_claim_no_more_than_idle_threads(avg, busy):
    idle = 5 - busy
    assert claim_target(5, busy, avg, claim_buffer=400) == idle
    assert claim_limit(5, busy, 0, avg, claim_buffer=400) <= idle


def test_long_jobs_with_a_buffered_job_claim_only_what_is_left():
    # 3 idle threads, 2 jobs already waiting in the buffer: claim 1 more.
    assert claim_limit(5, 2, 2, 10.0, claim_buffer=400) == 1


def test_buffered_jobs_count_against_the_target():
    target = claim_target(5, 0, 1e-4, claim_buffer=400)
    assert claim_limit(5, 0, 100, 1e-4, claim_buffer=400) == target - 100
    assert claim_limit(5, 0, target, 1e-4, claim_buffer=400) == 0


@pytest.mark.parametrize("select_limit", [1, 7, 50])
def test_select_limit_caps_the_claim(select_limit):
    assert claim_limit(5, 0, 0, 1e-4, 400, select_limit) == select_limit
    assert claim_limit(5, 0, 0, None, 400, select_limit) == min(5, select_limit)


def test_select_limit_above_the_target_changes_nothing():
    assert claim_limit(5, 0, 0, None, 400, select_limit=1000) == 5
    assert claim_limit(5, 0, 0, 1e-4, 400, select_limit=1000) == 400


@pytest.mark.parametrize(
    ("max_threads", "busy", "buffered", "avg", "select_limit"),
    [
        (5, 9, 0, None, None),  # more busy than threads (counter raced ahead)
        (5, 5, 3, None, None),
        (5, 0, 10_000, 1e-4, None),  # buffer far over the target
        (5, 0, 10_000, 1e-4, 3),
        (5, 7, 2, 5.0, 1),
    ],
)
def test_claim_limit_is_never_negative(max_threads, busy, buffered, avg, select_limit):
    assert claim_limit(max_threads, busy, buffered, avg, 400, select_limit) == 0
    assert claim_target(max_threads, busy, avg, 400) >= 0


def test_claim_limit_never_negative_over_random_inputs():
    rng = random.Random(1234)
    for _ in range(5000):
        max_threads = rng.randint(1, 50)
        busy = rng.randint(0, 60)
        buffered = rng.randint(0, 1000)
        avg = rng.choice([None, 0.0, rng.uniform(0, 1e-3), rng.uniform(0, 100)])
        claim_buffer = rng.randint(1, 1000)
        select_limit = rng.choice([None, rng.randint(1, 500)])
        want = claim_limit(max_threads, busy, buffered, avg, claim_buffer, select_limit)
        idle = max(max_threads - busy, 0)
        assert want >= 0
        if select_limit is not None:
            assert want <= select_limit
        assert want <= max(idle, claim_buffer)


# --- ewma -------------------------------------------------------------------------------------


def test_ewma_first_sample_is_taken_as_is():
    assert ewma(None, 2.5) == 2.5


def test_ewma_moves_a_tenth_of_the_way_by_default():
    assert ewma(1.0, 2.0) == pytest.approx(1.1)
    assert ewma(1.0, 0.0) == pytest.approx(0.9)
    assert ewma(1.0, 3.0, weight=0.5) == pytest.approx(2.0)


def test_ewma_converges_to_a_steady_duration():
    avg = None
    for _ in range(200):
        avg = ewma(avg, 0.01)
    assert avg == pytest.approx(0.01)
    for _ in range(200):
        avg = ewma(avg, 2.0)
    assert avg == pytest.approx(2.0, rel=1e-6)


def test_ewma_switch_from_short_to_long_jobs_shrinks_the_claim():
    avg = None
    for _ in range(50):
        avg = ewma(avg, 0.0005)
    assert claim_target(5, 0, avg, 400) == 400
    for _ in range(100):
        avg = ewma(avg, 5.0)
    assert claim_target(5, 0, avg, 400) == 5


# --- ScheduledCache ---------------------------------------------------------------------------


def test_empty_cache():
    cache = ScheduledCache(10)
    assert len(cache) == 0
    assert cache.next_time() is None
    assert cache.pop_due(1e12) == 0


def test_next_time_is_the_earliest():
    cache = ScheduledCache(10)
    for when in (105.0, 101.0, 103.0):
        cache.add(when)
    assert len(cache) == 3
    assert cache.next_time() == 101.0


def test_pop_due_forgets_due_times_in_order_and_counts_them():
    cache = ScheduledCache(10)
    for when in (104.0, 101.0, 103.0, 102.0, 105.0):
        cache.add(when)
    assert cache.pop_due(100.0) == 0
    assert cache.pop_due(102.0) == 2  # 101 and 102 (inclusive)
    assert cache.next_time() == 103.0
    assert len(cache) == 3
    assert cache.pop_due(103.5) == 1
    assert cache.next_time() == 104.0
    assert cache.pop_due(1000.0) == 2
    assert cache.next_time() is None
    assert len(cache) == 0


def test_duplicate_times_are_each_kept():
    cache = ScheduledCache(10)
    cache.add(100.0)
    cache.add(100.0)
    assert len(cache) == 2
    assert cache.pop_due(100.0) == 2


def test_add_is_bounded_and_keeps_the_earliest():
    cache = ScheduledCache(3)
    for when in (5.0, 1.0, 4.0, 2.0, 3.0):
        cache.add(when)
    assert len(cache) == 3
    popped = []
    while cache.next_time() is not None:
        popped.append(cache.next_time())
        cache.pop_due(cache.next_time())
    assert popped == [1.0, 2.0, 3.0]


def test_full_cache_ignores_a_later_time():
    cache = ScheduledCache(2)
    cache.add(1.0)
    cache.add(2.0)
    cache.add(9.0)
    cache.add(2.0)  # equal to the latest: not earlier, so not kept either
    assert len(cache) == 2
    assert cache.pop_due(100.0) == 2


def test_full_cache_replaces_its_latest_with_an_earlier_time():
    cache = ScheduledCache(2)
    cache.add(5.0)
    cache.add(9.0)
    cache.add(0.5)
    assert len(cache) == 2
    assert cache.next_time() == 0.5
    assert cache.pop_due(8.0) == 2  # 0.5 and 5.0; 9.0 was dropped
    assert len(cache) == 0


@pytest.mark.parametrize("max_cache", [0, -1])
def test_disabled_cache_holds_nothing(max_cache):
    cache = ScheduledCache(max_cache)
    cache.add(1.0)
    cache.replace([1.0, 2.0])
    assert len(cache) == 0
    assert cache.next_time() is None
    assert cache.pop_due(10.0) == 0


def test_replace_sorts_truncates_and_keeps_what_the_listener_added():
    # A NOTIFY that arrived while the database load ran must survive the load.
    cache = ScheduledCache(3)
    cache.add(15.0)
    cache.replace([50.0, 10.0, 40.0, 20.0, 30.0])
    assert len(cache) == 3
    assert cache.next_time() == 10.0
    assert cache.pop_due(25.0) == 3  # 10, 15 and 20
    assert cache.next_time() is None  # 30, 40 and 50 were beyond max_cache
    cache.replace([30.0, 30.0])
    assert len(cache) == 1  # one wake-up per distinct time


def test_add_after_replace_keeps_heap_order():
    cache = ScheduledCache(10)
    cache.replace([30.0, 10.0, 20.0])
    cache.add(15.0)
    cache.add(5.0)
    order = []
    while cache.next_time() is not None:
        order.append(cache.next_time())
        cache.pop_due(cache.next_time())
    assert order == [5.0, 10.0, 15.0, 20.0, 30.0]


def test_random_adds_match_a_sorted_model():
    rng = random.Random(99)
    cache = ScheduledCache(50)
    model: list[float] = []
    for _ in range(500):
        when = rng.uniform(0, 1000)
        cache.add(when)
        model = sorted([*model, when])[:50]
    assert len(cache) == 50
    assert cache.next_time() == model[0]
    cut = model[25]
    assert cache.pop_due(cut) == 26
    assert cache.next_time() == model[26]


def test_concurrent_adds_and_pops_stay_bounded_and_consistent():
    cache = ScheduledCache(100)
    added = threading.Barrier(5)
    sizes: list[int] = []

    def adder(seed: int) -> None:
        rng = random.Random(seed)
        added.wait()
        for _ in range(2000):
            cache.add(rng.uniform(0, 1000))

    def popper() -> None:
        added.wait()
        for cut in range(0, 1000, 5):
            cache.pop_due(float(cut))
            sizes.append(len(cache))

    threads = [threading.Thread(target=adder, args=(i,)) for i in range(4)]
    threads.append(threading.Thread(target=popper))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
        assert not thread.is_alive()
    assert max(sizes) <= 100
    assert len(cache) <= 100
    remaining = []
    while cache.next_time() is not None:
        remaining.append(cache.next_time())
        cache.pop_due(cache.next_time())
    assert remaining == sorted(remaining)
