"""Batches (issue 10): rows as GoodJob writes them, callbacks exactly once, bulk, Ruby, CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import uuid

import psycopg
import pytest

import goodjob_mp as gj
from goodjob_mp import features
from goodjob_mp.cleanup import cleanup_preserved
from goodjob_mp.db import batches as store
from goodjob_mp.db import job_store
from goodjob_mp.db.job_store import JobResult, utcnow
from goodjob_mp.features import batches
from tests import goodjob_ruby as harness
from tests import jobs_for_batches as B
from tests import jobs_for_tests as J
from tests.goodjob_ruby import GoodJobRuby
from tests.supervising import *  # noqa: F403  (fixtures: records, start)
from tests.supervising import ROOT
from tests.waiting import wait_for

goodjob_ruby = harness.goodjob_ruby
goodjob_ruby_source = harness.goodjob_ruby_source
REFERENCE = ROOT / "tests" / "fixtures" / "goodjob-reference"
GOODJOB_BATCH_ID = "d4aa21a3-61a3-4a56-9a4c-dd0f0f71ee5d"
GOODJOB_CALLBACK_ID = "d9ee6eaa-86cb-4874-8b65-503f68b3916c"


def reference(table: str, row_id: str) -> dict:
    for line in (REFERENCE / f"{table}.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["id"] == row_id:
            return row
    raise KeyError(row_id)


def callback_rows(db, batch_id) -> list[tuple]:
    """(class, event) of the batch's callback jobs, sorted (one transaction enqueues them all
    at one timestamp, so their order is no order)."""
    return sorted(
        db.execute(
            "SELECT job_class, serialized_params->'arguments'->1->'event'->>'value' FROM good_jobs"
            " WHERE batch_callback_id = %s",
            (batch_id,),
        ).fetchall()
    )


def batch_row(db, batch_id) -> store.BatchRow:
    row = store.find(db, batch_id)
    assert row is not None
    return row


def full_batch(**extra) -> gj.Batch:
    return gj.Batch(
        on_finish=B.ReportDone,
        on_success=B.ReportDone,
        on_discard=B.ReportDone,
        description="nightly",
        properties={"user_id": 1},
        **extra,
    )


# --- rows -------------------------------------------------------------------------------------


def test_batch_row_has_goodjob_columns_and_property_form(db):
    batch = gj.Batch(
        on_finish="BatchCallbackJob",
        callback_queue_name="work",
        callback_priority=1,
        description="fixture batch",
        properties={"user_id": 42},
    )
    with batch:
        handle = J.noop.perform_later()
    row = db.execute(
        "SELECT row_to_json(b) FROM good_job_batches b WHERE id = %s", (batch.id,)
    ).fetchone()[0]
    ruby = reference("good_job_batches", GOODJOB_BATCH_ID)
    assert set(row) == set(ruby)
    # Ruby wrote Batch.enqueue(user_id: 42): a symbol-keyed hash in Active Job's form.
    assert row["serialized_properties"] == ruby["serialized_properties"]
    for column in ("description", "on_finish", "callback_queue_name", "callback_priority"):
        assert row[column] == ruby[column]
    assert row["enqueued_at"] is not None and row["finished_at"] is None
    job = db.execute(
        "SELECT batch_id, batch_callback_id FROM good_jobs WHERE id = %s", (handle.id,)
    )
    assert job.fetchone() == (batch.id, None)


def test_callback_row_matches_the_one_goodjob_wrote(db):
    batch = gj.Batch(on_finish="BatchCallbackJob", callback_queue_name="work", callback_priority=1)
    with batch:
        pass  # an empty batch is finished as soon as it is enqueued
    (row,) = db.execute(
        "SELECT row_to_json(j) FROM good_jobs j WHERE batch_callback_id = %s", (batch.id,)
    ).fetchone()
    ruby = reference("good_jobs", GOODJOB_CALLBACK_ID)
    for column in ("queue_name", "priority", "job_class", "batch_id"):
        assert row[column] == ruby[column], column
    assert row["batch_callback_id"] == str(batch.id)
    assert row["scheduled_at"] == row["created_at"]
    ours, theirs = row["serialized_params"], ruby["serialized_params"]
    assert ours["priority"] == theirs["priority"] == 1
    gid, params = ours["arguments"]
    assert gid == {"_aj_globalid": f"gid://goodjob-mp/GoodJob::Batch/{batch.id}"}
    assert params == theirs["arguments"][1]  # {event: :finish}, the symbol as Ruby writes it


def test_python_callback_reads_a_goodjob_callback_row_as_a_batch(db):
    ruby = reference("good_job_batches", GOODJOB_BATCH_ID)
    db.execute(
        "INSERT INTO good_job_batches"
        " SELECT * FROM json_populate_record(NULL::good_job_batches, %s)",
        (json.dumps(ruby),),
    )
    arguments = reference("good_jobs", GOODJOB_CALLBACK_ID)["serialized_params"]["arguments"]
    args, _ = gj.serialization.deserialize_arguments(arguments)
    batch, params = batches.locate_arguments(args)
    assert params == {"event": "finish"}
    assert isinstance(batch, gj.Batch) and batch.id == uuid.UUID(GOODJOB_BATCH_ID)
    assert batch.properties == {"user_id": 42}
    assert batch.description == "fixture batch" and batch.succeeded


def test_find_and_accessors(db):
    batch = full_batch()
    with batch:
        J.noop.perform_later()
    found = gj.Batch.find(str(batch.id))
    assert found == batch and found.properties == {"user_id": 1}
    assert found.on_finish == "tests.jobs_for_batches.ReportDone"
    assert found.enqueued and not found.finished and not found.discarded
    assert found.state == "running"
    with pytest.raises(gj.BatchNotFoundError):
        gj.Batch.find(uuid.uuid4())


def test_exception_in_block_leaves_batch_unenqueued(db):
    batch = full_batch()
    with pytest.raises(RuntimeError), batch:
        J.noop.perform_later()
        raise RuntimeError("stop")
    assert batch_row(db, batch.id).enqueued_at is None
    assert J.noop.perform_later().id  # outside the block: no batch
    assert db.execute("SELECT count(*) FROM good_jobs WHERE batch_id IS NULL").fetchone()[0] == 1


# --- callbacks ---------------------------------------------------------------------------------


def test_inline_success_runs_success_and_finish_once(db, records):
    gj.configure(execution_mode="inline")
    batch = full_batch()
    with batch:
        B.Item.perform_later(1)
        B.Item.perform_later(2)
    assert J.lines(records, "callbacks") == [
        f"{batch.id} success 1 nightly",
        f"{batch.id} finish 1 nightly",
    ]
    assert batch.succeeded and batch.finished_at >= batch.jobs_finished_at


def test_first_discard_runs_on_discard_once_and_no_success(db, records):
    gj.configure(execution_mode="inline")
    batch = full_batch()
    with batch:
        B.Item.perform_later(1, "discard")
        B.Item.perform_later(2, "discard")
        B.Item.perform_later(3)
    assert J.lines(records, "callbacks") == [
        f"{batch.id} discard 1 nightly",
        f"{batch.id} finish 1 nightly",
    ]
    assert batch.discarded and batch.finished and not batch.succeeded
    assert batch.state == "discarded"


def test_pending_retry_keeps_the_batch_open(db, records):
    batch = full_batch()
    with batch:
        B.Item.perform_later(1, "flaky")
    assert gj.perform_inline(limit=1) == 1  # first attempt fails and is retried
    row = batch_row(db, batch.id)
    assert row.jobs_finished_at is None and callback_rows(db, batch.id) == []
    gj.perform_inline("default")
    assert J.lines(records, "items") == ["1:flaky:1", "1:flaky:2"]
    assert callback_rows(db, batch.id) == [
        ("tests.jobs_for_batches.ReportDone", "finish"),
        ("tests.jobs_for_batches.ReportDone", "success"),
    ]
    assert batch_row(db, batch.id).finished_at is None  # callbacks not run yet
    gj.perform_inline()
    assert batch.reload().succeeded


def test_unenqueued_batch_waits_for_enqueue(db, records):
    batch = full_batch()
    with batch.add():
        B.Item.perform_later(1)
    gj.perform_inline()
    assert batch_row(db, batch.id).jobs_finished_at is None
    batch.enqueue()
    assert [e for _, e in callback_rows(db, batch.id)] == ["finish", "success"]


def test_add_existing_jobs_and_retry_discarded(db, records):
    handle = B.Item.perform_later(1, "discard")
    batch = full_batch()
    batch.add(handle)
    batch.enqueue()
    gj.perform_inline()
    assert batch.reload().discarded and batch.finished
    assert [e for _, e in callback_rows(db, batch.id)] == ["discard", "finish"]
    assert batch.retry() == 1
    assert not batch.finished and not batch.discarded
    gj.perform_inline()
    # The retried job is discarded again: the batch runs its discard and finish callbacks anew.
    assert [e for _, e in callback_rows(db, batch.id)] == ["discard", "discard", "finish", "finish"]
    assert batch.reload().finished


def test_a_performing_job_knows_its_batch(db, records):
    gj.configure(execution_mode="inline")
    batch = gj.Batch(description="mine")
    with batch:
        B.Item.perform_later(1, "whose")
    B.Item.perform_later(2, "whose")
    assert J.lines(records, "whose") == [str(batch.id), "None"]


def test_batch_without_callbacks_finishes_with_its_jobs(db):
    batch = gj.Batch(description="plain")
    with batch:
        J.noop.perform_later()
    gj.perform_inline()
    assert batch.reload().succeeded


# --- exactly once under races --------------------------------------------------------------------


def _claimed_pair(db) -> tuple[gj.Batch, list[uuid.UUID], list[uuid.UUID]]:
    batch = full_batch()
    with batch:
        ids = [B.Item.perform_later(n).id for n in (1, 2)]
    owners = []
    for job_id in ids:
        owner = uuid.uuid4()
        assert job_store.claim_jobs_by_id(db, [job_id], owner)
        owners.append(owner)
    return batch, ids, owners


def _result(job_id, batch_id) -> JobResult:
    now = utcnow()
    return JobResult(id=job_id, started_at=now, ended_at=now, finished=True, batch_id=batch_id)


def test_race_both_finishes_written_before_either_check(db, database_url):
    """Each transaction sees the other's job unfinished until the other commits: the one that
    checks second (after the lock) must see the first's commit and enqueue, once."""
    batch, ids, owners = _claimed_pair(db)
    finish = "UPDATE good_jobs SET finished_at = now(), locked_by_id = NULL WHERE id = %s"
    with psycopg.connect(database_url) as a, psycopg.connect(database_url) as b:
        a.execute(finish, (ids[0],))
        b.execute(finish, (ids[1],))
        batches.after_finish(a, [_result(ids[0], batch.id)])
        a.commit()
        batches.after_finish(b, [_result(ids[1], batch.id)])
        b.commit()
    assert [e for _, e in callback_rows(db, batch.id)] == ["finish", "success"]


