"""The enqueue hot path's own stand-ins for uuid.uuid4 and datetime.now, written for speed (both
run per job): the same types as what they replace; job ids are version 7 UUIDs."""

from __future__ import annotations

import datetime as dt
import pickle
import time
import uuid

from goodjob_mp.db import job_store


def test_new_job_ids_are_version_7_uuids_that_grow_with_time():
    before_ms = time.time_ns() // 1_000_000
    ids = [job_store.new_job_id() for _ in range(2_000)]
    after_ms = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    for job_id in ids[:200]:
        assert type(job_id) is uuid.UUID
        assert job_id.version == 7 and job_id.variant == uuid.RFC_4122
        assert uuid.UUID(str(job_id)) == job_id and hash(uuid.UUID(str(job_id))) == hash(job_id)
        assert pickle.loads(pickle.dumps(job_id)) == job_id
    # The first 48 bits are the Unix time in milliseconds, so ids sort by the time they were made.
    stamps = [job_id.int >> 80 for job_id in ids]
    assert before_ms <= stamps[0] and stamps[-1] <= after_ms
    assert stamps == sorted(stamps)
    time.sleep(0.002)
    assert job_store.new_job_id() > max(ids)
    # The 74 bits below the time but for the version and the variant vary, as uuid4's do.
    varied = 0
    for job_id in ids:
        varied |= (job_id.int ^ ids[0].int) & ((1 << 80) - 1)
    assert bin(varied).count("1") == 74


def test_the_constructor_free_id_is_picked_here_and_the_fallback_makes_the_same_kind():
    # On CPython the probe passes: a broken probe would silently fall back to the slower path.
    assert job_store.new_job_id is job_store._fast_uuid7
    for make in (job_store._fast_uuid7, job_store._slow_uuid7):
        job_id = make()
        assert type(job_id) is uuid.UUID and job_id.version == 7
        assert job_id.variant == uuid.RFC_4122
        assert uuid.UUID(str(job_id)) == job_id and hash(uuid.UUID(str(job_id))) == hash(job_id)
        assert abs((job_id.int >> 80) - time.time_ns() // 1_000_000) < 60_000


def test_utcnow_is_naive_utc_now():
    before = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    now = job_store.utcnow()
    after = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    assert now.tzinfo is None
    assert before <= now <= after
