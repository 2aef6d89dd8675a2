# frozen_string_literal: true

# GoodJob's own executable (exe/good_job), run from this directory so that its
# `require "config/environment.rb"` boots app.rb:
#   cd tests/ruby && GOOD_JOB_SOURCE=... DATABASE_URL=... ruby good_job_cli.rb start --queues=...
source = ENV.fetch("GOOD_JOB_SOURCE") { abort "GOOD_JOB_SOURCE is not set: point it at GoodJob's source tree" }
abort "run from #{__dir__}: GoodJob's CLI loads config/environment.rb from the working directory" unless Dir.pwd == __dir__
$LOAD_PATH.unshift(File.join(source, "lib"))
require "good_job/cli"

GoodJob::CLI.within_exe = true
GoodJob::CLI.start(ARGV)
