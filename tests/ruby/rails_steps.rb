# frozen_string_literal: true

# Several Rails-console steps in one boot (a Rails boot costs seconds on a busy machine):
#   ruby rails_steps.rb STEP ...
# Steps run in order; each prints one JSON line:
#   pause:TYPE:NAME / unpause:TYPE:NAME   GoodJob::Setting.pause / unpause (TYPE queue, job_class
#                                         or label)
#   enqueue:CLASS:QUEUE:COUNT[:FIRST_ARG[:SLEEP_SECONDS[:LABEL]]]
#                                         COUNT jobs with GoodJob::Bulk (one insert_all per 500),
#                                         arguments FIRST_ARG + i and SLEEP_SECONDS; prints their ids
#   perform:QUEUE                         GoodJob.perform_inline(QUEUE, limit: 1): one due job
#   cleanup                               GoodJob's sweep of dead process rows, as a capsule runs it
#                                         every ~30 s: prints the ids it judged inactive, then runs
#                                         GoodJob::Process.cleanup
require_relative "app"
require "json"

def enqueue(klass_name, queue, count, first, sleep_seconds, label)
  klass = Object.const_get(klass_name)
  first = Integer(first.to_s.empty? ? 0 : first)
  sleep_seconds = Float(sleep_seconds.to_s.empty? ? 0 : sleep_seconds)
  options = { queue: queue }
  options[:good_job_labels] = [label] if label && !label.empty?
  (0...Integer(count)).each_slice(500).flat_map do |slice|
    GoodJob::Bulk.enqueue do
      slice.each { |i| klass.set(**options).perform_later(first + i, sleep_seconds) }
    end.map(&:job_id)
  end
end

ARGV.each do |step|
  name, *args = step.split(":", 7)
  out = case name
        when "pause", "unpause"
          type, value = args
          GoodJob::Setting.public_send(name, type.to_sym => value)
          { "paused" => GoodJob::Setting.paused }
        when "enqueue"
          { "ids" => enqueue(*args.fill(nil, args.size...6)) }
        when "perform"
          { "performed" => GoodJob.perform_inline(args.first, limit: 1) && true }
        when "cleanup"
          inactive = GoodJob::Process.inactive.pluck(:id)
          GoodJob::Process.cleanup
          { "inactive" => inactive }
        else
          abort "unknown step #{step.inspect}: pause, unpause, enqueue, perform or cleanup"
        end
  puts JSON.generate({ "step" => step }.merge(out))
  $stdout.flush
end
