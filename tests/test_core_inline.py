import datetime as dt
import json
import os
from decimal import Decimal

import psycopg
import pytest

import goodjob_mp as gj
from tests import jobs_for_tests as J


@pytest.fixture()
def records(tmp_path, monkeypatch):
    monkeypatch.setenv(J.RECORD_DIR_ENV, str(tmp_path))
    return tmp_path


def test_perform_later_writes_goodjob_row(db):
    handle = J.remember.set(queue="mail", priority=-5, labels=["a", " b ", "a", ""]).perform_later(
        "x", extra="y"
    )
    row = db.execute(
        "SELECT queue_name, priority, job_class, labels, serialized_params, active_job_id"
        " FROM good_jobs WHERE id = %s",
        (handle.id,),
    ).fetchone()
    assert row[0] == "mail" and row[1] == -5
    assert row[2] == "tests.jobs_for_tests.remember"
    assert row[3] == ["a", "b"]
    params = row[4]
    assert params["arguments"] == ["x", {"extra": "y", "_aj_ruby2_keywords": ["extra"]}]
    assert params["job_id"] == str(handle.id) and row[5] == handle.id


def test_unserialisable_argument_is_refused_and_nothing_written(db):
    with pytest.raises(gj.SerializationError) as info:
        J.remember.perform_later(object())
    assert "object" in str(info.value)
    assert db.execute("SELECT count(*) FROM good_jobs").fetchone()[0] == 0


def test_inline_mode_performs_on_enqueue(db, records):
    gj.configure(execution_mode="inline")
    J.remember.perform_later("now", extra="!")
    assert J.lines(records, "remember") == ["now!"]
    row = db.execute("SELECT finished_at, error, executions_count FROM good_jobs").fetchone()
    assert row[0] is not None and row[1] is None and row[2] == 1
    assert db.execute("SELECT count(*) FROM good_job_executions").fetchone()[0] == 1


def test_retry_on_waits_then_succeeds(db, records):
    handle = J.Flaky.perform_later("f", 1)
    assert gj.perform_inline() == 1
    row = db.execute(
        "SELECT finished_at, error, error_event, scheduled_at, serialized_params, updated_at"
        " FROM good_jobs WHERE id=%s",
        (handle.id,),
    ).fetchone()
    assert row[0] is None and row[2] == 3
    assert row[1] == "tests.jobs_for_tests.TransientError: temporary failure (attempt 1)"
    wait = (row[3] - row[5]).total_seconds()
    assert 0.19 <= wait <= 0.21  # the configured wait, jitter 0
    assert row[4]["executions"] == 1
    assert row[4]["exception_executions"] == {"[TransientError]": 1}
    assert gj.perform_inline() == 0  # not due yet
    import time

    time.sleep(0.25)
    assert gj.perform_inline() == 1
    row = db.execute(
        "SELECT finished_at, error, error_event, executions_count FROM good_jobs WHERE id=%s",
        (handle.id,),
    ).fetchone()
    assert row[0] is not None and row[1] is None and row[2] is None and row[3] == 2
    events = [
        r[0]
        for r in db.execute(
            "SELECT error_event FROM good_job_executions"
            " WHERE active_job_id=%s ORDER BY created_at",
            (handle.id,),
        )
    ]
    assert events == [3, None]
    assert J.lines(records, "flaky") == ["f:1", "f:2"]


def test_retry_stops_after_attempts(db, records):
    handle = J.Flaky.perform_later("g", 99)
    import time

    for _ in range(3):
        gj.perform_inline()
        time.sleep(0.25)
    row = db.execute(
        "SELECT finished_at, error_event FROM good_jobs WHERE id=%s", (handle.id,)
    ).fetchone()
    assert row[0] is not None and row[1] == 4
    assert J.lines(records, "flaky") == ["g:1", "g:2", "g:3"]


def test_discard_on_and_unhandled(db):
    d = J.Discarder.perform_later(123)
    b = J.Boom.perform_later()
    assert gj.perform_inline() == 2
    rows = dict(
        db.execute("SELECT id, (error, error_event, finished_at IS NOT NULL) FROM good_jobs")
    )
    assert rows[d.id] == ("tests.jobs_for_tests.GoneError: record 123 no longer exists", "5", "t")
    assert rows[b.id] == ("RuntimeError: boom", "1", "t")


def test_unknown_job_class_is_discarded_and_kept(db):
    db.execute(
        "INSERT INTO good_jobs (id, active_job_id, job_class, queue_name, priority,"
        " serialized_params, scheduled_at, created_at, updated_at)"
        " VALUES (gen_random_uuid(), gen_random_uuid(), 'NoSuchJob', 'default', 0,"
        " %s, now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC')",
        (json.dumps({"job_class": "NoSuchJob", "arguments": []}),),
    )
    assert gj.perform_inline() == 1
    row = db.execute("SELECT finished_at, error, error_event FROM good_jobs").fetchone()
    assert row[0] is not None and row[2] == 5
    assert row[1].startswith("UnknownJobClassError: no job class 'NoSuchJob'")
    assert gj.perform_inline() == 0


def test_unreadable_payload_is_discarded_and_kept(db):
    db.execute(
        "INSERT INTO good_jobs (id, active_job_id, job_class, queue_name, priority,"
        " serialized_params, scheduled_at, created_at, updated_at)"
        " VALUES (gen_random_uuid(), gen_random_uuid(), 'tests.jobs_for_tests.remember',"
        " 'default', 0, %s, now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC',"
        " now() AT TIME ZONE 'UTC')",
        (json.dumps({"job_class": "x", "arguments": [{"_aj_serialized": "Nope::Serializer"}]}),),
    )
    assert gj.perform_inline() == 1
    row = db.execute("SELECT finished_at, error, error_event FROM good_jobs").fetchone()
    assert row[0] is not None and row[2] == 5 and row[1].startswith("DeserializationError")


