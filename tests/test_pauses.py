"""Pauses (issue 9): GoodJob v4's ``pauses`` setting, written as GoodJob writes it, honoured by
the claim, by the CLI and the API, and across sides with the real Ruby GoodJob."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql

import goodjob_mp as gj
from goodjob_mp.cli import main as cli_main
from goodjob_mp.cli import supervisor_command
from goodjob_mp.config import load_settings
from goodjob_mp.db import job_store, settings_store
from goodjob_mp.db.connection import thread_connection
from goodjob_mp.features import pauses as policy
from goodjob_mp.features.pauses import PauseError, Pauses, pause_target, with_pause, without_pause
from goodjob_mp.queues import parse_queue_selector
from goodjob_mp.worker.worker import Worker
from tests import goodjob_ruby as harness
from tests import jobs_for_tests as J
from tests.goodjob_ruby import GoodJobRuby
from tests.reference import REFERENCE_DIR
from tests.waiting import wait_for

goodjob_ruby = harness.goodjob_ruby
goodjob_ruby_source = harness.goodjob_ruby_source

CAPTURED = REFERENCE_DIR / "good_job_settings_pauses.jsonl"
ROW = "SELECT row_to_json(t)::jsonb, value::text FROM good_job_settings t WHERE key = 'pauses'"


@pytest.fixture()
def records(tmp_path, monkeypatch):
    monkeypatch.setenv(J.RECORD_DIR_ENV, str(tmp_path))
    return tmp_path


# --- policy (pure) ----------------------------------------------------------------------------


def test_pause_target_takes_exactly_one() -> None:
    assert pause_target(queue="mail") == ("queues", "mail")
    assert pause_target(job_class="SendInvoiceJob") == ("job_classes", "SendInvoiceJob")
    assert pause_target(label="billing") == ("labels", "billing")
    for bad in ({}, {"queue": "a", "label": "b"}, {"queue": " "}):
        with pytest.raises(PauseError, match="exactly one of queue, job_class or label"):
            pause_target(**bad)


def test_pause_and_unpause_values_follow_goodjob() -> None:
    value = with_pause(None, "queues", "a")
    assert value == {"queues": ["a"], "job_classes": [], "labels": []}
    assert with_pause(value, "queues", "a") == value  # once only
    value = with_pause(value, "labels", "x")
    assert without_pause(value, "labels", "nope") is None  # nothing to write
    assert without_pause(value, "labels", "x") == {"queues": ["a"], "job_classes": [], "labels": []}
    # A row with a missing list (an older GoodJob) gains it, and keeps keys it does not know.
    assert with_pause({"queues": ["a"], "other": 1}, "job_classes", "C") == {
        "queues": ["a"],
        "other": 1,
        "job_classes": ["C"],
    }


def test_is_paused_and_malformed_values() -> None:
    p = Pauses.from_value({"queues": ["q"], "job_classes": ["C"], "labels": ["l"]})
    assert p.is_paused("q", "X", [])
    assert p.is_paused("other", "C", None)
    assert p.is_paused("other", "X", ["a", "l"])
    assert not p.is_paused("other", "X", ["a"])
    assert not p.is_paused(None, None, None)
    assert not Pauses.from_value({"queues": "q", "labels": None})
    assert not Pauses.from_value(["q"])


# --- the store writes what GoodJob writes ------------------------------------------------------


def captured_steps() -> list[dict]:
    return [json.loads(line) for line in CAPTURED.read_text().splitlines()]


def replay(db: psycopg.Connection, steps: list[dict]) -> list[tuple[dict | None, str | None]]:
    out = []
    for step in steps:
        kind = policy.KIND_BY_OPTION[step["kind"]]
        call = settings_store.pause if step["command"] == "pause" else settings_store.unpause
        call(db, kind, step["name"])
        time.sleep(0.002)  # distinct timestamps, so "was updated_at touched" can be compared
        row = db.execute(ROW).fetchone()
        out.append((row[0], row[1]) if row else (None, None))
    return out


def test_rows_match_goodjob_byte_for_byte(db: psycopg.Connection) -> None:
    """The captured GoodJob::Setting.pause/unpause calls, replayed: after every call the value
    prints the same (jsonb text), and created_at/updated_at move exactly when GoodJob's did."""
    steps = captured_steps()
    assert len(steps) >= 10
    ours = replay(db, steps)
    previous_ours: dict | None = None
    previous_ruby: dict | None = None
    for step, (row, value_text) in zip(steps, ours, strict=True):
        ruby = step["row"]
        assert value_text == step["value_text"], step["call"]
        assert (row is None) == (ruby is None), step["call"]
        if ruby is None:
            continue
        assert sorted(row) == sorted(ruby), step["call"]
        assert row["key"] == "pauses"
        assert (row["created_at"] == row["updated_at"]) == (
            ruby["created_at"] == ruby["updated_at"]
        ), step["call"]
        if previous_ruby is not None:
            assert (row["updated_at"] == previous_ours["updated_at"]) == (
                ruby["updated_at"] == previous_ruby["updated_at"]
            ), step["call"]
        previous_ours, previous_ruby = row, ruby


