# frozen_string_literal: true

# Batches across the two sides (tests/test_batches.py):
#   ruby batches.rb read BATCH_ID        prints a Python-made batch as GoodJob::Batch.find sees it
#   ruby batches.rb create               makes a batch as a Rails app would; prints its id
#   ruby batches.rb callback_args JOB_ID prints how Active Job reads a callback job's arguments
require_relative "app"
require "json"

class BatchItemJob < ActiveJob::Base
  def perform(n); end
end

class BatchCallbackJob < ActiveJob::Base
  def perform(batch, params); end
end

command, arg = ARGV
case command
when "read"
  batch = GoodJob::Batch.find(arg)
  puts JSON.generate(
    "id" => batch.id, "description" => batch.description, "properties" => batch.properties,
    "user_id" => batch.properties[:user_id], "on_finish" => batch.on_finish,
    "on_success" => batch.on_success, "on_discard" => batch.on_discard,
    "callback_queue_name" => batch.callback_queue_name, "callback_priority" => batch.callback_priority,
    "enqueued" => batch.enqueued?.present?, "finished" => batch.finished?.present?,
    "succeeded" => batch.succeeded?, "discarded" => batch.discarded?.present?,
    "jobs" => batch._record.jobs.count, "callback_jobs" => batch._record.callback_jobs.count
  )
when "create"
  batch = GoodJob::Batch.enqueue(on_finish: "BatchCallbackJob", callback_queue_name: "work",
                                 callback_priority: 1, description: "from rails", user_id: 42) do
    BatchItemJob.set(queue: "rails-only").perform_later(1)
    BatchItemJob.set(queue: "rails-only").perform_later(2)
  end
  puts batch.id
when "callback_args"
  job = GoodJob::Job.find(arg)
  batch, params = job.active_job.arguments
  puts JSON.generate(
    "batch_class" => batch.class.name, "batch_id" => batch.id,
    "params" => params.transform_keys(&:to_s).transform_values { |v| [v.class.name, v.to_s] },
    "batch_callback_id" => job.batch_callback_id
  )
else
  abort "usage: ruby batches.rb read ID | create | callback_args JOB_ID"
end