def test_interrupted_job_is_recorded_and_rerun(db, records):
    handle = J.remember.perform_later("again")
    # A process claimed and started it, then died: performed_at set, lock handed back.
    db.execute(
        "UPDATE good_jobs SET performed_at = (now() AT TIME ZONE 'UTC') - interval '5 seconds',"
        " executions_count = 1 WHERE id = %s",
        (handle.id,),
    )
    assert gj.perform_inline() == 1
    assert J.lines(records, "remember") == ["again"]
    execs = db.execute(
        "SELECT error, error_event FROM good_job_executions WHERE active_job_id=%s"
        " ORDER BY created_at",
        (handle.id,),
    ).fetchall()
    assert execs[0][1] == 0 and execs[0][0].startswith(
        "GoodJob::InterruptedError: Interrupted after starting perform at"
    )
    assert execs[1] == (None, None)


def test_poison_job_discarded_after_max_interrupts(db, records):
    gj.configure(max_interrupts=2)
    handle = J.remember.perform_later("poison")
    for _ in range(2):
        db.execute(
            "UPDATE good_jobs SET performed_at = now() AT TIME ZONE 'UTC', locked_by_id = NULL"
            " WHERE id = %s",
            (handle.id,),
        )
        gj.perform_inline()
        db.execute(
            "UPDATE good_jobs SET finished_at = NULL, error = NULL, error_event = NULL"
            " WHERE id = %s AND error_event IS NULL",
            (handle.id,),
        )
    row = db.execute(
        "SELECT finished_at, error_event, error FROM good_jobs WHERE id=%s", (handle.id,)
    ).fetchone()
    assert row[1] == 5 and "discarded after 2 interrupted attempts" in row[2]


def test_transactional_enqueue_rolls_back(db, database_url):
    with psycopg.connect(database_url) as conn:
        with conn.transaction(force_rollback=True), gj.using_connection(conn):
            J.remember.perform_later("never")
        with conn.transaction(), gj.using_connection(conn):
            kept = J.remember.perform_later("kept")
    ids = [r[0] for r in db.execute("SELECT id FROM good_jobs")]
    assert ids == [kept.id]


def test_bulk_enqueue_one_copy_and_rollback_on_error(db):
    with gj.bulk() as b:
        for i in range(50):
            J.remember.perform_later(str(i))
        assert db.execute("SELECT count(*) FROM good_jobs").fetchone()[0] == 0
    assert len(b.jobs) == 50
    assert db.execute("SELECT count(*) FROM good_jobs").fetchone()[0] == 50
    with pytest.raises(RuntimeError), gj.bulk():
        J.remember.perform_later("lost")
        raise RuntimeError("abort")
    assert db.execute("SELECT count(*) FROM good_jobs").fetchone()[0] == 50


def test_priority_smaller_runs_first_and_wait(db, records):
    J.remember.set(priority=10).perform_later("late")
    J.remember.set(priority=-10).perform_later("early")
    J.remember.set(wait=3600).perform_later("future")
    when = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)
    J.remember.set(wait_until=when).perform_later("tomorrow")
    gj.perform_inline()
    assert J.lines(records, "remember") == ["early", "late"]


def test_perform_now_runs_here(records):
    J.remember.perform_now("here")
    assert J.lines(records, "remember") == ["here"]


def test_preserve_false_deletes_finished(db):
    gj.configure(preserve_job_records=False)
    J.noop.perform_later()
    J.Boom.perform_later()
    gj.perform_inline()
    assert db.execute("SELECT count(*) FROM good_jobs").fetchone()[0] == 0
    gj.configure(preserve_job_records="on_unhandled_error")
    J.noop.perform_later()
    b = J.Boom.perform_later()
    gj.perform_inline()
    assert [r[0] for r in db.execute("SELECT id FROM good_jobs")] == [b.id]


def test_decimal_and_datetime_round_trip(db, records):
    got = {}

    @gj.job
    def typed(amount, when, *, day):
        got.update(amount=amount, when=when, day=day)

    when = dt.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=dt.timezone.utc)
    typed.perform_later(Decimal("12.34"), when, day=dt.date(2024, 12, 31))
    gj.perform_inline()
    assert got == {"amount": Decimal("12.34"), "when": when, "day": dt.date(2024, 12, 31)}


def test_env_database_url_is_used():
    assert os.environ["GOOD_JOB_DATABASE_URL"]


def test_bulk_copy_writes_awkward_values_exactly_as_a_single_insert(db):
    """COPY rows are formatted by hand: tabs, newlines, backslashes, quotes, commas, braces and
    non-ASCII text in arguments, labels and queue names must arrive exactly as INSERT writes
    them."""
    nasty = 'tab\there\nnew\\line "quoted" {brace},comma ünï \\N \r'
    labels = ["a,b", 'q"uote', "back\\slash", "{x}", "tab\tlabel", "NULL"]
    job = J.remember.set(queue="odd\tqueue\\name", labels=labels, priority=-3)
    single = job.perform_later(nasty, extra=nasty)
    with gj.bulk() as batch:
        job.perform_later(nasty, extra=nasty)
    bulk_id = batch.jobs[0].id
    columns = "job_class, queue_name, priority, labels, serialized_params->'arguments'"
    query = f"SELECT {columns} FROM good_jobs WHERE id = %s"
    one = db.execute(query, (single.id,)).fetchone()
    other = db.execute(query, (bulk_id,)).fetchone()
    assert one == other
    assert one[1] == "odd\tqueue\\name"
    assert one[3] == labels
    assert one[4][0] == nasty
