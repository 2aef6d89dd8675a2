# frozen_string_literal: true

# A minimal Rails application that runs the real GoodJob from a source tree, for goodjob_mp's
# co-existence tests. Settings match tests/fixtures/goodjob-reference/README.md: production env,
# lock strategy default (advisory), preserve_job_records, enable_pauses, external execution,
# LISTEN/NOTIFY on, retry_on_unhandled_error off, advisory_lock_heartbeat at its default (off).
#
# Environment:
#   GOOD_JOB_SOURCE  a directory holding GoodJob's lib/, app/ and config/ (required)
#   DATABASE_URL     the database to use (required)
#   GJ_LEDGER_TABLE  table the test jobs insert into (default: coexist_ledger)
#   GJ_DB_POOL       Active Record's connection pool size (default: 10)

source = ENV.fetch("GOOD_JOB_SOURCE") { abort "GOOD_JOB_SOURCE is not set: point it at GoodJob's source tree" }
abort "GOOD_JOB_SOURCE=#{source} has no lib/good_job.rb" unless File.file?(File.join(source, "lib", "good_job.rb"))
ENV.fetch("DATABASE_URL") { abort "DATABASE_URL is not set" }
# A worker process needs 1 + 2 + max_threads connections (GoodJob's README, "Database
# connections"); Rails' default pool of 5 starves the notifier and the process heartbeat of a
# 5-thread CLI (ActiveRecord::ConnectionTimeoutError). GJ_DB_POOL overrides; a pool= in the URL wins.
unless ENV["DATABASE_URL"].include?("pool=")
  separator = ENV["DATABASE_URL"].include?("?") ? "&" : "?"
  ENV["DATABASE_URL"] = "#{ENV['DATABASE_URL']}#{separator}pool=#{ENV.fetch('GJ_DB_POOL', '10')}"
end
ENV["RAILS_ENV"] ||= "production"
ENV["RAILS_LOG_TO_STDOUT"] ||= "1"
ENV["SECRET_KEY_BASE"] ||= "goodjob-mp-coexistence-tests"

$LOAD_PATH.unshift(File.join(source, "lib"))

require "logger"
require "rails"
require "active_record/railtie"
require "active_job/railtie"
require "good_job"

class GoodJobBenchApp < Rails::Application
  config.root = __dir__
  config.eager_load = false
  config.logger = Logger.new($stdout, level: ENV.fetch("GJ_LOG_LEVEL", "warn").to_sym)
  config.log_level = ENV.fetch("GJ_LOG_LEVEL", "warn").to_sym
  config.active_job.queue_adapter = :good_job
  config.good_job.preserve_job_records = true
  config.good_job.enable_pauses = true
  config.good_job.execution_mode = :external
  config.good_job.enable_listen_notify = true
  config.good_job.retry_on_unhandled_error = false
  config.good_job.cleanup_preserved_jobs_before_seconds_ago = 14 * 24 * 3600
end

ActiveSupport::Deprecation.silenced = true
GoodJobBenchApp.initialize!
ActiveRecord::Base.logger = nil if ENV.fetch("GJ_LOG_LEVEL", "warn") != "debug"

LEDGER_TABLE = ENV.fetch("GJ_LEDGER_TABLE", "coexist_ledger")

# Writes one ledger row per perform (started_at when perform began, performed_at when it ended):
# the co-existence test counts them to find double runs and to see which side ran each job.
class RubyLedgerJob < ActiveJob::Base
  def perform(n, sleep_seconds = 0)
    started_at = Time.now.utc.iso8601(6)
    sleep(sleep_seconds) if sleep_seconds.to_f.positive?
    conn = ActiveRecord::Base.connection
    conn.exec_query(
      "INSERT INTO #{LEDGER_TABLE} (active_job_id, job_class, arg, side, pid, started_at, performed_at) " \
      "VALUES ($1, $2, $3, 'ruby', $4, $5::timestamptz, clock_timestamp())",
      "ledger", [job_id, self.class.name, n, Process.pid, started_at]
    )
  end
end

# A class only the Rails app defines: goodjob_mp must leave its jobs to GoodJob (skip, not discard).
class RubyOnlyJob < RubyLedgerJob; end

# The same job under a second name, so pauses by job class can be tested on one class.
class RubyPausableJob < RubyLedgerJob; end

# With labels, so pauses by label can be tested.
class RubyLabeledJob < RubyLedgerJob
  include GoodJob::ActiveJobExtensions::Labels
end

class RetryCountFirstError < StandardError; end
class RetryCountError < StandardError; end

# Two retry_on rules, each with its own count in exception_executions: the first execution
# raises RetryCountFirstError, later ones RetryCountError; a rule waits its count in hours.
# tests/test_retry_counts.py defines the same job in Python.
class RubyRetryCountJob < ActiveJob::Base
  retry_on RetryCountFirstError, wait: ->(count) { count * 3600 }, attempts: 10
  retry_on RetryCountError, wait: ->(count) { count * 3600 }, attempts: 4

  def perform(*)
    raise RetryCountFirstError, "first" if executions == 1

    raise RetryCountError, "again #{executions}"
  end
end
