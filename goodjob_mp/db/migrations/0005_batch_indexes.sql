-- Batches: every finished batch job asks "is any job of this batch still unfinished?" and every
-- finished callback job "is any callback of this batch unfinished?" (goodjob_mp.db.batches).
-- GoodJob's own partial indexes (names and definitions as in its install migration), so the
-- question is an index probe on a table of any size and a later full GoodJob set skips them.
CREATE INDEX IF NOT EXISTS index_good_jobs_on_batch_id
    ON good_jobs USING btree (batch_id) WHERE (batch_id IS NOT NULL);
CREATE INDEX IF NOT EXISTS index_good_jobs_on_batch_callback_id
    ON good_jobs USING btree (batch_callback_id) WHERE (batch_callback_id IS NOT NULL);
-- the batches page and `goodjob-supervisor batches`: newest first, keyset pages
CREATE INDEX IF NOT EXISTS index_good_job_batches_on_created_at_and_id
    ON good_job_batches USING btree (created_at DESC, id DESC);
-- ours: the unfinished jobs of batches only, so "is any job of this batch unfinished?" reads a
-- handful of entries whatever the backlog (the planner cannot mistake it for a scan of every
-- unfinished job, as it did with stale statistics: scripts/bench_batches.py).
CREATE INDEX IF NOT EXISTS index_good_jobs_on_batch_id_unfinished
    ON good_jobs USING btree (batch_id) WHERE (batch_id IS NOT NULL AND finished_at IS NULL);