def test_race_second_checker_waits_for_the_lock_then_sees_the_first(db, database_url):
    batch, ids, owners = _claimed_pair(db)
    a = psycopg.connect(database_url, autocommit=True)
    b = psycopg.connect(database_url, autocommit=True)
    b_pid = b.info.backend_pid
    errors: list[BaseException] = []

    def second() -> None:
        try:
            job_store.write_results(b, [_result(ids[1], batch.id)], owners[1])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    try:
        with a.transaction():
            job_store.write_results(a, [_result(ids[0], batch.id)], owners[0])
            thread = threading.Thread(target=second)
            thread.start()
            waiting = "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s"
            assert wait_for(lambda: db.execute(waiting, (b_pid,)).fetchone()[0] == "Lock")
            assert callback_rows(db, batch.id) == []  # a saw b's job unfinished
        thread.join(30)
        assert not errors, errors
    finally:
        a.close()
        b.close()
    assert [e for _, e in callback_rows(db, batch.id)] == ["finish", "success"]


def test_claim_carries_batch_ids_and_plain_results_skip_the_hook(db):
    batch = full_batch()
    with batch:
        in_batch = B.Item.perform_later(1).id
    plain = B.Item.perform_later(2).id
    claimed = {j.id: j for j in job_store.claim_jobs_by_id(db, [in_batch, plain], uuid.uuid4())}
    assert claimed[in_batch].batch_id == batch.id and claimed[plain].batch_id is None
    assert not features.finish_wanted([_result(plain, None)])
    assert features.finish_wanted([_result(plain, None), _result(in_batch, batch.id)])


