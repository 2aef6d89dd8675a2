"""Query-time benchmark for the dashboard's job list on a table of 1M jobs.

    python3 scripts/bench_dashboard.py                  # 1,000,000 rows, prints a table
    python3 scripts/bench_dashboard.py --rows 200000 --explain --json out.json

Makes its own database on the server (GOOD_JOB_TEST_SERVER_URL, else the machine's on
127.0.0.1:5432), migrates it, fills ``good_jobs`` with a mix like a busy production table (mostly
succeeded, some discarded, a backlog of queued and scheduled jobs, skewed queues and classes,
labels on a few), ANALYZEs it, then times ``goodjob_mp.db.admin.list_jobs`` - the statement the
jobs page runs - for the first page and for a deep keyset page (the cursor half-way through the
matching rows), with and without filters. Each case runs 7 times; the median and the worst are
reported, with the EXPLAIN of the deep page. Also times the state counts, search and the
performance page's aggregates, which are reported but not held to the list's 100 ms budget.
Drops the database at the end unless --keep.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from goodjob_mp.db import admin  # noqa: E402
from goodjob_mp.db.job_store import utcnow  # noqa: E402
from goodjob_mp.db.migrate import migrate  # noqa: E402

BUDGET_MS = 100.0
RUNS = 7

# One INSERT ... SELECT: state, queue and class drawn from skewed distributions of i.
FILL = """
INSERT INTO good_jobs (id, active_job_id, job_class, queue_name, priority, serialized_params,
    scheduled_at, performed_at, finished_at, error, error_event, created_at, updated_at, labels,
    executions_count)
SELECT id, id, job_class, queue_name, priority,
    jsonb_build_object('job_class', job_class, 'job_id', id::text, 'queue_name', queue_name,
        'priority', priority, 'executions', CASE WHEN kind = 'retried' THEN 2 ELSE 1 END,
        'arguments', jsonb_build_array(i, 'customer-' || (i %% 5000), jsonb_build_object(
            'invoice', 'INV-' || i, 'note', CASE WHEN i %% 997 = 0 THEN 'zanzibar' ELSE 'ok' END))),
    CASE kind WHEN 'scheduled' THEN now_at + (i %% 86400) * interval '1 second'
              WHEN 'retried' THEN now_at + (i %% 3600) * interval '1 second'
              ELSE created END,
    CASE WHEN kind IN ('succeeded', 'discarded', 'running') THEN created + interval '1 second' END,
    CASE WHEN kind IN ('succeeded', 'discarded') THEN created + interval '2 seconds' END,
    CASE WHEN kind IN ('discarded', 'retried')
         THEN 'TimeoutError: gateway ' || (i %% 100) || ' unreachable' END,
    CASE kind WHEN 'discarded' THEN 5 WHEN 'retried' THEN 3 END,
    created, created,
    CASE WHEN i %% 20 = 0 THEN ARRAY['tenant-' || (i %% 7)] END,
    CASE WHEN kind IN ('succeeded', 'discarded', 'running', 'retried') THEN 1 ELSE 0 END
FROM (
    SELECT i, gen_random_uuid() AS id,
        %(now)s::timestamp AS now_at,
        %(now)s::timestamp - ((%(rows)s - i) * %(spread)s) * interval '1 millisecond' AS created,
        CASE WHEN i %% 1000 < 880 THEN 'succeeded'
             WHEN i %% 1000 < 920 THEN 'discarded'
             WHEN i %% 1000 < 970 THEN 'queued'
             WHEN i %% 1000 < 990 THEN 'scheduled'
             WHEN i %% 1000 < 995 THEN 'retried'
             WHEN i %% 100000 = 995 THEN 'running'
             ELSE 'succeeded' END AS kind,
        CASE WHEN i %% 10 < 5 THEN 'default' WHEN i %% 10 < 7 THEN 'mail'
             WHEN i %% 10 < 9 THEN 'reports' WHEN i %% 1000 = 999 THEN 'rare'
             ELSE 'billing' END AS queue_name,
        'App::Job' || (floor(power(random(), 3) * 50))::int AS job_class,
        (i %% 5) - 2 AS priority
    FROM generate_series(1, %(rows)s) AS i
) s
"""
# One execution per finished job, in the order they finished (as workers append them), for the
# performance page: it aggregates the last hour out of a million.
FILL_EXECUTIONS = """
INSERT INTO good_job_executions (active_job_id, created_at, updated_at, job_class, queue_name,
    scheduled_at, finished_at, error, error_event, duration)
SELECT active_job_id, performed_at, finished_at, job_class, queue_name, scheduled_at,
    finished_at, error, error_event, (50 + (hashtext(id::text) & 1023)) * interval '1 millisecond'
