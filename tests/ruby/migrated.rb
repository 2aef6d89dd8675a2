# frozen_string_literal: true

# Prints what the real GoodJob thinks of this database's schema:
#   migrated=<GoodJob.migrated?>
# (GoodJob's dashboard and boot warn about pending migrations when it is false.)
require_relative "app"

puts "migrated=#{GoodJob.migrated?}"
