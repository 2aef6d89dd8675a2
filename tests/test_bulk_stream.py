"""bulk() on this process's own connection writes full chunks while the block runs, inside
one transaction: memory stays flat, and the block is still all-or-nothing."""

from __future__ import annotations

import gc
import tracemalloc

import pytest

import goodjob_mp as gj
from goodjob_mp.enqueue import BULK_CHUNK
from tests.waiting import wait_for


@gj.job(queue="bulk")
def tiny(n: int) -> None:
    pass


def count(db) -> int:
    return db.execute("SELECT count(*) FROM good_jobs").fetchone()[0]


def _peak_bytes(n: int) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        with gj.bulk():
            for i in range(n):
                tiny.perform_later(i)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_bulk_memory_stays_flat_as_the_block_grows(db):
    """Only the handles stay (a few hundred bytes each); rows, their JSON and the COPY buffer
    go chunk by chunk. Kept until the block's end, each job cost about 1.25 kB."""
    _peak_bytes(BULK_CHUNK)  # warm-up: connection, prepared adapters
    small = _peak_bytes(5_000)
    large = _peak_bytes(50_000)
    per_extra_job = (large - small) / 45_000
    assert per_extra_job < 600, f"{per_extra_job:.0f} bytes per job"
    assert count(db) == 55_000 + BULK_CHUNK


def copied_so_far(db) -> int:
    """Rows the server has taken from the COPY under way (any backend's)."""
    found = db.execute("SELECT sum(tuples_processed) FROM pg_stat_progress_copy").fetchone()[0]
    return int(found or 0)


def test_rows_reach_the_server_during_the_block_and_commit_at_its_end(db):
    with gj.bulk() as b:
        for i in range(2 * BULK_CHUNK + 5):
            tiny.perform_later(i)
        assert b.rows == []  # nothing held: no enqueue hook wants these rows
        # The server stores them as they come (all but the last piece, not sent yet).
        assert wait_for(lambda: copied_so_far(db) >= 2 * BULK_CHUNK - 100)
        assert count(db) == 0  # ... but nothing is committed
    assert count(db) == 2 * BULK_CHUNK + 5
    assert len(b.jobs) == 2 * BULK_CHUNK + 5
    ids = {r[0] for r in db.execute("SELECT id FROM good_jobs")}
    assert ids == {h.id for h in b.jobs}


def test_an_error_after_chunks_were_written_writes_nothing(db):
    with pytest.raises(RuntimeError), gj.bulk():
        for i in range(BULK_CHUNK + 1):
            tiny.perform_later(i)
        raise RuntimeError("abort")
    assert count(db) == 0
    with gj.bulk():  # the connection went back to the pool usable
        tiny.perform_later(1)
    assert count(db) == 1


def test_enqueue_events_of_a_streamed_bulk_fire_after_the_commit(db):
    seen: list[int] = []
    unsubscribe = gj.subscribe("enqueue", lambda **payload: seen.append(count(db)))
    try:
        with gj.bulk() as b:
            for i in range(BULK_CHUNK + 3):
                tiny.perform_later(i)
            assert seen == []
    finally:
        unsubscribe()
    assert seen == [BULK_CHUNK + 3] * (BULK_CHUNK + 3)
    assert len(b.jobs) == BULK_CHUNK + 3


@pytest.mark.parametrize(
    ("job_class", "queue", "priority", "arguments", "scheduled"),
    [
        ("app.Plain", "default", None, [], None),
        ("app.Plain", "default", 0, [1, "x", None, True], "2026-01-02T03:04:05"),
        ('we"ird\\Näme', "tab\tq\nü", -5, [{"k": [1.5, 1e300, "\x7f"]}], None),
        ("app.Flag", "default", True, [], None),  # True is not 1 in the JSON
    ],
)
def test_envelope_json_is_the_dumps_of_the_envelope(
    job_class, queue, priority, arguments, scheduled
):
    import datetime as dt
    import uuid

    from goodjob_mp.enqueue import build_serialized_params, envelope_json
    from goodjob_mp.serialization import dumps

    when = dt.datetime(2026, 1, 1, 0, 0, 0)
    at = dt.datetime.fromisoformat(scheduled) if scheduled else None
    job_id = uuid.uuid4()
    args = (job_class, job_id, queue, priority, arguments, when, at)
    assert envelope_json(*args) == dumps(build_serialized_params(*args))
    if priority is True:
        assert envelope_json(job_class, job_id, queue, 1, [], when, None).count('"priority":1,')


