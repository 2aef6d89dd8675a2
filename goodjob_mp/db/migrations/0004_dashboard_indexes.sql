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
-- The running list (GoodJob's "running": performed and not finished), newest first. Ours, not
-- GoodJob's: it holds only jobs in flight, so it stays small; without it the page filters every
-- unfinished row, which grows with the backlog (47 ms at 70k unfinished rows, 1M jobs).
CREATE INDEX IF NOT EXISTS index_good_jobs_on_performed_at_running
    ON good_jobs USING btree (performed_at)
    WHERE (finished_at IS NULL AND performed_at IS NOT NULL);
-- The performance page aggregates the last minutes of good_job_executions. Executions are
-- appended in the order they finish, so a BRIN index (a few kB per million rows, next to no
-- cost per insert) skips all but the newest pages: 179 ms -> 8 ms for the last hour of 1M rows.
CREATE INDEX IF NOT EXISTS index_good_job_executions_on_finished_at_brin
    ON good_job_executions USING brin (finished_at) WITH (autosummarize = on);
