"""What the batches finish hook costs the completer: result writes with and without it.

    python3 scripts/bench_batches.py [--jobs 20000] [--chunk 1 --chunk 100] [--json out.json]

Makes its own database on the server (GOOD_JOB_TEST_SERVER_URL, else 127.0.0.1:5432). For each
chunk size (results written per ``write_results`` call, as the completer batches them), claims
and finishes ``--jobs`` jobs three ways, interleaved over 6 rounds (rotating the order):

- ``no_hook``: ``features.finish_hooks = ()`` (the single autocommit statement of main);
- ``hook_plain``: the batches hook registered, jobs in no batch (the transaction around the write);
- ``hook_batched``: jobs in batches of 100 (the lock, the unfinished check and the callbacks).

Only the writes are timed. Prints the median jobs/s of each and the ratios to ``no_hook``.
Figures are ratios to compare within one run on a shared machine. Drops the database at the end.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from goodjob_mp import features  # noqa: E402
from goodjob_mp.db import job_copy, job_store  # noqa: E402
from goodjob_mp.db.job_store import JobResult, NewJob, utcnow  # noqa: E402
from goodjob_mp.db.migrate import migrate  # noqa: E402
from scripts.bench_dashboard import server_url, with_db  # noqa: E402

BATCH_SIZE = 100


def fill(conn: psycopg.Connection, jobs: int, batched: bool) -> None:
    conn.execute("TRUNCATE good_jobs, good_job_executions, good_job_batches")
    now = utcnow()
    rows = []
    batch_id = None
    for n in range(jobs):
        if batched and n % BATCH_SIZE == 0:
            batch_id = uuid.uuid4()
            conn.execute(
                "INSERT INTO good_job_batches (id, created_at, updated_at, enqueued_at, on_finish,"
                " callback_queue_name, serialized_properties)"
                " VALUES (%s, %s, %s, %s, 'Done', 'callbacks', '{}')",
                (batch_id, now, now, now),
            )
        job_id = uuid.uuid4()
        rows.append(
            NewJob(
                job_id,
                "BenchJob",
                "default",
                0,
                {"job_class": "BenchJob", "arguments": []},
                now,
                now,
                batch_id=batch_id if batched else None,
            )  # fmt: skip
        )
    with conn.transaction():
        job_copy.copy_jobs(conn, rows)


def drain(conn: psycopg.Connection, chunk: int) -> tuple[int, float]:
    """Claim and finish everything runnable, ``chunk`` results per write; seconds in writes."""
    process_id = uuid.uuid4()
    selector = job_store.QueueSelector("include", ("default",))  # not the callbacks
    spent = 0.0
    done = 0
    while True:
        claimed = job_store.claim_jobs(conn, selector, process_id, chunk)
        if not claimed:
            return done, spent
        now = utcnow()
        results = [JobResult(id=j.id, started_at=now, ended_at=now, finished=True) for j in claimed]
        t0 = time.perf_counter()
        job_store.write_results(conn, results, process_id)
        spent += time.perf_counter() - t0
        done += len(results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--chunk", type=int, action="append")
    parser.add_argument("--json")
    args = parser.parse_args()
    chunks = args.chunk or [1, 100]
    server = server_url()
    dbname = f"goodjob_bench_batches_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{dbname}"')
    report: dict[str, dict[str, float]] = {}
    hooks = features.finish_hooks
    try:
        with psycopg.connect(with_db(server, dbname), autocommit=True) as conn:
            migrate(conn)
            for chunk in chunks:
                jobs = args.jobs if chunk > 1 else min(args.jobs, 1000)
                rates: dict[str, list[float]] = {
                    "no_hook": [],
                    "hook_plain": [],
                    "hook_batched": [],
                }
                order = list(rates)
                for round_ in range(6):
                    # Each round in another order: no case always follows the same neighbour.
                    for name in order[round_ % 3 :] + order[: round_ % 3]:
                        features.finish_hooks = () if name == "no_hook" else hooks
                        fill(conn, jobs, batched=name == "hook_batched")
                        done, spent = drain(conn, chunk)
                        rates[name].append(done / spent)
                features.finish_hooks = hooks
                medians = {name: statistics.median(v) for name, v in rates.items()}
                report[f"chunk_{chunk}"] = {
                    **{f"{k}_jobs_per_s": round(v) for k, v in medians.items()},
                    "hook_plain_ratio": round(medians["hook_plain"] / medians["no_hook"], 3),
                    "hook_batched_ratio": round(medians["hook_batched"] / medians["no_hook"], 3),
                }
    finally:
        features.finish_hooks = hooks
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
