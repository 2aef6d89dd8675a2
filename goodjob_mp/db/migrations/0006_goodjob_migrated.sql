-- GoodJob's last v4 install index (its update migration 14). GoodJob.migrated? (what a Rails
-- GoodJob sharing this database checks at boot, and what its dashboard warns about) is true only
-- when it exists, beside index_good_jobs_for_candidate_dequeue_unlocked (0001). Its definition and
-- name are GoodJob's, so a database that GoodJob migrated already has it and nothing is built
-- twice. Cost: one entry per row version while the job is unfinished or failed; measured in
-- docs/architecture.md ("Schema and GoodJob").
CREATE INDEX IF NOT EXISTS index_good_jobs_on_unfinished_or_errored
    ON good_jobs USING btree (id) WHERE ((finished_at IS NULL) OR (error IS NOT NULL));
