-- GoodJob v4.19.2's full index set (opt-in: `goodjob-supervisor migrate --goodjob-indexes`).
-- For a database that a Rails GoodJob also works on: its queries expect these. Each one
-- slows every enqueue, claim and finish, so goodjob_mp alone does not create them.
CREATE INDEX IF NOT EXISTS index_good_job_executions_on_active_job_id_and_created_at ON good_job_executions USING btree (active_job_id, created_at);
CREATE INDEX IF NOT EXISTS index_good_job_executions_on_process_id_and_created_at ON good_job_executions USING btree (process_id, created_at);
CREATE INDEX IF NOT EXISTS index_good_job_jobs_for_candidate_lookup ON good_jobs USING btree (priority, created_at) WHERE (finished_at IS NULL);
CREATE UNIQUE INDEX IF NOT EXISTS index_good_job_settings_on_key ON good_job_settings USING btree (key);
CREATE INDEX IF NOT EXISTS index_good_jobs_for_candidate_dequeue_unlocked ON good_jobs USING btree (priority, scheduled_at, id) WHERE ((finished_at IS NULL) AND (locked_by_id IS NULL));
CREATE INDEX IF NOT EXISTS index_good_jobs_jobs_on_finished_at_only ON good_jobs USING btree (finished_at) WHERE (finished_at IS NOT NULL);
CREATE INDEX IF NOT EXISTS index_good_jobs_jobs_on_priority_created_at_when_unfinished ON good_jobs USING btree (priority DESC NULLS LAST, created_at) WHERE (finished_at IS NULL);
CREATE INDEX IF NOT EXISTS index_good_jobs_on_active_job_id_and_created_at ON good_jobs USING btree (active_job_id, created_at);
CREATE INDEX IF NOT EXISTS index_good_jobs_on_batch_callback_id ON good_jobs USING btree (batch_callback_id) WHERE (batch_callback_id IS NOT NULL);
CREATE INDEX IF NOT EXISTS index_good_jobs_on_batch_id ON good_jobs USING btree (batch_id) WHERE (batch_id IS NOT NULL);
CREATE INDEX IF NOT EXISTS index_good_jobs_on_concurrency_key_and_created_at ON good_jobs USING btree (concurrency_key, created_at);
CREATE INDEX IF NOT EXISTS index_good_jobs_on_concurrency_key_when_unfinished ON good_jobs USING btree (concurrency_key) WHERE (finished_at IS NULL);
CREATE INDEX IF NOT EXISTS index_good_jobs_on_created_at ON good_jobs USING btree (created_at);
CREATE INDEX IF NOT EXISTS index_good_jobs_on_cron_key_and_created_at_cond ON good_jobs USING btree (cron_key, created_at) WHERE (cron_key IS NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS index_good_jobs_on_cron_key_and_cron_at_cond ON good_jobs USING btree (cron_key, cron_at) WHERE (cron_key IS NOT NULL);
CREATE INDEX IF NOT EXISTS index_good_jobs_on_discarded ON good_jobs USING btree (finished_at DESC) WHERE ((finished_at IS NOT NULL) AND (error IS NOT NULL));
CREATE INDEX IF NOT EXISTS index_good_jobs_on_job_class ON good_jobs USING btree (job_class);
CREATE INDEX IF NOT EXISTS index_good_jobs_on_labels ON good_jobs USING gin (labels) WHERE (labels IS NOT NULL);
CREATE INDEX IF NOT EXISTS index_good_jobs_on_locked_by_id ON good_jobs USING btree (locked_by_id) WHERE (locked_by_id IS NOT NULL);
CREATE INDEX IF NOT EXISTS index_good_jobs_on_priority_scheduled_at_unfinished ON good_jobs USING btree (priority, scheduled_at, id) WHERE (finished_at IS NULL);
CREATE INDEX IF NOT EXISTS index_good_jobs_on_priority_scheduled_at_unfinished_unlocked ON good_jobs USING btree (priority, scheduled_at) WHERE ((finished_at IS NULL) AND (locked_by_id IS NULL));
CREATE INDEX IF NOT EXISTS index_good_jobs_on_queue_name ON good_jobs USING btree (queue_name);
CREATE INDEX IF NOT EXISTS index_good_jobs_on_queue_name_and_scheduled_at ON good_jobs USING btree (queue_name, scheduled_at) WHERE (finished_at IS NULL);
CREATE INDEX IF NOT EXISTS index_good_jobs_on_queue_name_priority_scheduled_at_unfinished ON good_jobs USING btree (queue_name, scheduled_at, id) WHERE (finished_at IS NULL);
CREATE INDEX IF NOT EXISTS index_good_jobs_on_scheduled_at ON good_jobs USING btree (scheduled_at) WHERE (finished_at IS NULL);
CREATE INDEX IF NOT EXISTS index_good_jobs_on_scheduled_at_and_queue_name ON good_jobs USING btree (scheduled_at, queue_name);
CREATE INDEX IF NOT EXISTS index_good_jobs_on_unfinished_or_errored ON good_jobs USING btree (id) WHERE ((finished_at IS NULL) OR (error IS NOT NULL));