def test_a_job_added_to_a_batch_while_running_still_finishes_it(db):
    handle = B.Item.perform_later(1)
    owner = uuid.uuid4()
    (claimed,) = job_store.claim_jobs_by_id(db, [handle.id], owner)
    assert claimed.batch_id is None  # claimed before it joined
    batch = full_batch()
    batch.add(handle)
    batch.enqueue()
    assert callback_rows(db, batch.id) == []  # its one job is running
    assert job_store.write_results(db, [_result(handle.id, claimed.batch_id)], owner) == []
    assert [e for _, e in callback_rows(db, batch.id)] == ["finish", "success"]


LEDGER_BATCHES = 40


def test_many_batches_two_pools_callbacks_exactly_once(start, db, records):
    """A real supervisor with two pools: every batch has one job on queue ``left`` (pool 1) and
    one on ``right`` (pool 2), so its last two jobs always finish in two processes; all jobs wait
    at a gate that opens at once, so they finish together. A ledger of callback performs."""
    gate = records / "gate"
    made = []
    with gj.bulk():
        for n in range(LEDGER_BATCHES):
            batch = full_batch()
            with batch:
                B.Item.set(queue="left").perform_later(n, f"gate:{gate}")
                B.Item.set(queue="right").perform_later(n, f"gate:{gate}")
            made.append(batch)
    sup = start("--queues=left:4;right:4;callbacks:2")
    sup.wait_ready(pools=3)
    # 8 jobs at the gate at once: both pools (4 threads each) are inside jobs of these batches.
    assert wait_for(lambda: len(J.lines(records, "items")) >= 8, 60), sup.output()
    gate.write_text("open")
    done = "SELECT count(*) FROM good_job_batches WHERE finished_at IS NOT NULL"
    assert wait_for(lambda: db.execute(done).fetchone()[0] == LEDGER_BATCHES, 120), sup.output()
    split = db.execute(
        "SELECT j.batch_id, count(DISTINCT e.process_id) FROM good_job_executions e"
        " JOIN good_jobs j ON j.active_job_id = e.active_job_id WHERE j.batch_id IS NOT NULL"
        " GROUP BY j.batch_id"
    ).fetchall()
    assert sorted(n for _, n in split) == [2] * LEDGER_BATCHES  # two processes per batch
    lines = J.lines(records, "callbacks")
    for batch in made:
        assert [e for _, e in callback_rows(db, batch.id)] == ["finish", "success"], batch
        assert sorted(line.split()[1] for line in lines if line.startswith(str(batch.id))) == [
            "finish",
            "success",
        ]
    assert len(lines) == 2 * LEDGER_BATCHES
    sup.signal(signal.SIGTERM)
    assert sup.wait_exit() == 0


