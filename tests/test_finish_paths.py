"""write_results has a lean statement for all-succeeded batches: it must write exactly the rows
the general statement writes for a succeeded attempt (GoodJob's columns, an executions row)."""

from __future__ import annotations

import datetime as dt
import uuid

import goodjob_mp as gj
from goodjob_mp.db import job_store
from goodjob_mp.queues import parse_queue_selector


@gj.job(queue="finish")
def plain(n: int) -> None:
    pass


JOB_COLUMNS = (
    "queue_name, priority, serialized_params, scheduled_at, performed_at, finished_at, error, "
    "error_event, locked_by_id, locked_at, lock_type, executions_count, updated_at"
)
EXECUTION_COLUMNS = (
    "created_at, updated_at, job_class, queue_name, serialized_params, scheduled_at, "
    "finished_at, error, error_event, error_backtrace, process_id, duration"
)


def _claim(db, n: int, process_id: uuid.UUID) -> list[job_store.ClaimedJob]:
    selector = parse_queue_selector("finish")
    return job_store.claim_jobs(db, selector, process_id, n)


def _rows(db, job_id: uuid.UUID) -> tuple:
    job = db.execute(f"SELECT {JOB_COLUMNS} FROM good_jobs WHERE id = %s", (job_id,)).fetchone()
    executions = db.execute(
        f"SELECT {EXECUTION_COLUMNS} FROM good_job_executions WHERE active_job_id = "
        "(SELECT active_job_id FROM good_jobs WHERE id = %s)",
        (job_id,),
    ).fetchall()
    return job, executions


def _normalised(row: tuple, job: job_store.ClaimedJob) -> tuple:
    """The row without what differs between two enqueues of the same job."""
    params = dict(row[2])
    params.pop("job_id"), params.pop("enqueued_at"), params.pop("arguments")
    return (row[0], row[1], params, *row[3:])


def test_an_all_succeeded_batch_writes_what_the_general_statement_writes(db):
    process_id = uuid.uuid4()
    started = dt.datetime(2026, 1, 2, 3, 4, 5, 123456)
    ended = started + dt.timedelta(milliseconds=7)
    plain.perform_later(1)
    [lean_job] = _claim(db, 1, process_id)
    assert (
        job_store.write_results(
            db, [job_store.JobResult(lean_job.id, started, ended, True)], process_id
        )
        == []
    )
    plain.perform_later(2)
    plain.perform_later(3)
    general_job, failed_job = _claim(db, 2, process_id)
    results = [
        job_store.JobResult(general_job.id, started, ended, True),
        # an error in the batch: the general statement writes both
        job_store.JobResult(
            failed_job.id,
            started,
            ended,
            True,
            error="E: x",
            error_event=3,
            backtrace=["a.py:1"],
            outcome="discarded",
        ),
    ]
    assert job_store.write_results(db, results, process_id) == []
    lean_row, lean_exec = _rows(db, lean_job.id)
    general_row, general_exec = _rows(db, general_job.id)
    assert lean_row[5] == ended and lean_row[6] is None and lean_row[8] is None
    # scheduled_at and performed_at differ by enqueue and claim time only
    same = lambda row: row[:3] + row[5:]  # noqa: E731
    assert same(_normalised(lean_row, lean_job)) == same(_normalised(general_row, general_job))
    assert len(lean_exec) == len(general_exec) == 1
    assert lean_exec[0][:4] + lean_exec[0][6:] == general_exec[0][:4] + general_exec[0][6:]
    assert lean_exec[0][9] == [] and lean_exec[0][10] == process_id
    assert lean_exec[0][11] == dt.timedelta(milliseconds=7)


def test_a_lean_finish_skips_jobs_no_longer_locked_by_this_process(db):
    process_id = uuid.uuid4()
    plain.perform_later(1)
    [job] = _claim(db, 1, process_id)
    db.execute("UPDATE good_jobs SET locked_by_id = NULL")
    now = job_store.utcnow()
    result = job_store.JobResult(job.id, now, now, True)
    assert job_store.write_results(db, [result], process_id) == [result]
    assert db.execute("SELECT count(*) FROM good_job_executions").fetchone()[0] == 0


def test_a_lean_finish_of_batch_jobs_advances_the_batch(db):
    """The lean statement returns the rows' batch ids as the general one does: a batch job that
    the claim did not know was in a batch (added after the claim) still finishes its batch."""
    from goodjob_mp.db import batches as store

    process_id = uuid.uuid4()
    batch = gj.Batch(description="lean")
    with batch:
        plain.perform_later(1)
    [job] = _claim(db, 1, process_id)
    assert job.batch_id == batch.id
    now = job_store.utcnow()
    # batch ids left unset on the result: write_results takes them from the row it wrote
    result = job_store.JobResult(job.id, now, now, True, preserve=True)
    assert job_store.write_results(db, [result], process_id) == []
    assert result.batch_id == batch.id
    row = store.find(db, batch.id)
    assert row is not None and row.jobs_finished_at is not None and row.finished_at is not None


def test_a_mixed_finish_reports_exactly_the_lost_results_and_the_rows_batch_ids(db):
    """One write with plain, batch and no-longer-ours results: it returns exactly the results
    that matched no row of ours, and sets each written result's batch ids from its row (a plain
    row: none). Both statements: preserved rows (updated) and, with preservation off, deleted
    rows."""
    process_id = uuid.uuid4()
    batch = gj.Batch(description="mixed")
    plain.perform_later(1)
    plain.perform_later(2)
    with batch:
        plain.perform_later(3)
    plain.perform_later(4)
    plain.perform_later(5)
    jobs = _claim(db, 5, process_id)
    assert len(jobs) == 5
    by_arg = {j.serialized_params["arguments"][0]: j for j in jobs}
    lost_ids = [by_arg[2].id, by_arg[5].id]
    db.execute("UPDATE good_jobs SET locked_by_id = NULL WHERE id = ANY(%s)", (lost_ids,))
    now = job_store.utcnow()
    kept = {n: job_store.JobResult(by_arg[n].id, now, now, True) for n in (1, 2, 3)}
    dropped = {n: job_store.JobResult(by_arg[n].id, now, now, True, preserve=False) for n in (4, 5)}

    assert job_store.write_results(db, list(kept.values()), process_id) == [kept[2]]
    assert (kept[1].batch_id, kept[3].batch_id) == (None, batch.id)
    assert job_store.write_results(db, list(dropped.values()), process_id) == [dropped[5]]
    assert dropped[4].batch_id is None

    rows = dict(db.execute("SELECT id, finished_at IS NOT NULL FROM good_jobs").fetchall())
    assert rows == {
        by_arg[1].id: True,
        by_arg[2].id: False,
        by_arg[3].id: True,
        by_arg[5].id: False,
    }
    executions = db.execute("SELECT count(*) FROM good_job_executions").fetchone()[0]
    assert executions == 2  # the two preserved rows written, none for the lost or deleted ones
