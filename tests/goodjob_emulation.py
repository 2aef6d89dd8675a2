"""What a Rails GoodJob 4.19 does to ``good_job_processes``, for tests that share a database with
it: its advisory lock key and its ``GoodJob::Process.cleanup`` (app/models/good_job/process.rb,
the ``inactive`` scope and the AdvisoryLockable pg_locks join, transcribed to SQL)."""

from __future__ import annotations

import hashlib
import uuid


def goodjob_key(table: str, record_id: uuid.UUID) -> int:
    """GoodJob::AdvisoryLockable#lockable_key as the bigint pg_try_advisory_lock receives."""
    value = int(hashlib.md5(f"{table}-{record_id}".encode()).hexdigest()[:16], 16)
    return value - (1 << 64) if value >= 1 << 63 else value


_KEY = "('x' || substr(md5('good_job_processes' || '-' || good_job_processes.id::text), 1, 16))"

# Process.cleanup: every inactive row (advisory and unlocked, or lock-less and 5 minutes old) has
# its jobs unlocked and is deleted. Returns the deleted rows' ids and state pids.
GOODJOB_CLEANUP = f"""
WITH inactive AS (
    SELECT good_job_processes.id FROM good_job_processes
    LEFT JOIN pg_locks ON pg_locks.locktype = 'advisory' AND pg_locks.objsubid = 1
        AND pg_locks.classid = substring(({_KEY})::bit(64) from 1 for 32)::bit(32)::int
        AND pg_locks.objid = substring(({_KEY})::bit(64) from 33 for 32)::bit(32)::int
    WHERE (good_job_processes.lock_type = 0 AND pg_locks.locktype IS NULL)
       OR (good_job_processes.lock_type IS NULL
           AND good_job_processes.updated_at < (now() AT TIME ZONE 'UTC') - interval '5 minutes')
), unlocked AS (
    UPDATE good_jobs SET locked_by_id = NULL, locked_at = NULL
    WHERE locked_by_id IN (SELECT id FROM inactive)
)
DELETE FROM good_job_processes p USING inactive WHERE p.id = inactive.id
RETURNING p.id, (p.state->>'pid')::int
"""