# --- bulk ------------------------------------------------------------------------------------


def test_bulk_and_batch_write_in_one_transaction(db):
    batch = full_batch()
    with gj.bulk() as collected, batch:
        for n in range(5):
            B.Item.perform_later(n)
        assert store.find(db, batch.id) is None  # nothing is written before the COPY
    assert len(collected.jobs) == 5
    xids = db.execute(
        "SELECT DISTINCT xmin::text FROM good_jobs WHERE batch_id = %s"
        " UNION SELECT xmin::text FROM good_job_batches WHERE id = %s",
        (batch.id, batch.id),
    ).fetchall()
    assert len(xids) == 1  # the jobs (one COPY) and the batch row: one transaction
    assert batch_row(db, batch.id).enqueued_at is not None
    assert (
        db.execute("SELECT count(*) FROM good_jobs WHERE batch_id = %s", (batch.id,)).fetchone()[0]
        == 5
    )


def test_bulk_batch_that_raises_writes_nothing(db):
    batch = full_batch()
    with pytest.raises(ValueError), gj.bulk(), batch:
        B.Item.perform_later(1)
        raise ValueError("no")
    assert db.execute("SELECT count(*) FROM good_jobs").fetchone()[0] == 0
    assert store.find(db, batch.id) is None


# --- cleanup and CLI ---------------------------------------------------------------------------