def test_reads_the_row_goodjob_wrote(db: psycopg.Connection) -> None:
    row = next(
        json.loads(line)
        for line in (REFERENCE_DIR / "good_job_settings.jsonl").read_text().splitlines()
        if json.loads(line)["key"] == "pauses"
    )
    db.execute(
        "INSERT INTO good_job_settings (id, created_at, updated_at, key, value)"
        " VALUES (%s, %s, %s, %s, %s)",
        (row["id"], row["created_at"], row["updated_at"], row["key"], json.dumps(row["value"])),
    )
    assert gj.pauses(connection=db) == Pauses(queues=("reports",), job_classes=("PausedClassJob",))


# --- the claim ------------------------------------------------------------------------------


def enqueue(queue: str, job_class: str, labels: list[str] | None = None) -> uuid.UUID:
    job_id = uuid.uuid4()
    now = job_store.utcnow()
    job_store.insert_job(
        thread_connection(),
        job_store.NewJob(job_id, job_class, queue, 0, {"job_class": job_class}, now, now, labels),
    )
    return job_id


def claimable(db: psycopg.Connection) -> set[tuple[str, str]]:
    with db.transaction(force_rollback=True):
        selector = parse_queue_selector("*")
        statement = job_store.ClaimStatement(selector, [policy.PAUSED])
        jobs = job_store.claim_jobs(db, selector, uuid.uuid4(), 100, statement=statement)
    return {(j.queue_name, j.job_class) for j in jobs}


def test_paused_jobs_are_not_claimed(db: psycopg.Connection) -> None:
    enqueue("a", "One")
    enqueue("b", "Two")
    enqueue("c", "Three", ["billing", "vip"])
    enqueue("d", "Four", None)
    everything = {("a", "One"), ("b", "Two"), ("c", "Three"), ("d", "Four")}
    assert claimable(db) == everything
    assert gj.pause(queue="a", connection=db)
    assert not gj.pause(queue="a", connection=db)
    assert claimable(db) == everything - {("a", "One")}
    gj.pause(job_class="Two", connection=db)
    gj.pause(label="vip", connection=db)
    assert claimable(db) == {("d", "Four")}
    assert gj.pauses(connection=db) == Pauses(("a",), ("Two",), ("vip",))
    assert gj.unpause(label="vip", connection=db)
    assert not gj.unpause(label="vip", connection=db)
    assert gj.unpause(queue="a", connection=db)
    gj.unpause(job_class="Two", connection=db)
    assert claimable(db) == everything
    assert not gj.pauses(connection=db)


