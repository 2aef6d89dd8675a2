"""The enqueue hot path's own stand-ins for uuid.uuid4 and datetime.now: same values, same
types, as what they replace (both run per job, so they are written for speed)."""

from __future__ import annotations

import datetime as dt
import pickle
import uuid

from goodjob_mp.db import job_store


def test_new_job_ids_are_random_version_4_uuids_like_uuid4s():
    ids = [job_store.new_job_id() for _ in range(2_000)]
    assert len(set(ids)) == len(ids)
    for job_id in ids[:200]:
        assert type(job_id) is uuid.UUID
        assert job_id.version == 4 and job_id.variant == uuid.RFC_4122
        assert uuid.UUID(str(job_id)) == job_id and hash(uuid.UUID(str(job_id))) == hash(job_id)
        assert pickle.loads(pickle.dumps(job_id)) == job_id
    # Every bit but the six fixed ones varies across ids, as uuid4's.
    varied = 0
    for job_id in ids:
        varied |= job_id.int ^ ids[0].int
    assert bin(varied).count("1") == 122


def test_utcnow_is_naive_utc_now():
    before = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    now = job_store.utcnow()
    after = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    assert now.tzinfo is None
    assert before <= now <= after
