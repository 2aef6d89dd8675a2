# frozen_string_literal: true

# GoodJob::Setting's pause calls from the command line, as a Rails console would make them:
#   ruby settings.rb pause queue NAME | pause job_class NAME | pause label NAME
#   ruby settings.rb unpause queue NAME | ...
#   ruby settings.rb paused            # prints GoodJob::Setting.paused as JSON
#   ruby settings.rb paused? queue NAME  # prints true or false
require_relative "app"
require "json"

command, type, value = ARGV
case command
when "pause"
  GoodJob::Setting.pause(type.to_sym => value)
when "unpause"
  GoodJob::Setting.unpause(type.to_sym => value)
when "paused"
  puts JSON.generate(GoodJob::Setting.paused)
when "paused?"
  puts JSON.generate(GoodJob::Setting.paused?(type.to_sym => value))
else
  abort "usage: settings.rb pause|unpause queue|job_class|label NAME, or paused, or paused? TYPE NAME"
end
