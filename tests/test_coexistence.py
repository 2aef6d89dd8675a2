"""goodjob_mp beside a real Ruby GoodJob (tests/ruby) on one database (issue 13)."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

import goodjob_mp as gj
from goodjob_mp.cli import supervisor_command
from goodjob_mp.db import job_store
from tests import goodjob_ruby as harness
from tests.goodjob_ruby import GoodJobRuby, database_url_for_ruby, goodjob_source
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent

goodjob_ruby = harness.goodjob_ruby
goodjob_ruby_source = harness.goodjob_ruby_source

LEDGER = """
CREATE TABLE IF NOT EXISTS coexist_ledger (
    active_job_id uuid NOT NULL, job_class text NOT NULL, arg integer, side text NOT NULL,
    pid integer, started_at timestamptz,
    performed_at timestamptz NOT NULL DEFAULT clock_timestamp())
"""


@pytest.fixture()
def ledger(db: psycopg.Connection) -> psycopg.Connection:
    db.execute(LEDGER)
    # Another test's ledger may predate started_at (same table name, same session database).
    db.execute("ALTER TABLE coexist_ledger ADD COLUMN IF NOT EXISTS started_at timestamptz")
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


# --- the co-existence ledger: a real GoodJob and a real goodjob-supervisor, one database ------

# How many jobs in all (issue 13 asks for at least 2,000). GJ_COEXIST_JOBS overrides it.
COEXIST_JOBS = int(os.environ.get("GJ_COEXIST_JOBS", "2000"))
# Pauses set before either side starts, each by the other side's tooling.
RUBY_PAUSED_CLASS = "RubyPausableJob"  # paused from Ruby (GoodJob::Setting.pause)
PYTHON_PAUSED_LABEL = "py-paused"  # paused from Python (goodjob-supervisor pause)
PROCESS_ROWS = "SELECT id, lock_type, state -> 'schedulers' -> 0 ->> 'name' FROM good_job_processes"


@dataclass
class Mix:
    """How many jobs of each kind, and which side enqueues them."""

    shared_ruby: int  # RubyLedgerJob on "shared", enqueued from Ruby (both sides can run it)
    shared_python: int  # the same class, enqueued from Python
    ruby_only_ruby: int  # RubyOnlyJob (only Rails defines it) from Ruby
    ruby_only_python: int  # ... from Python, by name (gj.enqueue("RubyOnlyJob", ...))
    python_only: int  # PythonOnlyJob on "python-only" (Python only)
    paused_class_each: int  # RubyPausableJob (paused by class from Ruby), from each side
    paused_label_each: int  # RubyLabeledJob with label py-paused (paused from Python), each

    @classmethod
    def of(cls, total: int) -> Mix:
        tenth, twentieth = total // 10, total // 20
        paused = twentieth // 2
        rest = total - 2 * tenth - 4 * paused
        return cls(
            rest // 2, rest - rest // 2, tenth // 2, tenth - tenth // 2, tenth, paused, paused
        )

    @property
    def total(self) -> int:
        return (
            self.shared_ruby
            + self.shared_python
            + self.ruby_only_ruby
            + self.ruby_only_python
            + self.python_only
            + 2 * (self.paused_class_each + self.paused_label_each)
        )


class Phases:
    """Elapsed seconds at each step, for the report (never asserted on)."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.marks: dict[str, float] = {}

    def mark(self, name: str) -> None:
        self.marks[name] = round(time.monotonic() - self.t0, 1)