FROM good_jobs WHERE finished_at IS NOT NULL ORDER BY finished_at
"""

CASES = [
    ("all", admin.JobFilter()),
    ("state=succeeded", admin.JobFilter(state="succeeded")),
    ("state=discarded", admin.JobFilter(state="discarded")),
    ("state=queued", admin.JobFilter(state="queued")),
    ("state=scheduled", admin.JobFilter(state="scheduled")),
    ("state=retried", admin.JobFilter(state="retried")),
    ("state=running", admin.JobFilter(state="running")),
    ("queue=mail", admin.JobFilter(queue="mail")),
    ("queue=rare", admin.JobFilter(queue="rare")),
    ("class=App::Job0", admin.JobFilter(job_class="App::Job0")),
    ("class=App::Job49", admin.JobFilter(job_class="App::Job49")),
    ("label=tenant-3", admin.JobFilter(label="tenant-3")),
    ("priority=-2", admin.JobFilter(priority=-2)),
    ("discarded+queue=mail", admin.JobFilter(state="discarded", queue="mail")),
    ("discarded+class=App::Job0", admin.JobFilter(state="discarded", job_class="App::Job0")),
    ("queued+queue=reports", admin.JobFilter(state="queued", queue="reports")),
]
# Filters that match few or no rows: without an index on the column, each page scans the
# whole table. Held to the budget with --goodjob-indexes (GoodJob's full set has queue_name,
# job_class and labels indexes); reported otherwise.
SPARSE_CASES = [
    ("queue=absent", admin.JobFilter(queue="absent")),
    ("class=Absent", admin.JobFilter(job_class="Absent")),
    ("discarded+queue=rare", admin.JobFilter(state="discarded", queue="rare")),
    ("label=absent", admin.JobFilter(label="absent")),
]
# A text search looks through SEARCH_WINDOW jobs per page; a job id is a primary-key lookup.
SEARCH_CASES = [
    ("search 'gateway' (common)", admin.JobFilter(search="gateway")),
    ("search 'zanzibar' (rare)", admin.JobFilter(search="zanzibar")),
    ("search 'absent'", admin.JobFilter(search="absent")),
]


def server_url() -> str:
    import os

    explicit = os.environ.get("GOOD_JOB_TEST_SERVER_URL")
    if explicit:
        return explicit
    for user in ("postgres", "root"):
        url = f"postgresql://{user}@127.0.0.1:5432/postgres"
        try:
            psycopg.connect(url, connect_timeout=3).close()
            return url
        except psycopg.OperationalError:
            continue
    raise SystemExit("no PostgreSQL on 127.0.0.1:5432; set GOOD_JOB_TEST_SERVER_URL")


def with_db(url: str, dbname: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(url)
    info["dbname"] = dbname
    return psycopg.conninfo.make_conninfo(**info)


def timed(fn, runs: int = RUNS) -> tuple[float, float]:
    """(median, worst) milliseconds; the first run warms the cache and is not counted."""
    fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), max(samples)


def deep_cursor(conn: psycopg.Connection, flt: admin.JobFilter, now) -> admin.Cursor | None:
    """The cursor half-way through the rows the filter matches (found once, with OFFSET, only
    to set the benchmark up: the page itself never uses OFFSET)."""
    conditions, params = admin.filter_conditions(flt)
    params["now"] = now
    column, direction = admin.ORDER[flt.state]
    where = " AND ".join(conditions) or "TRUE"
    total = conn.execute(f"SELECT count(*) FROM good_jobs WHERE {where}", params).fetchone()[0]
    if total < 2:
        return None
    params["offset"] = total // 2
    row = conn.execute(
        f"SELECT {column}, id FROM good_jobs WHERE {where} "
        f"ORDER BY {column} {direction}, id {direction} OFFSET %(offset)s LIMIT 1",
        params,
    ).fetchone()
    return admin.Cursor(row[0], row[1])


def explain_page(conn, flt, cursor, now) -> str:
    query, params = admin.job_list_sql(flt, with_cursor=cursor is not None)
    params.update(now=now, limit=admin.DEFAULT_PAGE_SIZE + 1, window=admin.SEARCH_WINDOW)
    if cursor is not None:
        params.update(after_at=cursor.at, after_id=cursor.id)
    return admin.explain(conn, query, params)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--explain", action="store_true", help="Print every EXPLAIN ANALYZE.")
    parser.add_argument("--json", help="Write the figures here.")
    parser.add_argument("--keep", action="store_true", help="Keep the database afterwards.")
    parser.add_argument(
        "--goodjob-indexes",
        action="store_true",
        help="Also create GoodJob's full index set (migrate --goodjob-indexes).",
    )
    args = parser.parse_args()

    server = server_url()
    dbname = f"goodjob_bench_dashboard_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    url = with_db(server, dbname)
    results: dict[str, object] = {"rows": args.rows, "budget_ms": BUDGET_MS, "cases": []}
    failures = []
    try:
        with psycopg.connect(url, autocommit=True, options="-c timezone=UTC") as conn:
            migrate(conn, goodjob_indexes=args.goodjob_indexes)
            now = utcnow()
            start = time.perf_counter()
            # Spread created_at over 30 days.
            spread = 30 * 86400 * 1000 / args.rows
            conn.execute(FILL, {"rows": args.rows, "now": now, "spread": spread})
            conn.execute(FILL_EXECUTIONS)
            conn.execute("VACUUM ANALYZE good_jobs")
            conn.execute("VACUUM ANALYZE good_job_executions")
            print(f"filled {args.rows:,} jobs in {time.perf_counter() - start:.1f} s", flush=True)
            indexes = [
                r[0]
                for r in conn.execute(
                    "SELECT indexname FROM pg_indexes WHERE tablename = 'good_jobs' ORDER BY 1"
                )
            ]
            results["indexes"] = indexes
            print("indexes on good_jobs:", ", ".join(indexes))
            print(f"\n{'case':<28} {'first page ms':>15} {'deep page ms':>15}  (median / worst)")
            sparse = [(f"{n} *", f) for n, f in SPARSE_CASES]
            for name, flt in CASES + sparse + SEARCH_CASES:
                budgeted = (name, flt) in CASES or (args.goodjob_indexes and name.endswith("*"))
                first = timed(lambda flt=flt: admin.list_jobs(conn, flt, now=now))
                # A search resumes anywhere: start it half-way through the whole list.
                cursor = deep_cursor(conn, admin.JobFilter() if flt.search else flt, now)
                deep = (
                    timed(lambda flt=flt, c=cursor: admin.list_jobs(conn, flt, after=c, now=now))
                    if cursor is not None
                    else None
                )
                plan = explain_page(conn, flt, cursor, now)
                deep_text = f"{deep[0]:7.2f} / {deep[1]:6.2f}" if deep else "   (one page)"
                print(f"{name:<28} {first[0]:7.2f} / {first[1]:6.2f} {deep_text}", flush=True)
                for label, figures in (("first", first), ("deep", deep)):
                    if budgeted and figures is not None and figures[0] > BUDGET_MS:
                        failures.append(f"{name} {label} page: {figures[0]:.1f} ms")
                results["cases"].append(
                    {
                        "case": name,
                        "budgeted": budgeted,
                        "first_ms": first,
                        "deep_ms": deep,
                        "explain_deep": plan,
                    }
                )
                if args.explain:
                    print(plan, "\n")
            print("(* sparse filters: budgeted with --goodjob-indexes only; search: per window)")
            print("\nother statements:")
            some_id = conn.execute("SELECT id FROM good_jobs LIMIT 1").fetchone()[0]
            lookup = timed(lambda: admin.list_jobs(conn, admin.JobFilter(search=str(some_id))))
            print(f"  {'search by job id':<32} {lookup[0]:8.1f} ms")
            extras = [{"case": "search by job id", "ms": lookup}]
            counts = timed(lambda: admin.state_counts(conn, now=now), runs=3)
            print(f"  {'state counts (capped 1,000)':<32} {counts[0]:8.1f} ms")
            timed_out = [k for k, c in admin.state_counts(conn, now=now).items() if c.value is None]
            if timed_out:
                print(f"    counts over {admin.COUNT_TIMEOUT_MS} ms, shown as '?': {timed_out}")
            perf = timed(lambda: admin.performance(conn, now=now), runs=3)
            print(f"  {'performance (last hour)':<32} {perf[0]:8.1f} ms")
            since = {"since": now.replace(second=0, microsecond=0) - dt.timedelta(minutes=59)}
            results["explain_performance"] = admin.explain(conn, admin._PER_MINUTE, since)
            if args.explain:
                print(results["explain_performance"])
            extras += [
                {"case": "state counts", "ms": counts},
                {"case": "performance", "ms": perf},
            ]
            results["extras"] = extras
    finally:
        if not args.keep:
            with psycopg.connect(server, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        else:
            print(f"kept database {dbname}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    if failures:
        print(f"\nover the {BUDGET_MS:.0f} ms budget: " + "; ".join(failures))
        return 1
    print(f"\nevery job-list page under {BUDGET_MS:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