def test_a_malformed_row_pauses_nothing_and_breaks_no_claim(db: psycopg.Connection) -> None:
    enqueue("a", "One")
    db.execute(
        "INSERT INTO good_job_settings (created_at, updated_at, key, value)"
        ' VALUES (now(), now(), \'pauses\', \'{"queues": "a", "labels": {"x": 1}}\')'
    )
    assert claimable(db) == {("a", "One")}


def test_claim_with_pauses_keeps_the_index(db: psycopg.Connection) -> None:
    """A pause adds a filter to the candidate scan, never a sequential scan of good_jobs."""
    db.execute(
        "INSERT INTO good_jobs (id, active_job_id, job_class, queue_name, priority,"
        " serialized_params, scheduled_at, created_at, updated_at)"
        " SELECT gen_random_uuid(), gen_random_uuid(), 'C' || (i % 5), 'q' || (i % 7), 0, '{}',"
        " now() AT TIME ZONE 'UTC' - interval '1 minute', now(), now()"
        " FROM generate_series(1, 20000) i"
    )
    db.execute("ANALYZE good_jobs")
    gj.pause(queue="q1", connection=db)
    gj.pause(job_class="C2", connection=db)
    gj.pause(label="x", connection=db)
    for queues in ("*", "q1,q2,q3", "-q4", "+q2,q3"):
        selector = parse_queue_selector(queues)
        params = {
            "process_id": uuid.uuid4(),
            "now": job_store.utcnow(),
            "limit": 50,
            "queues": list(selector.names),
        }
        plans = {}
        for paused in (False, True):
            conditions = [policy.PAUSED] if paused else []
            sql_text = sql.SQL("EXPLAIN ") + job_store.claim_sql(selector, conditions)
            with db.transaction(force_rollback=True):
                plans[paused] = "\n".join(r[0] for r in db.execute(sql_text, params))
        # (an ordered selector, '+q2,q3', sorts by queue position with or without pauses)
        seq_scan = "Seq Scan on good_jobs "
        assert (seq_scan in plans[True]) == (seq_scan in plans[False]), plans[True]
        if not selector.ordered:
            assert seq_scan not in plans[True], plans[True]
        assert "index_good_job_settings_on_key" in plans[True], plans[True]


# --- workers: running jobs finish; unpausing wakes them through NOTIFY ------------------------


def test_pause_lets_running_jobs_finish_and_unpause_wakes_without_a_poll(db, records) -> None:
    worker = Worker(load_settings({"poll_interval": -1.0, "max_threads": 2})).start()
    try:
        assert wait_for(lambda: worker.listener_connected)
        J.sleepy.perform_later("running", 1.0)
        assert wait_for(lambda: J.lines(records, "started") == ["running"])
        gj.pause(queue="default")
        J.remember.perform_later("while-paused")  # its NOTIFY wakes the worker: claims nothing
        assert wait_for(lambda: J.lines(records, "finished") == ["running"])
        assert wait_for(lambda: worker.empty_claims >= 1)
        time.sleep(0.5)
        assert J.lines(records, "remember") == []
        # Polling is off: only the unpause's NOTIFY can start the job now.
        gj.unpause(queue="default")
        assert wait_for(lambda: J.lines(records, "remember") == ["while-paused"])
    finally:
        assert worker.shutdown(10)


def test_pause_changes_are_notified(db: psycopg.Connection) -> None:
    """Workers learn of a pause at once; an unpaused queue wakes its listeners (of both sides,
    as an enqueue would), an unpaused class or label wakes every listener."""
    with psycopg.connect(db.info.dsn, autocommit=True) as listener:
        listener.execute("LISTEN good_job")
        gj.pause(queue="mail", connection=db)
        gj.pause(queue="mail", connection=db)  # nothing changed: no NOTIFY
        gj.pause(label="billing", connection=db)
        gj.unpause(queue="mail", connection=db)
        gj.unpause(label="billing", connection=db)
        gj.unpause(label="billing", connection=db)  # nothing changed: no NOTIFY
        got = [n.payload for n in listener.notifies(timeout=2, stop_after=5)]
    assert [json.loads(p) for p in got] == [
        {"pauses": "changed"},
        {"pauses": "changed"},
        {"pauses": "changed", "queue_name": "mail"},
        {"pauses": "changed"},
    ]


