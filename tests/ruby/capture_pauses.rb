# frozen_string_literal: true

# Capture what GoodJob::Setting.pause / unpause write, step by step, as JSON lines:
#   ruby capture_pauses.rb > ../fixtures/goodjob-reference/good_job_settings_pauses.jsonl
# Each line: the call, then the `pauses` row as row_to_json and its value as Postgres prints it
# (value::text), or null when there is no row. Starts by deleting the `pauses` row.
require_relative "app"
require "json"

STEPS = [
  ["unpause", :queue, "reports"],
  ["pause", :queue, "reports"],
  ["pause", :job_class, "PausedClassJob"],
  ["pause", :label, "billing"],
  ["pause", :queue, "reports"],
  ["pause", :queue, "mail"],
  ["unpause", :queue, "reports"],
  ["unpause", :label, "not-paused"],
  ["unpause", :job_class, "PausedClassJob"],
  ["unpause", :label, "billing"],
  ["unpause", :queue, "mail"],
].freeze

conn = ActiveRecord::Base.connection
conn.execute("DELETE FROM good_job_settings WHERE key = 'pauses'")
STEPS.each do |command, type, name|
  GoodJob::Setting.public_send(command, type => name)
  row = conn.select_rows(
    "SELECT row_to_json(t)::text, t.value::text FROM good_job_settings t WHERE key = 'pauses'"
  ).first
  puts JSON.generate(
    "call" => "GoodJob::Setting.#{command}(#{type}: #{name.inspect})",
    "command" => command, "kind" => type.to_s, "name" => name,
    "row" => row && JSON.parse(row[0]), "value_text" => row && row[1]
  )
end
