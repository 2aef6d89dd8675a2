"""What GoodJob's per-job advisory locks cost the hot path's SQL, measured A/B interleaved.

    python scripts/bench_advisory_locks.py [--batch 400] [--rounds 40] [--json out.json]

One cycle is what a worker does for a batch of no-op jobs: claim ``--batch`` jobs (one
statement), write their results (one statement) and, with locks, release them (one statement).
Cycles with and without locks alternate (ABBA), so a machine whose load drifts affects both
alike; the figure is the ratio of the medians. Python-side work (performing the jobs) is left
out, so this is the worst case: real jobs dilute it. ``bench.py --drain-only --advisory-locks``
measures whole drains, which on a shared machine vary more than the difference.

Creates its own database on the server of GOOD_JOB_DATABASE_URL / DATABASE_URL (else
postgresql://postgres@127.0.0.1:5432/postgres) and drops it afterwards. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import psycopg  # noqa: E402
from bench import create_database, drop_database, server_url  # noqa: E402

from goodjob_mp.db import job_copy, job_store  # noqa: E402
from goodjob_mp.db.migrate import migrate  # noqa: E402
from goodjob_mp.queues import parse_queue_selector  # noqa: E402


def cycle(conn: psycopg.Connection, statement: job_store.ClaimStatement, batch: int) -> float:
    """Seconds for one claim + finish (+ unlock) of ``batch`` fresh jobs."""
    now = job_store.utcnow()
    rows = [
        job_store.NewJob(uuid.uuid4(), "Noop", "default", None, {"arguments": []}, now, now)
        for _ in range(batch)
    ]
    with conn.transaction():
        job_copy.copy_jobs(conn, rows)
    process_id = uuid.uuid4()
    t0 = time.perf_counter()
    jobs = job_store.claim_jobs(conn, statement.selector, process_id, batch, statement=statement)
    end = job_store.utcnow()
    job_store.write_results(
        conn, [job_store.JobResult(j.id, end, end, True) for j in jobs], process_id
    )
    if statement.advisory_locks:
        job_store.unlock_jobs(conn, [j.id for j in jobs])
    elapsed = time.perf_counter() - t0
    assert len(jobs) == batch
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()
    server = server_url()
    name, url = create_database(server, "goodjob_bench_locks")
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn)
            selector = parse_queue_selector("*")
            statements = {
                locks: job_store.ClaimStatement(selector, advisory_locks=locks)
                for locks in (False, True)
            }
            times: dict[bool, list[float]] = {False: [], True: []}
            cycle(conn, statements[False], args.batch)  # warm-up: plans, caches
            cycle(conn, statements[True], args.batch)
            for r in range(args.rounds):
                for locks in (False, True) if r % 2 == 0 else (True, False):
                    times[locks].append(cycle(conn, statements[locks], args.batch))
    finally:
        drop_database(server, name)
    without, with_locks = statistics.median(times[False]), statistics.median(times[True])
    results = {
        "batch": args.batch,
        "rounds": args.rounds,
        "cycle_without_locks_ms": round(without * 1000, 2),
        "cycle_with_locks_ms": round(with_locks * 1000, 2),
        "ratio_with_to_without": round(with_locks / without, 3),
        "overhead_per_job_us": round((with_locks - without) / args.batch * 1e6, 1),
    }
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
