# frozen_string_literal: true

# GoodJob's CLI requires config/environment.rb from its working directory, as in a Rails app.
require_relative "../app"