def test_cleanup_removes_finished_batches_as_goodjob(db, records):
    gj.configure(execution_mode="inline")
    kept_open = full_batch()
    kept_open.save()
    ok, bad = full_batch(), full_batch()
    with ok:
        B.Item.perform_later(1)
    with bad:
        B.Item.perform_later(2, "discard")
    db.execute("UPDATE good_job_batches SET finished_at = finished_at - interval '3 days'")
    settings = gj.current_settings()
    assert (
        cleanup_preserved(db, settings, before_seconds_ago=86400, include_discarded=False)[1] == 1
    )
    assert {r[0] for r in db.execute("SELECT id FROM good_job_batches")} == {kept_open.id, bad.id}
    assert cleanup_preserved(db, settings, before_seconds_ago=86400, include_discarded=True)[1] == 1
    assert {r[0] for r in db.execute("SELECT id FROM good_job_batches")} == {kept_open.id}


def _cli(*args: str) -> subprocess.CompletedProcess:
    from goodjob_mp.cli import supervisor_command

    return subprocess.run(
        supervisor_command(*args),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )


def test_cli_lists_batches_with_counts_and_state(db, records):
    gj.configure(execution_mode="inline")
    done = gj.Batch(description="done one")
    with done:
        B.Item.perform_later(1)
        B.Item.perform_later(2, "discard")
    waiting = gj.Batch(description="waiting one")
    waiting.save()
    proc = _cli("batches")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:6] == ["ID", "STATE", "JOBS", "DONE", "DISCARDED", "CALLBACKS"]
    assert lines[1].startswith(str(waiting.id)) and lines[1].split()[1:3] == ["pending", "0"]
    assert lines[2].split()[1:6] == ["discarded", "2", "2", "1", "0"]
    assert lines[2].endswith("done one")
    one = _cli("batches", f"--id={done.id}")
    assert one.returncode == 0 and "discarded" in one.stdout.splitlines()[0]
    assert one.stdout.count(" job ") == 2
    assert _cli("batches", "--id=nope").returncode != 0


def test_cli_cleanup_says_how_many_batches(db):
    assert "and 0 batch(es)" in _cli("cleanup-preserved-jobs").stdout


# --- Ruby ---------------------------------------------------------------------------------------


def test_rails_reads_a_python_batch_and_its_callback(goodjob_ruby: GoodJobRuby, db):
    batch = gj.Batch(
        on_finish="BatchCallbackJob",
        on_discard="BatchCallbackJob",
        callback_queue_name="work",
        callback_priority=3,
        description="from python",
        properties={"user_id": 7, "tags": ["a"]},
    )
    with batch:
        J.noop.perform_later()
    gj.perform_inline("default")
    seen = json.loads(goodjob_ruby.run("batches.rb", "read", str(batch.id)))
    assert seen["description"] == "from python" and seen["user_id"] == 7
    assert seen["properties"] == {"user_id": 7, "tags": ["a"]}
    assert seen["on_finish"] == "BatchCallbackJob" and seen["callback_priority"] == 3
    assert seen["enqueued"] and not seen["finished"]  # its callback has not run
    assert (seen["jobs"], seen["callback_jobs"]) == (1, 1)
    ((callback_id,),) = db.execute(
        "SELECT id FROM good_jobs WHERE batch_callback_id = %s", (batch.id,)
    ).fetchall()
    args = json.loads(goodjob_ruby.run("batches.rb", "callback_args", str(callback_id)))
    assert args == {
        "batch_class": "GoodJob::Batch",
        "batch_id": str(batch.id),
        "params": {"event": ["Symbol", "finish"]},
        "batch_callback_id": str(batch.id),
    }


