"""goodjob_mp beside a real Ruby GoodJob (tests/ruby) on one database (issue 13)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg
import pytest

from tests import goodjob_ruby as harness
from tests.goodjob_ruby import GoodJobRuby, database_url_for_ruby, goodjob_source
from tests.waiting import wait_for

goodjob_ruby = harness.goodjob_ruby
goodjob_ruby_source = harness.goodjob_ruby_source

LEDGER = """
CREATE TABLE IF NOT EXISTS coexist_ledger (
    active_job_id uuid NOT NULL, job_class text NOT NULL, arg integer, side text NOT NULL,
    pid integer, performed_at timestamptz NOT NULL DEFAULT clock_timestamp())
"""


@pytest.fixture()
def ledger(db: psycopg.Connection) -> psycopg.Connection:
    db.execute(LEDGER)
    db.execute("TRUNCATE coexist_ledger")
    return db


def _stop(proc: subprocess.Popen, timeout: float = 60) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_source_lookup_says_what_is_missing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GOOD_JOB_SOURCE", str(tmp_path / "nowhere"))
    source, why = goodjob_source(tmp_path / "into")
    assert source is None
    assert "has no lib/good_job.rb" in why
    monkeypatch.delenv("GOOD_JOB_SOURCE")
    monkeypatch.setenv("GOOD_JOB_GIT_DIR", str(tmp_path / "no-git"))
    source, why = goodjob_source(tmp_path / "into")
    assert source is None
    assert "GOOD_JOB_SOURCE" in why


def test_ruby_database_url_from_conninfo() -> None:
    url = database_url_for_ruby("host=127.0.0.1 port=5432 user=root dbname=goodjob_test_1")
    assert url == "postgres://root@127.0.0.1:5432/goodjob_test_1"


def test_real_goodjob_performs_a_ruby_job(
    goodjob_ruby: GoodJobRuby, ledger: psycopg.Connection, tmp_path: Path
) -> None:
    ids = goodjob_ruby.run("enqueue.rb", "RubyLedgerJob", "ruby-only", "3").split()
    assert len(ids) == 3
    cli = goodjob_ruby.start_cli(
        "--queues=ruby-only", "--max-threads=2", "--poll-interval=1", log=tmp_path / "ruby.log"
    )
    try:
        done = "SELECT count(*) FROM coexist_ledger WHERE side = 'ruby'"
        assert wait_for(lambda: ledger.execute(done).fetchone()[0] == 3, timeout=90), (
            tmp_path / "ruby.log"
        ).read_text()[-3000:]
    finally:
        _stop(cli)
    rows = ledger.execute(
        "SELECT count(*) FROM good_jobs WHERE finished_at IS NOT NULL AND error IS NULL"
    ).fetchone()
    assert rows[0] == 3
