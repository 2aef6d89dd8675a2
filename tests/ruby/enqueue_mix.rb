# frozen_string_literal: true

# Enqueue several kinds of test jobs from Ruby in one boot, as a Rails app would:
#   ruby enqueue_mix.rb CLASS:QUEUE:COUNT[:FIRST_ARG[:SLEEP_SECONDS[:LABEL]]] ...
# Prints "CLASS active_job_id" per job. Each spec goes in with GoodJob::Bulk (one insert_all per
# 500 jobs).
require_relative "app"

ARGV.each do |spec|
  klass_name, queue, count, first, sleep_seconds, label = spec.split(":", 6)
  klass = Object.const_get(klass_name)
  first = Integer(first.to_s.empty? ? 0 : first)
  sleep_seconds = Float(sleep_seconds.to_s.empty? ? 0 : sleep_seconds)
  options = { queue: queue }
  options[:good_job_labels] = [label] if label && !label.empty?
  (0...Integer(count)).each_slice(500) do |slice|
    jobs = GoodJob::Bulk.enqueue do
      slice.each { |i| klass.set(**options).perform_later(first + i, sleep_seconds) }
    end
    jobs.each { |job| puts "#{klass_name} #{job.job_id}" }
  end
end