# --- CLI ------------------------------------------------------------------------------------


def test_cli_pause_unpause_pauses(db: psycopg.Connection) -> None:
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str]:
        result = runner.invoke(cli_main, list(args))
        return result.exit_code, result.output

    assert run("pauses") == (0, "nothing is paused\n")
    assert run("pause", "--queue=mail") == (0, "paused queue 'mail'\n")
    assert run("pause", "--queue=mail") == (0, "paused queue 'mail' (it already was)\n")
    assert run("pause", "--job-class=SendInvoiceJob")[0] == 0
    assert run("pause", "--label=billing")[0] == 0
    assert run("pauses") == (
        0,
        "queue      mail\njob class  SendInvoiceJob\nlabel      billing\n",
    )
    assert run("unpause", "--label=billing") == (0, "unpaused label 'billing'\n")
    assert run("unpause", "--label=billing") == (0, "label 'billing' was not paused\n")
    code, out = run("pause")
    assert code == 2 and "exactly one of queue, job_class or label" in out
    assert "Traceback" not in out
    code, out = run("unpause", "--queue=a", "--label=b")
    assert code == 2 and "exactly one of queue, job_class or label" in out
    assert gj.pauses(connection=db) == Pauses(("mail",), ("SendInvoiceJob",), ())


def test_cli_help_lists_the_commands() -> None:
    out = subprocess.run(
        supervisor_command("--help"),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for command in ("pause ", "unpause ", "pauses "):
        assert command in out


# --- across sides, with the real GoodJob ----------------------------------------------------


def test_ruby_and_python_pause_rows_are_identical(
    goodjob_ruby: GoodJobRuby, db: psycopg.Connection
) -> None:
    """The live GoodJob and the captured fixture agree (the fixture is not stale), and each
    side reads what the other wrote."""
    out = goodjob_ruby.run("capture_pauses.rb")
    live = [json.loads(line) for line in out.splitlines()]
    assert [s["value_text"] for s in live] == [s["value_text"] for s in captured_steps()]
    gj.pause(queue="py-queue", connection=db)
    gj.pause(label="py-label", connection=db)
    seen = json.loads(goodjob_ruby.run("settings.rb", "paused"))
    assert seen == {"queues": ["py-queue"], "job_classes": [], "labels": ["py-label"]}
    assert goodjob_ruby.run("settings.rb", "paused?", "queue", "py-queue").strip() == "true"
    goodjob_ruby.run("settings.rb", "pause", "job_class", "RubyPausedJob")
    assert gj.pauses(connection=db) == Pauses(("py-queue",), ("RubyPausedJob",), ("py-label",))


def test_a_ruby_pause_stops_python_workers(
    goodjob_ruby: GoodJobRuby, db: psycopg.Connection, records: Path
) -> None:
    goodjob_ruby.run("settings.rb", "pause", "queue", "held")
    worker = Worker(load_settings({"poll_interval": 1.0, "max_threads": 2})).start()
    try:
        J.remember.set(queue="held").perform_later("held")
        J.remember.set(queue="free").perform_later("free")
        assert wait_for(lambda: J.lines(records, "remember") == ["free"])
        assert wait_for(lambda: worker.empty_claims >= 2)
        assert J.lines(records, "remember") == ["free"]
        goodjob_ruby.run("settings.rb", "unpause", "queue", "held")  # no NOTIFY: the poll finds it
        assert wait_for(lambda: J.lines(records, "remember") == ["free", "held"])
    finally:
        assert worker.shutdown(10)


def test_a_python_pause_stops_the_ruby_goodjob(
    goodjob_ruby: GoodJobRuby, db: psycopg.Connection, tmp_path: Path
) -> None:
    db.execute(
        "CREATE TABLE IF NOT EXISTS coexist_ledger (active_job_id uuid, job_class text,"
        " arg integer, side text, pid integer, started_at timestamptz, performed_at timestamptz)"
    )
    db.execute("ALTER TABLE coexist_ledger ADD COLUMN IF NOT EXISTS started_at timestamptz")
    db.execute("TRUNCATE coexist_ledger")
    gj.pause(queue="held", connection=db)
    gj.pause(job_class="RubyPausableJob", connection=db)
    goodjob_ruby.run("enqueue.rb", "RubyLedgerJob", "held", "2")
    goodjob_ruby.run("enqueue.rb", "RubyPausableJob", "free", "2")
    goodjob_ruby.run("enqueue.rb", "RubyLedgerJob", "free", "3")
    # A long poll: after the unpause, only our NOTIFY can wake GoodJob in time.
    cli = goodjob_ruby.start_cli(
        "--queues=held,free", "--max-threads=2", "--poll-interval=600", log=tmp_path / "rb.log"
    )
    count = "SELECT count(*) FROM coexist_ledger WHERE job_class = %s"
    try:
        assert wait_for(lambda: db.execute(count, ("RubyLedgerJob",)).fetchone()[0] == 3, 90)
        time.sleep(1.0)
        assert db.execute(count, ("RubyPausableJob",)).fetchone()[0] == 0
        assert db.execute(count, ("RubyLedgerJob",)).fetchone()[0] == 3
        gj.unpause(queue="held", connection=db)
        assert wait_for(lambda: db.execute(count, ("RubyLedgerJob",)).fetchone()[0] == 5, 60)
        gj.unpause(job_class="RubyPausableJob", connection=db)
        assert wait_for(lambda: db.execute(count, ("RubyPausableJob",)).fetchone()[0] == 2, 60)
    finally:
        cli.terminate()
        cli.wait(60)


def test_jobs_buffered_before_a_pause_are_handed_back_not_run(db, records) -> None:
    """A worker claims ahead of its threads; a pause must stop the jobs it holds unstarted."""
    worker = Worker(load_settings({"poll_interval": -1.0, "max_threads": 1})).start()
    try:
        assert wait_for(lambda: worker.listener_connected)
        J.remember.perform_later("warm")  # measured fast: the next claim takes a batch
        assert wait_for(lambda: J.lines(records, "remember") == ["warm"])
        assert wait_for(lambda: worker.succeeded == 1)  # measured once it has finished
        worker._avg_duration = J.SHORT_JOB_SECONDS  # what it measures on an idle box
        with gj.bulk() as batch:
            J.sleepy.perform_later("blocker", 2.0)
            for tag in ("b1", "b2", "b3"):
                J.remember.perform_later(tag)
        assert wait_for(lambda: J.lines(records, "started") == ["blocker"])
        assert wait_for(lambda: worker.buffered == 3), worker.buffered
        gj.pause(queue="default")
        ids = [h.id for h in batch.jobs[1:]]
        unlocked = (
            "SELECT count(*) FROM good_jobs WHERE id = ANY(%s) AND locked_by_id IS NULL"
            " AND finished_at IS NULL"
        )
        assert wait_for(lambda: db.execute(unlocked, (ids,)).fetchone()[0] == 3)
        assert worker.buffered == 0
        assert wait_for(lambda: J.lines(records, "finished") == ["blocker"])
        time.sleep(0.3)
        assert J.lines(records, "remember") == ["warm"]
        rows = db.execute(
            "SELECT performed_at, executions_count FROM good_jobs WHERE id = ANY(%s)", (ids,)
        ).fetchall()
        assert rows == [(None, 0)] * 3  # back as if never claimed
        gj.unpause(queue="default")
        assert wait_for(lambda: sorted(J.lines(records, "remember")) == ["b1", "b2", "b3", "warm"])
    finally:
        assert worker.shutdown(10)
