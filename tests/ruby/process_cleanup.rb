# frozen_string_literal: true

# GoodJob's own sweep of dead process rows, as a GoodJob capsule runs it (CapsuleTracker, every
# ~30 s): prints the ids it would judge inactive, then runs GoodJob::Process.cleanup.
require_relative "app"
require "json"

puts JSON.generate("inactive" => GoodJob::Process.inactive.pluck(:id))
GoodJob::Process.cleanup
