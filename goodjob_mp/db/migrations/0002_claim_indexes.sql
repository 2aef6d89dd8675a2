-- Claims by index behind any backlog (issue 15.4). The 0001 index serves '*' in run order; these
-- two serve the other claim shapes: a pool naming its queues ('mail', '+high,low') reads only
-- those queues' runnable rows, and the known-classes condition every default claim carries reads
-- only rows of classes this process can run, so a large backlog on another queue, or of another
-- app's classes (a Rails GoodJob sharing the database), is never walked. Both are partial: rows
-- leave them when claimed or finished, so they stay as small as the runnable set.
CREATE INDEX IF NOT EXISTS index_good_jobs_on_queue_name_for_dequeue_unlocked
    ON good_jobs USING btree (queue_name, priority, scheduled_at)
    WHERE ((finished_at IS NULL) AND (locked_by_id IS NULL));
CREATE INDEX IF NOT EXISTS index_good_jobs_on_job_class_for_dequeue_unlocked
    ON good_jobs USING btree (job_class, priority, scheduled_at)
    WHERE ((finished_at IS NULL) AND (locked_by_id IS NULL));