class ProcessWatch(threading.Thread):
    """Polls good_job_processes from its own session: every snapshot of the ids present."""

    def __init__(self, database_url: str) -> None:
        super().__init__(name="process-watch", daemon=True)
        self.url = database_url
        self.snapshots: list[dict[uuid.UUID, tuple[int | None, str | None]]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.halt.is_set():
                rows = conn.execute(PROCESS_ROWS).fetchall()
                self.snapshots.append({r[0]: (r[1], r[2]) for r in rows})
                self.halt.wait(0.2)

    def stop(self) -> None:
        self.halt.set()
        self.join(10)


def _python_enqueue(mix: Mix, half: int) -> None:
    """Python's share of the jobs, in one COPY per call; ``half`` 0 or 1 picks which half."""
    from tests import coexist_jobs as C

    def part(n: int) -> range:
        first = n // 2
        return range(0, first) if half == 0 else range(first, n)

    with gj.enqueue.bulk():
        for i in part(mix.shared_python):
            C.RubyLedgerJob.perform_later(100_000 + i, 0.002)
        for i in part(mix.python_only):
            C.PythonOnlyJob.perform_later(200_000 + i, 0.002)
        for i in part(mix.paused_class_each):
            C.RubyPausableJob.perform_later(300_000 + i, 0)
        for i in part(mix.paused_label_each):
            C.RubyLabeledJob.set(labels=[PYTHON_PAUSED_LABEL]).perform_later(400_000 + i, 0)
    for i in part(mix.ruby_only_python):
        gj.enqueue("RubyOnlyJob", [500_000 + i, 0], queue="shared")


def _ruby_steps(mix: Mix, half: int) -> list[str]:
    """rails_steps.rb steps enqueueing Ruby's share; ``half`` 0 or 1 picks which half."""

    def count(n: int) -> int:
        return n // 2 if half == 0 else n - n // 2

    offset = 0 if half == 0 else 50_000
    return [
        f"enqueue:RubyLedgerJob:shared:{count(mix.shared_ruby)}:{offset}:0.002",
        f"enqueue:RubyOnlyJob:shared:{count(mix.ruby_only_ruby)}:{10_000 + offset}:0",
        f"enqueue:{RUBY_PAUSED_CLASS}:shared:{count(mix.paused_class_each)}:{20_000 + offset}:0",
        f"enqueue:RubyLabeledJob:shared:{count(mix.paused_label_each)}:{30_000 + offset}:0:"
        + PYTHON_PAUSED_LABEL,
    ]


def _inactive(outputs: list[str]) -> set[str]:
    """Process ids GoodJob's sweeps (rails_steps.rb cleanup) judged inactive."""
    found: set[str] = set()
    for out in outputs:
        for line in out.splitlines():
            found.update(json.loads(line).get("inactive", ()))
    return found


RUBY_PAUSE_SEEN = (
    "SELECT COALESCE((SELECT value -> 'job_classes' ? %s FROM good_job_settings"
    " WHERE key = 'pauses'), false)"
)


def _python_cli(*args: str) -> None:
    subprocess.run([*supervisor_command(), *args], check=True, capture_output=True, timeout=60)


def _count(db: psycopg.Connection, query: str, *params) -> int:
    return db.execute(query, params).fetchone()[0]


@pytest.mark.timeout(600)
def test_goodjob_and_supervisor_share_queues_without_double_runs(
    goodjob_ruby: GoodJobRuby, ledger: psycopg.Connection, database_url: str, tmp_path: Path
) -> None:
    """GoodJob's CLI (advisory lock strategy, production env) and goodjob-supervisor (advisory
    locks on automatically once it sees GoodJob) serve the queue "shared" at once; jobs come
    from both sides before and while they run. Every job runs once, on a side that knows its
    class; no live process row is deleted by the other side's sweep; pauses set by each side
    hold on the other. GoodJob cannot skip a class it does not know (it fails the job with
    NameError), so Python-only classes go to a queue only Python serves."""
    db = ledger
    mix = Mix.of(COEXIST_JOBS)
    clock = Phases()
    ruby_log, python_log = tmp_path / "goodjob.log", tmp_path / "supervisor.log"
    _python_cli("pause", f"--label={PYTHON_PAUSED_LABEL}")
    clock.mark("paused from Python")

    # Rails boots take seconds each on a busy machine: independent steps overlap. GoodJob boots
    # while Ruby pauses a class and both sides enqueue their first half.
    ruby = goodjob_ruby.start_cli("--queues=shared", "--max-threads=5", log=ruby_log)
    python = None
    watch = ProcessWatch(database_url)
    sweeps: list[str] = []
    try:
        early_ruby = goodjob_ruby.start(
            "rails_steps.rb", f"pause:job_class:{RUBY_PAUSED_CLASS}", *_ruby_steps(mix, 0)
        )
        assert wait_for(lambda: _count(db, RUBY_PAUSE_SEEN, RUBY_PAUSED_CLASS), 120)
        _python_enqueue(mix, 0)
        goodjob_ruby.finish(early_ruby)
        clock.mark("paused from Ruby, first half enqueued")
        # The supervisor starts once GoodJob's row is there, so it takes GoodJob's job locks
        # from its first claim (advisory_locks=auto).
        assert wait_for(lambda: job_store.foreign_worker_seen(db), timeout=120), (
            ruby_log.read_text()
        )
        env = {
            **os.environ,
            "GOOD_JOB_QUEUES": "shared,python-only:5",
            "GOOD_JOB_POLL_INTERVAL": "1",
            # Much less patient than GoodJob's 5-minute expiry of its lock-less rows: a sweep
            # that judged GoodJob's row by our own timeout would delete it within the run.
            "GOOD_JOB_DEAD_PROCESS_TIMEOUT": "5",
        }
        with open(python_log, "wb") as out:
            python = subprocess.Popen(
                [*supervisor_command(), "--app", "tests.coexist_jobs"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        # GoodJob's own sweep while the supervisor starts (its rows must already be locked).
        starting_sweep = goodjob_ruby.start("rails_steps.rb", "cleanup")
        assert wait_for(lambda: "pool(s) are up" in python_log.read_text(), 60), (
            python_log.read_text()
        )
        clock.mark("both sides up")
        watch.start()
        assert wait_for(lambda: len(watch.snapshots) > 0)
        baseline = dict(watch.snapshots[-1])

        # The second half arrives while both sides run; GoodJob sweeps again meanwhile.
        late_ruby = goodjob_ruby.start("rails_steps.rb", *_ruby_steps(mix, 1), "cleanup")
        _python_enqueue(mix, 1)
        sweeps.append(goodjob_ruby.finish(late_ruby))
        sweeps.append(goodjob_ruby.finish(starting_sweep))
        clock.mark("second half enqueued")

        paused = 2 * (mix.paused_class_each + mix.paused_label_each)
        unpaused = mix.total - paused
        done = "SELECT count(*) FROM good_jobs WHERE finished_at IS NOT NULL"
        assert wait_for(lambda: _count(db, done) >= unpaused, timeout=300), (
            f"{_count(db, done)} of {unpaused} finished\n{python_log.read_text()[-3000:]}\n"
            f"{ruby_log.read_text()[-3000:]}"
        )
        clock.mark("unpaused jobs drained")
        # Nothing paused ran, on either side, while everything else drained.
        paused_runs = (
            "SELECT count(*) FROM coexist_ledger l JOIN good_jobs j ON j.id = l.active_job_id"
            " WHERE j.job_class = %s OR %s = ANY(j.labels)"
        )
        assert _count(db, paused_runs, RUBY_PAUSED_CLASS, PYTHON_PAUSED_LABEL) == 0
        assert _count(db, done) == unpaused
        ruby_unpause = goodjob_ruby.start(
            "rails_steps.rb", f"unpause:job_class:{RUBY_PAUSED_CLASS}"
        )
        _python_cli("unpause", f"--label={PYTHON_PAUSED_LABEL}")
        goodjob_ruby.finish(ruby_unpause)
        assert wait_for(lambda: _count(db, done) == mix.total, timeout=120), (
            f"{_count(db, done)} of {mix.total} finished"
        )
        clock.mark("paused jobs drained after unpause")
        watch.stop()
    finally:
        watch.stop()
        if python is not None:
            _stop(python)
        _stop(ruby)

    report = _ledger_report(db, mix)
    report["seconds"] = clock.marks
    print("coexist-ledger:", json.dumps(report, sort_keys=True))
    # 0 double runs: each job id in the ledger exactly once, and one execution row per job.
    assert report["ledger_rows"] == mix.total
    assert report["ledger_job_ids"] == mix.total
    assert report["executions"] == mix.total
    assert report["errors"] == 0  # nothing discarded, nothing interrupted
    # Each side ran only what it knows; both sides ran jobs of the shared class.
    assert report["by_class_and_side"].get("RubyOnlyJob/python", 0) == 0
    assert (
        report["by_class_and_side"]["RubyOnlyJob/ruby"] == mix.ruby_only_ruby + mix.ruby_only_python
    )
    assert report["by_class_and_side"].get("PythonOnlyJob/ruby", 0) == 0
    assert report["by_class_and_side"]["PythonOnlyJob/python"] == mix.python_only
    assert report["by_class_and_side"].get("RubyLedgerJob/ruby", 0) > 0
    assert report["by_class_and_side"].get("RubyLedgerJob/python", 0) > 0
    # No live process row was deleted: every row present once both ran stayed to the end.
    missing = {i for s in watch.snapshots for i in set(baseline) - set(s)}
    assert not missing, {str(i): baseline[i] for i in missing}
    sides = {name or "": lock for lock, name in baseline.values()}
    assert any(n.startswith("GoodJob::Scheduler") for n in sides), baseline
    assert any(n.startswith("goodjob_mp.") for n in sides), baseline
    assert not _inactive(sweeps) & {str(i) for i in baseline}, sweeps
    text = python_log.read_text()
    assert "taking GoodJob's per-job advisory locks" in text
    for bad in ("was NOT recorded", "may be running twice", "Traceback"):
        assert bad not in text, text[-3000:]
    ruby_text = ruby_log.read_text(errors="replace")
    for bad in ("ERROR", "Error", "Exception"):
        assert bad not in ruby_text, ruby_text[-3000:]
    print(
        "coexist-ledger: processes",
        {str(k): v for k, v in baseline.items()},
        f"snapshots={len(watch.snapshots)}",
    )


def _ledger_report(db: psycopg.Connection, mix: Mix) -> dict:
    by = db.execute(
        "SELECT job_class || '/' || side, count(*) FROM coexist_ledger GROUP BY 1 ORDER BY 1"
    ).fetchall()
    return {
        "jobs": mix.total,
        "ledger_rows": _count(db, "SELECT count(*) FROM coexist_ledger"),
        "ledger_job_ids": _count(db, "SELECT count(DISTINCT active_job_id) FROM coexist_ledger"),
        "double_runs": _count(
            db,
            "SELECT count(*) FROM (SELECT active_job_id FROM coexist_ledger"
            " GROUP BY 1 HAVING count(*) > 1) d",
        ),
        "executions": _count(db, "SELECT count(*) FROM good_job_executions"),
        "errors": _count(
            db,
            "SELECT count(*) FROM good_jobs WHERE error IS NOT NULL OR finished_at IS NULL",
        )
        + _count(db, "SELECT count(*) FROM good_job_executions WHERE error IS NOT NULL"),
        "by_class_and_side": dict(by),
        "by_side": dict(
            db.execute("SELECT side, count(*) FROM coexist_ledger GROUP BY 1").fetchall()
        ),
        "python_pids": _count(
            db, "SELECT count(DISTINCT pid) FROM coexist_ledger WHERE side = 'python'"
        ),
        "ruby_pids": _count(
            db, "SELECT count(DISTINCT pid) FROM coexist_ledger WHERE side = 'ruby'"
        ),
    }