def test_an_enqueue_feature_that_changes_the_params_is_written_as_changed(db):
    from goodjob_mp import features

    def stamp(conn, rows):
        for row in rows:
            row.serialized_params["locale"] = "fr"
        return rows

    remove = features.add_enqueue_hook(stamp)
    try:
        tiny.perform_later(1)
        with gj.bulk():
            tiny.perform_later(2)
    finally:
        remove()
    locales = [r[0] for r in db.execute("SELECT serialized_params->>'locale' FROM good_jobs")]
    assert locales == ["fr", "fr"]


# --- with main's enqueue features (batches, concurrency limits, events) ------------------------


def test_a_batch_spanning_streamed_chunks_is_written_in_the_streams_transaction(db):
    """The batch's on_write action runs on the stream's connection after the last chunk: the
    jobs of every chunk and the batch row share one transaction, and the batch sees them all."""
    from goodjob_mp.db import batches as store

    batch = gj.Batch(description="streamed")
    with gj.bulk() as b, batch:
        for i in range(BULK_CHUNK + 3):
            tiny.perform_later(i)
        assert b.rows == []  # sent as they came
    xids = db.execute(
        "SELECT DISTINCT xmin::text FROM good_jobs WHERE batch_id = %s"
        " UNION SELECT xmin::text FROM good_job_batches WHERE id = %s",
        (batch.id, batch.id),
    ).fetchall()
    assert len(xids) == 1
    row = store.find(db, batch.id)
    assert row is not None and row.enqueued_at is not None and row.jobs_finished_at is None
    in_batch = "SELECT count(*) FROM good_jobs WHERE batch_id = %s"
    assert db.execute(in_batch, (batch.id,)).fetchone()[0] == BULK_CHUNK + 3


def test_a_bulk_block_with_only_a_batch_action_opens_the_stream_for_it(db):
    from goodjob_mp.db import batches as store

    batch = gj.Batch(description="empty")
    with gj.bulk():
        batch.enqueue()  # deferred to the block's end: no job, no chunk
    row = store.find(db, batch.id)
    assert row is not None and row.enqueued_at is not None
    assert row.finished_at is not None  # no jobs: finished at once, as in GoodJob


def test_enqueue_limits_apply_across_streamed_chunks_and_mark_their_handles(db):
    """The hook runs on each chunk in the stream's transaction, so it counts rows of earlier
    chunks; refused rows' handles say so, and only written rows fire enqueue events."""
    from goodjob_mp import events
    from tests import jobs_for_concurrency as J

    late = BULK_CHUNK + 1
    seen: list = []
    unsubscribe = events.subscribe("enqueue", lambda **e: seen.append(e["job_id"]))
    try:
        with gj.bulk() as b:
            for i in range(BULK_CHUNK + 5):
                J.report.perform_later("x" if i in (0, 1, 2, late) else f"k{i}")
            assert len(b.rows) == 5  # the first chunk (with one refusal) is sent
    finally:
        unsubscribe()
    refused = [i for i, h in enumerate(b.jobs) if not h.enqueued]
    assert refused == [2, late]  # the limit is 2 per key; the second chunk sees the first's
    assert {b.jobs[i].refused for i in refused} == {"limit"}
    assert len(b.jobs) == BULK_CHUNK + 5
    ids = {r[0] for r in db.execute("SELECT id FROM good_jobs")}
    assert ids == {h.id for h in b.jobs if h.enqueued}
    assert set(seen) == ids and len(seen) == len(ids)


