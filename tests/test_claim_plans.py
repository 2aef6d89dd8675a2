"""Claims behind a backlog read the pool's own queues by index (issue 15.4).

The plans are read the way the fetcher runs the claim: the worker's claim statement on a
connection opened as the fetcher opens it, run fifteen times (psycopg would prepare a statement
after five runs, and the server may switch a prepared statement to a generic plan after five
more). The claim is never prepared, so each run is planned for its own values, and that plan is
EXPLAINed. Without the per-queue claim the planner walks the priority index through the whole
backlog of another queue, enqueued earlier; a generic plan cannot see the LIMIT and may
hash-join a Seq Scan of good_jobs.
"""

from __future__ import annotations

import uuid

import psycopg
import pytest

from goodjob_mp.config import load_settings
from goodjob_mp.db import job_store
from goodjob_mp.db.connection import connect
from goodjob_mp.worker.worker import Worker
from tests import jobs_for_tests as J

BACKLOG = 20_000
SERVED = 2_000
LIMIT = 50
QUEUE_INDEX = "index_good_jobs_on_queue_name_for_dequeue_unlocked"
PRIORITY_INDEX = "index_good_jobs_for_candidate_dequeue_unlocked"


def _insert(db: psycopg.Connection, n: int, queue: str, minutes_ago: int) -> None:
    # A class this process knows, so only the queue tells the claim to skip the row.
    db.execute(
        "INSERT INTO good_jobs (id, active_job_id, job_class, queue_name, priority,"
        " serialized_params, scheduled_at, created_at, updated_at)"
        " SELECT gen_random_uuid(), gen_random_uuid(), %s, %s, 0, '{}',"
        " now() AT TIME ZONE 'UTC' - make_interval(mins => %s)"
        " + i * interval '1 ms', now(), now()"
        " FROM generate_series(1, %s) i",
        (J.noop.job_class_name, queue, minutes_ago, n),
    )


@pytest.fixture()
def backlog(db):
    _insert(db, BACKLOG, "backlog", 60)  # older: first in priority order
    for queue in ("latency", "other"):
        _insert(db, SERVED, queue, 10)
    db.execute("VACUUM ANALYZE good_jobs")
    return db


@pytest.mark.parametrize("queues", ["latency", "latency,other", "+other,latency", "-backlog"])
def test_claim_behind_a_backlog_is_planned_per_run_and_reads_the_queue_index(backlog, queues):
    worker = Worker(load_settings({"queues": queues, "max_threads": 2}))
    statement = worker._claim_statement  # what the fetcher runs
    with connect() as conn:  # as the fetcher connects
        process_id = uuid.uuid4()
        for _ in range(15):
            claimed = job_store.claim_jobs(
                conn, worker.selector, process_id, LIMIT, statement=statement
            )
            assert len(claimed) == LIMIT, queues
            assert {j.queue_name for j in claimed} <= {"latency", "other"}, queues
        prepared = conn.execute(
            "SELECT statement FROM pg_prepared_statements WHERE statement LIKE '%SKIP LOCKED%'"
        ).fetchall()
        assert prepared == [], "a prepared claim may switch to a generic plan"
        params = {
            "process_id": process_id,
            "now": job_store.utcnow(),
            "limit": LIMIT,
            "queues": list(worker.selector.names),
            **statement.params(),
        }
        query = psycopg.ClientCursor(conn).mogrify(statement.sql.as_string(conn), params)
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + query))
    assert QUEUE_INDEX in plan, plan
    assert PRIORITY_INDEX not in plan, plan
    assert "Seq Scan on good_jobs" not in plan, plan


@pytest.mark.parametrize("advisory_locks", [False, True])
@pytest.mark.parametrize(
    ("queues", "expected"),
    [
        ("latency", ["latency-5", "latency-3", "latency-1"]),
        ("latency,other", ["other-2", "latency-5", "latency-3"]),  # run order across queues
        ("+other,latency", ["other-2", "latency-5", "latency-3"]),  # all of 'other' first
        ("+latency,other", ["latency-5", "latency-3", "latency-1"]),
        ("-backlog", ["other-2", "latency-5", "latency-3"]),
        ("-latency,other", ["backlog-30", "backlog-20"]),
    ],
)
def test_each_claim_shape_takes_the_first_jobs_of_its_queues(db, queues, expected, advisory_locks):
    for queue, priority, minutes_ago in [
        ("backlog", 5, 30),
        ("backlog", 5, 20),
        ("latency", 1, 5),
        ("latency", 1, 1),
        ("latency", 1, 3),
        ("other", 0, 2),
    ]:
        db.execute(
            "INSERT INTO good_jobs (id, active_job_id, job_class, queue_name, priority,"
            " serialized_params, scheduled_at, created_at, updated_at)"
            " SELECT gen_random_uuid(), gen_random_uuid(), %s, %s, %s,"
            " jsonb_build_object('arguments', jsonb_build_array(%s::text)),"
            " now() AT TIME ZONE 'UTC' - make_interval(mins => %s), now(), now()",
            (J.noop.job_class_name, queue, priority, f"{queue}-{minutes_ago}", minutes_ago),
        )
    worker = Worker(load_settings({"queues": queues}))
    statement = job_store.ClaimStatement(
        worker.selector, worker._conditions, advisory_locks=advisory_locks
    )
    with connect() as conn:
        claimed = job_store.claim_jobs(conn, worker.selector, uuid.uuid4(), 3, statement=statement)
        if advisory_locks:
            assert job_store.unlock_jobs(conn, [j.id for j in claimed]) == len(claimed)
    assert [j.serialized_params["arguments"][0] for j in claimed] == expected
