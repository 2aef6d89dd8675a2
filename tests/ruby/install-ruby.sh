#!/usr/bin/env bash
# Install Ruby and Debian's Rails packages, which the real GoodJob needs for the co-existence
# tests (tests/goodjob_ruby.py). Does nothing when they are already there; exits non-zero when it
# cannot install (no apt-get, not root), and the tests then skip.
set -euo pipefail
probe='%w[rails active_record active_job pg fugit concurrent thor zeitwerk].each { require _1 }'
if command -v ruby >/dev/null 2>&1 && ruby -e "$probe" >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
  echo "cannot install Ruby here (needs apt-get as root)" >&2
  exit 1
fi
echo "Installing Ruby and Debian's Rails packages for the GoodJob co-existence tests"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ruby ruby-activejob ruby-activerecord \
  ruby-railties ruby-pg ruby-concurrent ruby-fugit ruby-thor ruby-zeitwerk >/dev/null
ruby -e "$probe"