def test_rows_a_hook_wants_wait_for_it_while_the_others_stream_past(db):
    """Limited and plain jobs alternate: the plain ones go straight into the COPY, the limited
    ones are held until a chunk of them is full, and each refusal marks its own handle."""
    from tests import jobs_for_concurrency as J

    with gj.bulk() as b:
        for i in range(BULK_CHUNK + 2):
            J.report.perform_later("y" if i in (0, 1, 5, BULK_CHUNK + 1) else f"m{i}")
            tiny.perform_later(i)
        assert len(b.rows) == 2  # the limited rows of the second chunk
    assert [i for i, h in enumerate(b.jobs) if not h.enqueued] == [10, 2 * (BULK_CHUNK + 1)]
    assert all(b.jobs[i].job_class.endswith("tiny") for i in range(1, len(b.jobs), 2))
    ids = {r[0] for r in db.execute("SELECT id FROM good_jobs")}
    assert ids == {h.id for h in b.jobs if h.enqueued}


ODD_TEXT = ["tab\there", "new\nline\r", "back\\slash", "\\N", 'q"uote', "ü ☃ \x7f", ""]


def test_text_that_copy_must_escape_arrives_as_a_single_insert_writes_it(db):
    """Both write paths store the same columns for names, labels and arguments full of the
    characters COPY's text format escapes (and of those an array literal quotes)."""
    import datetime as dt

    labels = [*ODD_TEXT[:-1], "a,b", "{brace}", "NULL", " spaced "]
    when = dt.datetime(2030, 1, 2, 3, 4, 5, 600000, tzinfo=dt.timezone.utc)
    batch = gj.Batch(description="odd")

    def enqueue_all() -> list:
        return [
            gj.enqueue(
                f"Odd{i}\\{text}",
                [text, {text: [text]}],
                {"k": text},
                queue=f"q{text}",
                labels=labels,
                wait_until=when,
                priority=-i,
            )
            for i, text in enumerate(ODD_TEXT)
        ]

    single = enqueue_all()
    with gj.bulk(), batch:
        copied = enqueue_all()
    columns = (
        "job_class, queue_name, priority, serialized_params - 'job_id' - 'enqueued_at',"
        " scheduled_at, labels, cron_key, cron_at, concurrency_key"
    )
    read = f"SELECT {columns}, batch_id FROM good_jobs WHERE id = %s"
    for one, other in zip(single, copied, strict=True):
        written = db.execute(read, (one.id,)).fetchone()
        streamed = db.execute(read, (other.id,)).fetchone()
        assert streamed[:-1] == written[:-1]
        assert written[-1] is None and streamed[-1] == batch.id
    assert written[5] == [label.strip() for label in labels]  # GoodJob strips labels
    assert written[4] == when.replace(tzinfo=None)


def test_the_concurrency_hook_keeps_the_prebuilt_params_json(db):
    """The concurrency hook only reads the arguments, so the JSON built at enqueue is written
    as it is (not encoded a second time); the row is the same either way."""
    from goodjob_mp import features
    from goodjob_mp.db.job_store import NewJob
    from goodjob_mp.enqueue import build_job
    from goodjob_mp.features import concurrency_io
    from goodjob_mp.jobs import EnqueueOptions
    from tests import jobs_for_concurrency as J

    J.Sync.perform_later(1)  # installs the hook (the first enqueue of a limited class)
    assert concurrency_io.enqueue_hook in features.enqueue_hooks
    assert not features.params_may_change()
    row: NewJob = build_job(J.Sync, (2,), {}, EnqueueOptions())
    built = row.params_json
    assert built is not None
    with db.transaction():
        assert job_store_insert(db, row)
    assert row.params_json is built and row.concurrency_key == "sync-2"
    stored = db.execute("SELECT serialized_params FROM good_jobs WHERE id = %s", (row.id,))
    assert stored.fetchone()[0] == row.serialized_params


def job_store_insert(db, row) -> bool:
    from goodjob_mp.db.job_store import insert_job

    return insert_job(db, row)
