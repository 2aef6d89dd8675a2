"""Benchmark goodjob_mp against pgqueuer 1.6 on this machine, side by side, in one run.

    python scripts/bench_peers.py [--quick] [--rounds 3] [--jobs 20000] [--single 3000]
                                  [--pool-jobs 50000] [--pgq-batch 500] [--pgq-batch-2 200]
                                  [--pgq-managers 1] [--only FIGURE,...] [--json out.json]

Needs pgqueuer 1.6.0 and asyncpg (`pip install 'goodjob-mp[bench]'`); goodjob_mp itself does
not. Each round runs every figure for both sides, alternately (goodjob_mp first in odd rounds,
pgqueuer first in even ones), so a load that drifts over the run hits both alike. Each round
creates a fresh database per side (goodjob_mp's migrations; pgqueuer's `Queries.install()`) and
drops it at the end of the round. The result is, per figure, the median and range over the
rounds of each side, and the median of the per-round ratios goodjob_mp/pgqueuer.

What each side does:

  bulk     goodjob_mp: `with gj.bulk():` around 1,000 `perform_later()` calls (scripts/bench.py's
           bench_bulk_enqueue: one COPY and one NOTIFY per block). pgqueuer: `Queries.enqueue`
           with lists of 1,000 entrypoints, payloads and priorities (one INSERT ... UNNEST
           statement per call, its statement trigger notifies), as pgqueuer's own
           tools/benchmark.py enqueues; asyncpg driver on uvloop (its documented fastest).
  single   goodjob_mp: `perform_later()` outside any block, each committed on its own
           (bench.py's bench_single_enqueue). pgqueuer: `Queries.enqueue("noop", None)` per job
           on an asyncpg connection outside a transaction (autocommit: one round trip each).
  drain    1 process. goodjob_mp: bench.py's bench_drain, preserved records on (every job keeps
           its row, finished, plus a good_job_executions row), the default pool (5 threads,
           claim buffer 400), a sync no-op job; the time includes the Worker's start-up.
           pgqueuer: one worker process on uvloop with --pgq-managers QueueManagers (each on
           its own asyncpg connection, as tools/benchmark.py's drain strategy runs its dequeue
           tasks; QueueManager, not PgQueuer, which adds a scheduler polling its own table),
           `run(batch_size=--pgq-batch, mode=drain)`, an `async def` no-op entrypoint
           (its cheapest: a sync one goes through a thread). A finished pgqueuer job is deleted
           and logged in pgqueuer_log: one row written per job, like goodjob_mp's executions
           row. The time runs from the start of `run()` (after the connections are open) to
           the last manager's return, so it includes run()'s own start-up as goodjob_mp's does.
  pools    2 processes. goodjob_mp: a supervisor with two pools `*:5;*:5` (bench.py's
           bench_supervisor_drain), timed from the first claim to the last finish (the rows'
           timestamps), supervisor start-up left out. pgqueuer: two worker processes as above
           with batch_size=--pgq-batch-2, started, connected and then released together; timed
           from the earlier start of `run()` to the later return.

pgqueuer's own tools/benchmark.py drains with 5 dequeue tasks of batch size 10; on this box
that drained at about half the rate of one QueueManager with a batch of 200-1,000, so the
defaults here are pgqueuer's fastest settings found (a sweep, in docs/bench-peers-2026-12-03.md):
one QueueManager per process, batch 500 for one process and 200 each for two.

Creates its databases on the server of GOOD_JOB_DATABASE_URL / DATABASE_URL (else
postgresql://postgres@127.0.0.1:5432/postgres). Prints JSON. Figures are ratios to compare within
one run on a shared machine, not absolute truths.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (scripts/bench.py: its goodjob_mp figures are the ones reused)

from goodjob_mp.db import connection  # noqa: E402
from goodjob_mp.db.migrate import migrate  # noqa: E402

BATCH = bench.BATCH  # jobs per bulk call, both sides
FIGURES = ("bulk_enqueue", "single_enqueue", "drain_1_process", "drain_2_processes")
PGQ_ENTRYPOINT = "noop"


def require_pgqueuer() -> None:
    """Exit with the name of what is missing when pgqueuer's side cannot run."""
    missing = []
    for name in ("pgqueuer", "asyncpg", "uvloop"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        sys.exit(
            f"bench_peers.py: {', '.join(missing)} not installed; it needs pgqueuer==1.6.0 and "
            "asyncpg: pip install 'goodjob-mp[bench]' (or pip install pgqueuer==1.6.0 asyncpg)"
        )
    import pgqueuer

    if not pgqueuer.__version__.startswith("1.6."):
        print(f"bench_peers.py: warning: pgqueuer {pgqueuer.__version__}, not 1.6", file=sys.stderr)


# --- databases ----------------------------------------------------------------------------------


def use_goodjob_db(url: str) -> None:
    """Point goodjob_mp's own connections (enqueue pool, thread connection) at ``url``."""
    connection.close_thread_connection()
    os.environ["GOOD_JOB_DATABASE_URL"] = url
    connection.reset_database_url()


# --- pgqueuer -----------------------------------------------------------------------------------


def pgq_reset(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename LIKE 'pgqueuer%'"
            )
        ]
        conn.execute(f"TRUNCATE {', '.join(tables)}")
        conn.execute(f"VACUUM ANALYZE {', '.join(tables)}")


