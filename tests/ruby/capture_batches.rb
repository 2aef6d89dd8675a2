# frozen_string_literal: true

# Capture what GoodJob writes for a batch with a discarded job and all three callbacks:
#   ruby capture_batches.rb > ../fixtures/goodjob-reference/good_job_batches_discard.jsonl
# Deletes every batch and job first. Enqueues GoodJob::Batch.enqueue(on_finish:, on_success:,
# on_discard: "BatchEventJob", ...) { BatchOkJob(1); BatchGoneJob(2) }, performs everything with
# GoodJob.perform_inline, then prints one JSON line per row: {"table", "row"} for the batch, its
# jobs and its callback jobs (row_to_json), in created_at order.
require_relative "app"
require "json"

class BatchGoneError < StandardError; end

class BatchOkJob < ActiveJob::Base
  def perform(n); end
end

class BatchGoneJob < ActiveJob::Base
  discard_on BatchGoneError

  def perform(n)
    raise BatchGoneError, "item #{n} is gone"
  end
end

class BatchEventJob < ActiveJob::Base
  def perform(batch, params); end
end

conn = ActiveRecord::Base.connection
conn.execute("DELETE FROM good_job_executions; DELETE FROM good_jobs; DELETE FROM good_job_batches")
batch = GoodJob::Batch.enqueue(on_finish: "BatchEventJob", on_success: "BatchEventJob",
                               on_discard: "BatchEventJob", callback_queue_name: "callbacks",
                               description: "discarding batch", user_id: 7) do
  BatchOkJob.set(queue: "work").perform_later(1)
  BatchGoneJob.set(queue: "work").perform_later(2)
end
GoodJob.perform_inline
queries = [
  ["good_job_batches", "SELECT row_to_json(t)::text FROM good_job_batches t WHERE id = $1"],
  ["good_jobs", "SELECT row_to_json(t)::text FROM good_jobs t WHERE batch_id = $1 OR batch_callback_id = $1 ORDER BY created_at, batch_callback_id NULLS FIRST"],
]
queries.each do |table, sql|
  conn.exec_query(sql, "capture", [batch.id]).rows.each do |(json)|
    puts JSON.generate("table" => table, "row" => JSON.parse(json))
  end
end