def test_python_reads_a_rails_batch(goodjob_ruby: GoodJobRuby, db):
    batch_id = goodjob_ruby.run("batches.rb", "create").strip()
    batch = gj.Batch.find(batch_id)
    assert batch.description == "from rails" and batch.properties == {"user_id": 42}
    assert batch.on_finish == "BatchCallbackJob" and batch.callback_priority == 1
    assert batch.enqueued and batch.state == "running"
    assert [j.state for j in batch.jobs()] == ["queued", "queued"]


def test_goodjob_batch_lock_key_matches_sql(db):
    batch_id = uuid.uuid4()
    sql = "SELECT ('x' || substr(md5('good_job_batches-' || %s::text), 1, 16))::bit(64)::bigint"
    assert db.execute(sql, (batch_id,)).fetchone()[0] == store.lock_key(batch_id)


def test_discarding_batch_ends_as_goodjob_ends_it(db, records):
    """The rows GoodJob wrote for a batch with one discarded job (captured from GoodJob by
    tests/ruby/capture_batches.rb) against ours for the same calls."""
    lines = (REFERENCE / "good_job_batches_discard.jsonl").read_text().splitlines()
    captured = [json.loads(line) for line in lines]
    (ruby_batch,) = [c["row"] for c in captured if c["table"] == "good_job_batches"]
    ruby_jobs = [c["row"] for c in captured if c["table"] == "good_jobs"]
    batch = gj.Batch(
        on_finish="BatchEventJob",
        on_success="BatchEventJob",
        on_discard="BatchEventJob",
        callback_queue_name="callbacks",
        description="discarding batch",
        properties={"user_id": 7},
    )
    with batch:
        B.Item.set(queue="work").perform_later(1)
        B.Item.set(queue="work").perform_later(2, "discard")
    gj.perform_inline("work")  # the items; the callbacks are Ruby jobs, never performed here
    (ours,) = db.execute(
        "SELECT row_to_json(b) FROM good_job_batches b WHERE id = %s", (batch.id,)
    ).fetchone()
    set_columns = sorted(k for k, v in ruby_batch.items() if v is not None)
    # finished_at waits for the callbacks to run.
    assert sorted(k for k, v in ours.items() if v is not None) == sorted(
        set(set_columns) - {"finished_at"}
    )
    for column in ("serialized_properties", "on_finish", "on_success", "on_discard",
                   "callback_queue_name", "callback_priority", "description"):  # fmt: skip
        assert ours[column] == ruby_batch[column], column
    jobs = [
        r[0]
        for r in db.execute(
            "SELECT row_to_json(j) FROM good_jobs j WHERE batch_id = %(id)s"
            " OR batch_callback_id = %(id)s ORDER BY created_at, batch_callback_id NULLS FIRST",
            {"id": batch.id},
        )
    ]

    def shape(row: dict) -> tuple:
        args = row["serialized_params"]["arguments"]
        event = args[1]["event"]["value"] if row["batch_callback_id"] else None
        return (
            row["queue_name"],
            row["priority"],
            row["batch_id"] is not None,
            row["batch_callback_id"] is not None,
            row["error_event"],
            event,
        )

    assert sorted(map(repr, map(shape, jobs))) == sorted(map(repr, map(shape, ruby_jobs)))
    ruby_args = [
        r["serialized_params"]["arguments"][1] for r in ruby_jobs if r["batch_callback_id"]
    ]
    our_args = [r["serialized_params"]["arguments"][1] for r in jobs if r["batch_callback_id"]]
    assert sorted(map(json.dumps, our_args)) == sorted(map(json.dumps, ruby_args))


def test_goodjob_capture_script_still_agrees(goodjob_ruby: GoodJobRuby, db):
    """Re-run the capture against this database: today's GoodJob writes what the fixture holds."""
    out = goodjob_ruby.run("capture_batches.rb", GJ_LOG_LEVEL="fatal")
    fresh = [json.loads(line) for line in out.splitlines()]
    kept = [
        json.loads(line)
        for line in (REFERENCE / "good_job_batches_discard.jsonl").read_text().splitlines()
    ]

    def nulls(rows: list[dict]) -> list[tuple]:
        return sorted(
            (c["table"], tuple(sorted(k for k, v in c["row"].items() if v is None))) for c in rows
        )

    assert nulls(fresh) == nulls(kept)
