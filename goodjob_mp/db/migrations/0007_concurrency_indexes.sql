-- Concurrency checks (docs/concurrency.md) count the jobs of one concurrency_key. Without an
-- index each check filters the whole table, and checks of one key are serialised, so a key with
-- a backlog drained at ~60 jobs/s (scripts/bench.py --concurrency). Each index is partial on
-- concurrency_key IS NOT NULL: a job without a key (most jobs) adds no entry to any of them,
-- only a predicate test per row version. GoodJob's own indexes on the column
-- (index_good_jobs_on_concurrency_key_when_unfinished, ..._and_created_at) index every row,
-- NULL keys included; they stay in goodjob_indexes.sql, for `migrate --goodjob-indexes`.
--
-- The perform check: the admitted jobs of the key (db/concurrency_store.py: performed, not
-- finished, and performed_at past locked_at, or no locked_at). Holds only the rows running now,
-- so it stays small however deep the key's backlog is; a claimed row not yet checked, and the
-- same row once its attempt has ended, add no entry.
CREATE INDEX IF NOT EXISTS index_good_jobs_on_concurrency_key_running
    ON good_jobs USING btree (concurrency_key)
    WHERE (finished_at IS NULL AND performed_at IS NOT NULL AND concurrency_key IS NOT NULL
           AND (locked_at IS NULL OR performed_at > locked_at));
-- The enqueue limits: unfinished jobs of the key.
CREATE INDEX IF NOT EXISTS index_good_jobs_on_concurrency_key_unfinished
    ON good_jobs USING btree (concurrency_key)
    WHERE (finished_at IS NULL AND concurrency_key IS NOT NULL);
-- The enqueue throttle (jobs of the key created in the period) and the perform throttle (the
-- key's jobs, whose executions it counts).
CREATE INDEX IF NOT EXISTS index_good_jobs_on_concurrency_key_created_at
    ON good_jobs USING btree (concurrency_key, created_at)
    WHERE (concurrency_key IS NOT NULL);
