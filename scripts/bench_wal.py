"""What the claim and the finish cost Postgres per job: WAL records and bytes, buffers, CPU.

    python scripts/bench_wal.py [--jobs 20000] [--limit 200] [--claims 50] [--queues default]

Creates its own database (as scripts/bench.py does), migrates it with the goodjob_mp on
PYTHONPATH (compare two checkouts by running this against each), bulk-enqueues --jobs no-op
jobs, then runs --claims rounds of one claim of --limit jobs (the pool's composed statement,
known-classes condition included) and one all-succeeded finish of them. Each statement runs
under EXPLAIN (ANALYZE, TIMING OFF, BUFFERS, WAL), which executes it, so the WAL and buffer
figures are this session's own and do not depend on other load on the server. The finish's
executions INSERT (a data-modifying CTE) is counted apart: EXPLAIN does not add it to the top
node. CPU is the backend's utime+stime from /proc around each statement (readable when this runs
as root or as the server's user; clock ticks, so use enough jobs). Prints JSON.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import sys
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402

from goodjob_mp.db import connection, job_store  # noqa: E402
from goodjob_mp.db.migrate import migrate  # noqa: E402
from goodjob_mp.features import known_classes  # noqa: E402
from goodjob_mp.queues import parse_queue_selector  # noqa: E402

_COUNTER = re.compile(r"(records|fpi|bytes|hit|read|dirtied|written)=(\d+)")


def _add(lines: list[str], into: collections.Counter) -> None:
    """Add the Buffers: and WAL: counters of the node whose header is lines[0]."""
    for line in lines[1:3]:
        kind = "wal_" if "WAL:" in line else "buffers_" if "Buffers:" in line else None
        if kind:
            for key, value in _COUNTER.findall(line):
                into[kind + key] += int(value)


def _ticks(conn: psycopg.Connection, pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def measure(conn: psycopg.Connection, queues: str, limit: int, claims: int) -> dict:
    selector = parse_queue_selector(queues)
    condition = known_classes.claim_condition(None, selector)  # type: ignore[arg-type]
    statement = job_store.ClaimStatement(selector, [condition] if condition else [])
    explain = "EXPLAIN (ANALYZE, TIMING OFF, BUFFERS, WAL) "
    backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    process_id = uuid.uuid4()
    totals = {k: collections.Counter() for k in ("claim", "finish_update", "executions_insert")}
    cpu = collections.Counter()
    jobs = 0
    for _ in range(claims):
        params = {
            "process_id": process_id,
            "now": job_store.utcnow(),
            "limit": limit,
            "queues": list(selector.names),
            **statement.params(),
        }
        t0 = _ticks(conn, backend)
        plan = [r[0] for r in conn.execute(sql.SQL(explain) + statement.sql, params, prepare=False)]
        cpu["claim"] += _ticks(conn, backend) - t0
        _add(plan, totals["claim"])
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM good_jobs WHERE locked_by_id = %s AND finished_at IS NULL",
                (process_id,),
            )
        ]
        if not ids:
            break
        now = job_store.utcnow()
        results = [
            job_store.JobResult(id=i, started_at=now, ended_at=now, finished=True) for i in ids
        ]
        query, finish_params = job_store._results_params(results, process_id)
        t0 = _ticks(conn, backend)
        plan = [r[0] for r in conn.execute(explain + query, finish_params)]
        cpu["finish"] += _ticks(conn, backend) - t0
        _add(plan, totals["finish_update"])
        at = next(i for i, line in enumerate(plan) if "Insert on good_job_executions" in line)
        _add(plan[at:], totals["executions_insert"])
        jobs += len(ids)
    hz = os.sysconf("SC_CLK_TCK")
    out: dict[str, object] = {"jobs": jobs, "limit": limit, "queues": queues}
    for name, counter in totals.items():
        out[name + "_per_job"] = {k: round(v / jobs, 1) for k, v in sorted(counter.items())}
    out["wal_bytes_per_job"] = round(sum(c["wal_bytes"] for c in totals.values()) / jobs)
    out["postgres_cpu_us_per_job"] = {k: round(v / hz / jobs * 1e6, 1) for k, v in cpu.items()}
    conn.execute("SELECT pg_stat_force_next_flush()")  # this session's counters, now
    tables = conn.execute(
        "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'good_jobs'"
    ).fetchone()
    out["good_jobs_updates_hot"] = list(tables) if tables else None
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--claims", type=int, default=50)
    parser.add_argument("--queues", default="default")
    args = parser.parse_args()
    server = bench.server_url()
    name, url = bench.create_database(server, "goodjob_bench_wal")
    os.environ["GOOD_JOB_DATABASE_URL"] = url
    connection.reset_database_url()
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn)
            bench.enqueue_jobs(args.jobs)
            conn.execute("VACUUM ANALYZE good_jobs")
            result = measure(conn, args.queues, args.limit, args.claims)
            result["code"] = str(bench.CODE_ROOT)
            print(json.dumps(result, indent=2))
    finally:
        connection.close_thread_connection()
        bench.drop_database(server, name)


if __name__ == "__main__":
    main()
