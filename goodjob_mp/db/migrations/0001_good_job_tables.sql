-- The five GoodJob v4 tables, column for column (names, types, nullability, defaults), as
-- GoodJob's own install migration creates them. IF NOT EXISTS + ADD COLUMN IF NOT EXISTS adopt
-- tables that a Rails GoodJob already created (or an older GoodJob that lacks newer columns).

CREATE TABLE IF NOT EXISTS good_jobs (
    id uuid DEFAULT gen_random_uuid() NOT NULL PRIMARY KEY,
    queue_name text,
    priority integer,
    serialized_params jsonb,
    scheduled_at timestamp without time zone,
    performed_at timestamp without time zone,
    finished_at timestamp without time zone,
    error text,
    created_at timestamp(6) without time zone NOT NULL,
    updated_at timestamp(6) without time zone NOT NULL
);
ALTER TABLE good_jobs
    ADD COLUMN IF NOT EXISTS active_job_id uuid,
    ADD COLUMN IF NOT EXISTS concurrency_key text,
    ADD COLUMN IF NOT EXISTS cron_key text,
    ADD COLUMN IF NOT EXISTS retried_good_job_id uuid,
    ADD COLUMN IF NOT EXISTS cron_at timestamp without time zone,
    ADD COLUMN IF NOT EXISTS batch_id uuid,
    ADD COLUMN IF NOT EXISTS batch_callback_id uuid,
    ADD COLUMN IF NOT EXISTS is_discrete boolean,
    ADD COLUMN IF NOT EXISTS executions_count integer,
    ADD COLUMN IF NOT EXISTS job_class text,
    ADD COLUMN IF NOT EXISTS error_event smallint,
    ADD COLUMN IF NOT EXISTS labels text[],
    ADD COLUMN IF NOT EXISTS locked_by_id uuid,
    ADD COLUMN IF NOT EXISTS locked_at timestamp without time zone,
    ADD COLUMN IF NOT EXISTS lock_type smallint;

CREATE TABLE IF NOT EXISTS good_job_executions (
    id uuid DEFAULT gen_random_uuid() NOT NULL PRIMARY KEY,
    created_at timestamp(6) without time zone NOT NULL,
    updated_at timestamp(6) without time zone NOT NULL,
    active_job_id uuid NOT NULL,
    job_class text,
    queue_name text,
    serialized_params jsonb,
    scheduled_at timestamp without time zone,
    finished_at timestamp without time zone,
    error text
);
ALTER TABLE good_job_executions
    ADD COLUMN IF NOT EXISTS error_event smallint,
    ADD COLUMN IF NOT EXISTS error_backtrace text[],
    ADD COLUMN IF NOT EXISTS process_id uuid,
    ADD COLUMN IF NOT EXISTS duration interval;

CREATE TABLE IF NOT EXISTS good_job_processes (
    id uuid DEFAULT gen_random_uuid() NOT NULL PRIMARY KEY,
    created_at timestamp(6) without time zone NOT NULL,
    updated_at timestamp(6) without time zone NOT NULL,
    state jsonb
);
ALTER TABLE good_job_processes ADD COLUMN IF NOT EXISTS lock_type smallint;

CREATE TABLE IF NOT EXISTS good_job_settings (
    id uuid DEFAULT gen_random_uuid() NOT NULL PRIMARY KEY,
    created_at timestamp(6) without time zone NOT NULL,
    updated_at timestamp(6) without time zone NOT NULL,
    key text,
    value jsonb
);

CREATE TABLE IF NOT EXISTS good_job_batches (
    id uuid DEFAULT gen_random_uuid() NOT NULL PRIMARY KEY,
    created_at timestamp(6) without time zone NOT NULL,
    updated_at timestamp(6) without time zone NOT NULL,
    description text,
    serialized_properties jsonb,
    on_finish text,
    on_success text,
    on_discard text,
    callback_queue_name text,
    callback_priority integer,
    enqueued_at timestamp without time zone,
    discarded_at timestamp without time zone,
    finished_at timestamp without time zone,
    jobs_finished_at timestamp without time zone
);

-- GoodJob's unique indexes: they are guarantees, not speed-ups.
CREATE UNIQUE INDEX IF NOT EXISTS index_good_job_settings_on_key
    ON good_job_settings USING btree (key);
CREATE UNIQUE INDEX IF NOT EXISTS index_good_jobs_on_cron_key_and_cron_at_cond
    ON good_jobs USING btree (cron_key, cron_at) WHERE (cron_key IS NOT NULL);

-- The lean secondary set: only what our own queries use (every index costs every enqueue,
-- claim and finish). Names and definitions are GoodJob's, so a later full set skips them.
-- claim: runnable jobs in priority then schedule order
CREATE INDEX IF NOT EXISTS index_good_jobs_for_candidate_dequeue_unlocked
    ON good_jobs USING btree (priority, scheduled_at, id)
    WHERE ((finished_at IS NULL) AND (locked_by_id IS NULL));
-- hand back the jobs of a dead or stopping process
CREATE INDEX IF NOT EXISTS index_good_jobs_on_locked_by_id
    ON good_jobs USING btree (locked_by_id) WHERE (locked_by_id IS NOT NULL);
-- cleanup of preserved records in bounded batches
CREATE INDEX IF NOT EXISTS index_good_jobs_jobs_on_finished_at_only
    ON good_jobs USING btree (finished_at) WHERE (finished_at IS NOT NULL);
-- a job's executions (retries, interrupts, cleanup)
CREATE INDEX IF NOT EXISTS index_good_job_executions_on_active_job_id_and_created_at
    ON good_job_executions USING btree (active_job_id, created_at);
