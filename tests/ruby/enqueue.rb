# frozen_string_literal: true

# Enqueue test jobs from Ruby, as a Rails app would:
#   ruby enqueue.rb CLASS QUEUE COUNT [FIRST_ARG] [SLEEP_SECONDS] [LABEL]
# Prints one active_job_id per line. Jobs go in with GoodJob::Bulk (one insert_all per 500),
# the way a Rails app enqueues many jobs at once.
require_relative "app"

klass_name, queue, count, first, sleep_seconds, label = ARGV
klass = Object.const_get(klass_name)
count = Integer(count || 1)
first = Integer(first || 0)
sleep_seconds = Float(sleep_seconds || 0)
options = { queue: queue }
options[:good_job_labels] = [label] if label && !label.empty?

(0...count).each_slice(500) do |slice|
  jobs = GoodJob::Bulk.enqueue do
    slice.each { |i| klass.set(**options).perform_later(first + i, sleep_seconds) }
  end
  jobs.each { |job| puts job.job_id }
end