def pgq_left(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pgqueuer").fetchone()[0]


def asyncpg_dsn(url: str) -> str:
    """A postgresql:// URL for asyncpg, which does not read libpq's key=value form."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    auth = quote(str(info.get("user", "")), safe="")
    if info.get("password"):
        auth += ":" + quote(str(info["password"]), safe="")
    host = f"{auth}@" if auth else ""
    host += str(info.get("host", "localhost"))
    if info.get("port"):
        host += f":{info['port']}"
    return f"postgresql://{host}/{quote(str(info.get('dbname', '')), safe='')}"


async def _pgq_queries(url: str):  # type: ignore[no-untyped-def]
    import asyncpg
    from pgqueuer import AsyncpgDriver, Queries

    return Queries(AsyncpgDriver(await asyncpg.connect(dsn=asyncpg_dsn(url))))


async def _pgq_install(url: str) -> None:
    queries = await _pgq_queries(url)
    await queries.install()


async def _pgq_bulk(url: str, n: int) -> float:
    queries = await _pgq_queries(url)
    t0 = time.perf_counter()
    for start in range(0, n, BATCH):
        k = min(BATCH, n - start)
        await queries.enqueue([PGQ_ENTRYPOINT] * k, [None] * k, [0] * k)
    return n / (time.perf_counter() - t0)


async def _pgq_single(url: str, n: int) -> float:
    queries = await _pgq_queries(url)
    t0 = time.perf_counter()
    for _ in range(n):
        await queries.enqueue(PGQ_ENTRYPOINT, None)
    return n / (time.perf_counter() - t0)


def run_uvloop(coro) -> float:  # type: ignore[no-untyped-def]
    import uvloop

    return uvloop.run(coro)


def pgq_bulk(url: str, n: int) -> float:
    pgq_reset(url)
    return run_uvloop(_pgq_bulk(url, n))


def pgq_single(url: str, n: int) -> float:
    pgq_reset(url)
    return run_uvloop(_pgq_single(url, n))


async def _pgq_worker(url: str, batch: int, managers: int) -> None:
    """One pgqueuer worker process: connect, say "ready", wait for "go" on stdin, drain, then
    print the wall-clock start and end of the drain as JSON."""
    from pgqueuer import QueueManager
    from pgqueuer.models import Job
    from pgqueuer.types import QueueExecutionMode

    qms = []
    for _ in range(managers):
        qm = QueueManager(await _pgq_queries(url))

        @qm.entrypoint(PGQ_ENTRYPOINT)
        async def noop(job: Job) -> None:
            pass

        qms.append(qm)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    start = time.time()
    await asyncio.gather(*(qm.run(batch_size=batch, mode=QueueExecutionMode.drain) for qm in qms))
    print(json.dumps({"start": start, "end": time.time()}), flush=True)


def pgq_drain(url: str, n: int, processes: int, batch: int, managers: int) -> float:
    """Drain ``n`` no-op jobs with ``processes`` pgqueuer worker processes started together."""
    pgq_reset(url)
    run_uvloop(_pgq_bulk(url, n))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE pgqueuer")
    command = [
        sys.executable, __file__, "--pgq-worker", url,
        f"--pgq-batch={batch}", f"--pgq-managers={managers}",
    ]  # fmt: skip
    procs = [
        subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(processes)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError("a pgqueuer worker did not start")
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        spans = []
        for proc in procs:
            out, _ = proc.communicate(timeout=600)
            if proc.returncode != 0:
                raise RuntimeError(f"a pgqueuer worker exited with {proc.returncode}")
            spans.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    left = pgq_left(url)
    assert left == 0, f"pgqueuer's drain left {left} jobs behind"
    return n / (max(s["end"] for s in spans) - min(s["start"] for s in spans))


# --- goodjob_mp (scripts/bench.py's functions) ----------------------------------------------------


def gj_drain_2(conn: psycopg.Connection, url: str, n: int) -> float:
    return bench.bench_supervisor_drain(conn, url, n, "*:5;*:5")["jobs_per_s"]


# --- a run --------------------------------------------------------------------------------------


Measure = Callable[[], float]


def round_measures(
    conn: psycopg.Connection,
    gj_url: str,
    pgq_url: str,
    sizes: dict[str, int],
    args: argparse.Namespace,
) -> dict[str, tuple[Measure, Measure]]:
    """Per figure, (goodjob_mp's run, pgqueuer's run) on this round's two databases."""
    jobs, single, pool_jobs = sizes["jobs"], sizes["single"], sizes["pool_jobs"]
    batch, batch_2, managers = args.pgq_batch, args.pgq_batch_2, args.pgq_managers
    return {
        "bulk_enqueue": (
            lambda: bench.bench_bulk_enqueue(conn, jobs),
            lambda: pgq_bulk(pgq_url, jobs),
        ),
        "single_enqueue": (
            lambda: bench.bench_single_enqueue(conn, single),
            lambda: pgq_single(pgq_url, single),
        ),
        "drain_1_process": (
            lambda: bench.bench_drain(conn, jobs, True),
            lambda: pgq_drain(pgq_url, jobs, 1, batch, managers),
        ),
        "drain_2_processes": (
            lambda: gj_drain_2(conn, gj_url, pool_jobs),
            lambda: pgq_drain(pgq_url, pool_jobs, 2, batch_2, managers),
        ),
    }


def summary(gj_runs: list[float], pgq_runs: list[float]) -> dict:
    def side(runs: list[float]) -> dict:
        return {
            "median": round(statistics.median(runs)),
            "min": round(min(runs)),
            "max": round(max(runs)),
            "runs": [round(x) for x in runs],
        }

    ratios = [g / p for g, p in zip(gj_runs, pgq_runs, strict=True)]
    return {
        "goodjob_mp": side(gj_runs),
        "pgqueuer": side(pgq_runs),
        "ratio_goodjob_mp_to_pgqueuer": {
            "median": round(statistics.median(ratios), 2),
            "min": round(min(ratios), 2),
            "max": round(max(ratios), 2),
            "of_medians": round(statistics.median(gj_runs) / statistics.median(pgq_runs), 2),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, 1 round")
    parser.add_argument("--rounds", type=int, help="interleaved rounds [3; --quick 1]")
    parser.add_argument("--jobs", type=int, help="jobs per bulk and 1-process drain [20000]")
    parser.add_argument("--single", type=int, help="single enqueues per side [3000]")
    parser.add_argument("--pool-jobs", type=int, help="jobs per 2-process drain [50000]")
    parser.add_argument(
        "--pgq-batch", type=int, default=500, help="pgqueuer batch_size, 1 process [500]"
    )
    parser.add_argument(
        "--pgq-batch-2", type=int, default=200, help="pgqueuer batch_size, 2 processes [200]"
    )
    parser.add_argument(
        "--pgq-managers", type=int, default=1, help="pgqueuer QueueManagers per process [1]"
    )
    parser.add_argument("--only", help=f"comma-separated figures of {FIGURES}")
    parser.add_argument("--json", help="write the results here too")
    parser.add_argument("--pgq-worker", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    require_pgqueuer()
    if args.pgq_worker:
        run_uvloop(_pgq_worker(args.pgq_worker, args.pgq_batch, args.pgq_managers))
        return
    quick = args.quick
    rounds = args.rounds or (1 if quick else 3)
    jobs = args.jobs or (5_000 if quick else 20_000)
    single = args.single or (500 if quick else 3_000)
    pool_jobs = args.pool_jobs or (10_000 if quick else 50_000)
    figures = args.only.split(",") if args.only else list(FIGURES)
    unknown = set(figures) - set(FIGURES)
    if unknown:
        parser.error(f"unknown figures {sorted(unknown)}")
    sizes = {"jobs": jobs, "single": single, "pool_jobs": pool_jobs}

    import pgqueuer

    server = bench.server_url()
    runs: dict[str, dict[str, list[float]]] = {f: {"gj": [], "pgq": []} for f in figures}
    for r in range(rounds):
        gj_name, gj_url = bench.create_database(server, "goodjob_peers_gj")
        pgq_name, pgq_url = bench.create_database(server, "goodjob_peers_pgq")
        try:
            use_goodjob_db(gj_url)
            with psycopg.connect(gj_url, autocommit=True) as conn:
                migrate(conn)
                run_uvloop(_pgq_install(pgq_url))
                measures = round_measures(conn, gj_url, pgq_url, sizes, args)
                for figure in figures:
                    gj_run, pgq_run = measures[figure]
                    order = (("gj", gj_run), ("pgq", pgq_run))
                    for side, run in order if r % 2 == 0 else order[::-1]:
                        value = run()
                        runs[figure][side].append(value)
                        print(f"round {r + 1} {figure} {side}: {value:,.0f}/s", file=sys.stderr)
        finally:
            connection.close_thread_connection()
            connection.reset_database_url()
            bench.drop_database(server, gj_name)
            bench.drop_database(server, pgq_name)

    results: dict[str, object] = {
        "code": str(bench.CODE_ROOT),
        "pgqueuer_version": pgqueuer.__version__,
        "rounds": rounds,
        "jobs": jobs,
        "single": single,
        "pool_jobs": pool_jobs,
        "pgqueuer_batch_size_1_process": args.pgq_batch,
        "pgqueuer_batch_size_2_processes": args.pgq_batch_2,
        "pgqueuer_managers_per_process": args.pgq_managers,
        "unit": "jobs/s",
    }
    for figure in figures:
        results[figure] = summary(runs[figure]["gj"], runs[figure]["pgq"])
    bench.emit(results, args.json)


if __name__ == "__main__":
    main()
