-- The dashboard's job list (goodjob_mp.db.admin.list_jobs) pages in display order with a keyset
-- cursor: newest first by created_at, and unfinished jobs by scheduled_at. Without an index in
-- that order each page sorts the whole table (0.3-0.6 s at 1M rows; scripts/bench_dashboard.py).
-- Both are GoodJob's own definitions and names, so a database that a Rails GoodJob migrated
-- already has them and nothing is built twice. The id tie-break is an incremental sort on top.
-- Cost: one more entry per row version in each (scheduled_at's only while unfinished).
CREATE INDEX IF NOT EXISTS index_good_jobs_on_created_at
    ON good_jobs USING btree (created_at);
CREATE INDEX IF NOT EXISTS index_good_jobs_on_scheduled_at
    ON good_jobs USING btree (scheduled_at) WHERE (finished_at IS NULL);
