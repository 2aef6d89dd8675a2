"""bulk() on this process's own connection writes full chunks while the block runs, inside
one transaction: memory stays flat, and the block is still all-or-nothing."""

from __future__ import annotations

import gc
import tracemalloc

import pytest

import goodjob_mp as gj
from goodjob_mp.enqueue import BULK_CHUNK


@gj.job(queue="bulk")
def tiny(n: int) -> None:
    pass


def count(db) -> int:
    return db.execute("SELECT count(*) FROM good_jobs").fetchone()[0]


def _peak_bytes(n: int) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        with gj.bulk():
            for i in range(n):
                tiny.perform_later(i)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_bulk_memory_stays_flat_as_the_block_grows(db):
    """Only the handles stay (a few hundred bytes each); rows, their JSON and the COPY buffer
    go chunk by chunk. Kept until the block's end, each job cost about 1.25 kB."""
    _peak_bytes(BULK_CHUNK)  # warm-up: connection, prepared adapters
    small = _peak_bytes(5_000)
    large = _peak_bytes(50_000)
    per_extra_job = (large - small) / 45_000
    assert per_extra_job < 600, f"{per_extra_job:.0f} bytes per job"
    assert count(db) == 55_000 + BULK_CHUNK


def test_full_chunks_are_written_during_the_block_and_commit_at_its_end(db):
    with gj.bulk() as b:
        for i in range(2 * BULK_CHUNK + 5):
            tiny.perform_later(i)
        assert len(b.rows) == 5  # two chunks already sent
        assert count(db) == 0  # ... but not committed
    assert count(db) == 2 * BULK_CHUNK + 5
    assert len(b.jobs) == 2 * BULK_CHUNK + 5
    ids = {r[0] for r in db.execute("SELECT id FROM good_jobs")}
    assert ids == {h.id for h in b.jobs}


def test_an_error_after_chunks_were_written_writes_nothing(db):
    with pytest.raises(RuntimeError), gj.bulk():
        for i in range(BULK_CHUNK + 1):
            tiny.perform_later(i)
        raise RuntimeError("abort")
    assert count(db) == 0
    with gj.bulk():  # the connection went back to the pool usable
        tiny.perform_later(1)
    assert count(db) == 1


def test_enqueue_events_of_a_streamed_bulk_fire_after_the_commit(db):
    seen: list[int] = []
    unsubscribe = gj.subscribe("enqueue", lambda **payload: seen.append(count(db)))
    try:
        with gj.bulk() as b:
            for i in range(BULK_CHUNK + 3):
                tiny.perform_later(i)
            assert seen == []
    finally:
        unsubscribe()
    assert seen == [BULK_CHUNK + 3] * (BULK_CHUNK + 3)
    assert len(b.jobs) == BULK_CHUNK + 3
