# frozen_string_literal: true

# Capture what GoodJob writes for concurrency controls, as JSON lines:
#   ruby capture_concurrency.rb > ../fixtures/goodjob-reference/good_jobs_concurrency.jsonl
# Each line: a step name and what it left in the tables (row_to_json of good_jobs and
# good_job_executions rows), or what perform_later returned. Truncates both tables first.
require_relative "app"
require "json"

class RubyPerformLimitedJob < ActiveJob::Base
  include GoodJob::ActiveJobExtensions::Concurrency
  good_job_control_concurrency_with(perform_limit: 1, key: -> { "acct-#{arguments.first}" })

  def perform(_account_id); end
end

class RubyEnqueueLimitedJob < ActiveJob::Base
  include GoodJob::ActiveJobExtensions::Concurrency
  good_job_control_concurrency_with(enqueue_limit: 1, key: "only-one")

  def perform; end
end

conn = ActiveRecord::Base.connection
conn.execute("TRUNCATE good_jobs, good_job_executions")

def rows(conn, table, where)
  conn.select_values("SELECT row_to_json(t)::text FROM #{table} t WHERE #{where} ORDER BY created_at")
      .map { |text| JSON.parse(text) }
end

def emit(step, **data)
  puts JSON.generate({ "step" => step }.merge(data.transform_keys(&:to_s)))
end

# 1. A job with a key: the key goes into the concurrency_key column.
running = RubyPerformLimitedJob.perform_later(7)
emit("enqueue_with_key", jobs: rows(conn, "good_jobs", "active_job_id = '#{running.job_id}'"))

# 2. enqueue_limit: 1. The second perform_later is refused: it returns false, writes nothing.
first = RubyEnqueueLimitedJob.perform_later
second = RubyEnqueueLimitedJob.perform_later
emit("enqueue_over_limit", first_enqueued: first != false, second_returned: second,
                           rows: conn.select_value("SELECT count(*) FROM good_jobs WHERE concurrency_key = 'only-one'").to_i)

# 3. perform_limit: 1 with another job of the key running (performed earlier, not finished; kept
#    out of the queue by a future scheduled_at). GoodJob performs the second one: refused, retried.
conn.execute(<<~SQL)
  UPDATE good_jobs SET performed_at = now() at time zone 'utc' - interval '1 minute',
                       scheduled_at = now() at time zone 'utc' + interval '1 hour'
  WHERE active_job_id = '#{running.job_id}'
SQL
conn.execute("DELETE FROM good_jobs WHERE concurrency_key = 'only-one'")
refused = RubyPerformLimitedJob.perform_later(7)
GoodJob.perform_inline
emit("perform_over_limit",
     jobs: rows(conn, "good_jobs", "active_job_id = '#{refused.job_id}'"),
     executions: rows(conn, "good_job_executions", "active_job_id = '#{refused.job_id}'"))
