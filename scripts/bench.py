"""Benchmark: enqueue, drain, latency, and the raw-SQL ceiling of the same cycle, in one run.

    python scripts/bench.py [--jobs 20000] [--json out.json] [--supervisor] [--recovery]
                            [--drain-only] [--advisory-locks] [--backlog [200000]] [--repeat N]
                            [--async] [--metrics]

--drain-only runs only the two drains (quick before/after comparisons of the hot path).
--concurrency also drains jobs of a class with `gj.Concurrency(perform_limit=5)` (one key): every
attempt takes the perform check (docs/concurrency.md); jobs without a config are the two drains.
--advisory-locks also drains with GoodJob's per-job advisory locks taken (advisory_locks=always)
and without (never), to show their cost.
--backlog measures claims behind a deep queue: enqueue-to-start latency of a `latency` pool with
N jobs waiting on queue `backlog` (and, with --drain-only, without them), and the drain rate of a
`default` pool with N (and with 10,000) jobs waiting on `backlog`.

--async drains a no-op ``async def`` job (run on the pool's event loop) beside the sync no-op,
alternately, best of three each, with the ratio async/sync; preserved records, one pool of 5
threads.
--metrics drains the sync no-op again with the Prometheus job metrics installed (multiprocess
files, as in a supervisor's children), with the ratio to the plain drain, best of three each
(run last: the metrics stay installed).

--recovery times how long a job cut off by kill -9 takes to start again: of a child (its
supervisor hands the job back and restarts the pool), and of a whole host (supervisor and
children killed at once; a second supervisor finds the dead processes after
dead_process_timeout and hands their jobs back).

Creates its own database on the server of GOOD_JOB_DATABASE_URL / DATABASE_URL (else
postgresql://postgres@127.0.0.1:5432/postgres) and drops it afterwards. Prints JSON. Figures are
ratios to compare within one run on a shared machine, not absolute truths.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import psycopg  # noqa: E402

import goodjob_mp as gj  # noqa: E402
from goodjob_mp.cli import supervisor_command  # noqa: E402
from goodjob_mp.config import load_settings  # noqa: E402
from goodjob_mp.db import connection, job_store  # noqa: E402
from goodjob_mp.db.migrate import migrate  # noqa: E402
from goodjob_mp.demo import noop  # noqa: E402
from goodjob_mp.queues import parse_queue_selector  # noqa: E402
from goodjob_mp.worker.worker import Worker  # noqa: E402

_started: dict[str, float] = {}
_start_event = threading.Event()


@gj.job(queue="default")
async def async_noop() -> None:
    pass


@gj.job(concurrency=gj.Concurrency(perform_limit=5, key="bench"))
def limited5() -> None:
    pass


@gj.job(queue="latency")
def stamp(key: str) -> None:
    _started[key] = time.perf_counter()
    _start_event.set()


def server_url() -> str:
    return (
        os.environ.get("GOOD_JOB_DATABASE_URL")
        or os.environ.get("DATABASE_URL")
        or "postgresql://postgres@127.0.0.1:5432/postgres"
    )


def with_db(url: str, name: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(url)
    info["dbname"] = name
    return psycopg.conninfo.make_conninfo(**info)


def unfinished(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM good_jobs WHERE finished_at IS NULL").fetchone()[0]


def truncate(conn: psycopg.Connection) -> None:
    conn.execute("TRUNCATE good_jobs, good_job_executions, good_job_processes")
    conn.execute("VACUUM ANALYZE good_jobs")


def bench_single_enqueue(conn: psycopg.Connection, n: int) -> float:
    truncate(conn)
    t0 = time.perf_counter()
    for _ in range(n):
        noop.perform_later()
    return n / (time.perf_counter() - t0)


def bench_bulk_enqueue(conn: psycopg.Connection, n: int) -> float:
    truncate(conn)
    t0 = time.perf_counter()
    with gj.bulk():
        for _ in range(n):
            noop.perform_later()
    return n / (time.perf_counter() - t0)


def enqueue_backlog(conn: psycopg.Connection, n: int, queue: str = "backlog") -> None:
    """``n`` runnable jobs on ``queue`` that the measured pool does not serve."""
    with gj.bulk():
        for _ in range(n):
            noop.set(queue=queue).perform_later()


def bench_drain(
    conn: psycopg.Connection,
    n: int,
    preserve: bool,
    *,
    backlog: int = 0,
    job: object = noop,
    **settings_: object,
) -> float:
    truncate(conn)
    if backlog:
        enqueue_backlog(conn, backlog)
    job = settings_.pop("job", noop)
    with gj.bulk():
        for _ in range(n):
            job.perform_later()  # type: ignore[attr-defined]
    conn.execute("VACUUM ANALYZE good_jobs")
    settings = load_settings({"preserve_job_records": preserve, "poll_interval": 1.0, **settings_})
    t0 = time.perf_counter()
    worker = Worker(settings).start()
    # Done when the worker has written n results: counting rows instead would be a scan of the
    # whole table every 50 ms (no index serves it), which behind a 200k backlog slowed the
    # drain it measured several times over.
    while worker.succeeded + worker.errored < n and not worker.stopping:
        time.sleep(0.05)
    took = time.perf_counter() - t0
    worker.shutdown(10)
    left = (
        "SELECT count(*) FROM good_jobs WHERE finished_at IS NULL AND queue_name = 'default'"
        if preserve
        else "SELECT count(*) FROM good_jobs WHERE queue_name = 'default'"
    )
    assert conn.execute(left).fetchone()[0] == 0, "the drain left jobs behind"
    return n / took


def bench_raw_sql(conn: psycopg.Connection, n: int, batch: int = 200) -> float:
    """The claim-and-finish cycle as raw SQL, no job code: the ceiling for the drain."""
    truncate(conn)
    with gj.bulk():
        for _ in range(n):
            noop.perform_later()
    conn.execute("VACUUM ANALYZE good_jobs")
    selector = parse_queue_selector("*")
    process_id = uuid.uuid4()
    claim = job_store.claim_sql(selector)
    t0 = time.perf_counter()
    done = 0
    while done < n:
        jobs = job_store.claim_jobs(conn, selector, process_id, batch, sql_text=claim)
        if not jobs:
            break
        now = job_store.utcnow()
        job_store.write_results(
            conn, [job_store.JobResult(j.id, now, now, True) for j in jobs], process_id
        )
        done += len(jobs)
    return done / (time.perf_counter() - t0)


def bench_latency(conn: psycopg.Connection, samples: int, backlog: int = 0) -> dict[str, float]:
    truncate(conn)
    if backlog:
        enqueue_backlog(conn, backlog)
        conn.execute("VACUUM ANALYZE good_jobs")
    settings = load_settings({"queues": "latency", "max_threads": 2, "poll_interval": 10.0})
    worker = Worker(settings).start()
    while not worker.listener_connected:
        time.sleep(0.01)
    time.sleep(0.2)
    latencies = []
    for i in range(samples):
        key = f"k{i}"
        _start_event.clear()
        t0 = time.perf_counter()
        stamp.perform_later(key)
        _start_event.wait(5)
        if key in _started:
            latencies.append((_started[key] - t0) * 1000)
        time.sleep(0.005)
    worker.shutdown(10)
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(int(len(latencies) * p), len(latencies) - 1)], 2)

    return {
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "mean_ms": round(statistics.mean(latencies), 2),
    }


def bench_supervisor_drain(conn: psycopg.Connection, url: str, n: int, queues: str) -> float:
    truncate(conn)
    with gj.bulk():
        for _ in range(n):
            noop.perform_later()
    conn.execute("VACUUM ANALYZE good_jobs")
    env = dict(os.environ, GOOD_JOB_DATABASE_URL=url)
    command = supervisor_command(
        "--app=goodjob_mp.demo",
        f"--queues={queues}",
        "--log-level=warning",
    )
    t0 = time.perf_counter()
    proc = subprocess.Popen(command, env=env, cwd=ROOT)
    try:
        while unfinished(conn):
            time.sleep(0.05)
        took = time.perf_counter() - t0
    finally:
        proc.terminate()
        proc.wait(60)
    return n / took


def _supervisor(url: str, queues: str, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, GOOD_JOB_DATABASE_URL=url)
    command = supervisor_command(
        "--app=bench_jobs",
        f"--queues={queues}",
        "--log-level=warning",
        *extra,
    )
    # Its own session, so a "whole host" can be killed at once with killpg.
    return subprocess.Popen(command, env=env, cwd=ROOT / "scripts", start_new_session=True)


def _marks(conn: psycopg.Connection, key: str) -> list[tuple[int, float]]:
    rows = conn.execute("SELECT pid, at FROM bench_marks WHERE key = %s ORDER BY at", (key,))
    return rows.fetchall()


def _wait_marks(conn: psycopg.Connection, key: str, count: int, timeout: float) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        marks = _marks(conn, key)
        if len(marks) >= count:
            return marks
        time.sleep(0.01)
    raise RuntimeError(f"job {key} did not start {count} time(s) within {timeout:g}s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def bench_recovery_child(conn: psycopg.Connection, url: str, samples: int = 3) -> dict:
    """kill -9 of the child running a job -> seconds until the job starts again."""
    import bench_jobs

    truncate(conn)
    conn.execute(bench_jobs.CREATE_MARKS)
    proc = _supervisor(url, "recovery:2")
    took = []
    try:
        for i in range(samples):
            key = f"child-{i}"
            bench_jobs.mark.perform_later(key, 60.0)
            pid, _ = _wait_marks(conn, key, 1, 60)[0]
            killed_at = time.time()
            os.kill(pid, signal.SIGKILL)
            _, again = _wait_marks(conn, key, 2, 60)[1]
            took.append(again - killed_at)
    finally:
        _stop(proc)
    return {"samples_s": [round(t, 3) for t in took], "max_s": round(max(took), 3)}


def bench_recovery_host(conn: psycopg.Connection, url: str, dead_after: float | None) -> dict:
    """A whole host gone (supervisor and children SIGKILLed together) -> seconds until another
    host's supervisor has the job running again."""
    import bench_jobs

    truncate(conn)
    conn.execute(bench_jobs.CREATE_MARKS)
    env_timeout = os.environ.get("GOOD_JOB_DEAD_PROCESS_TIMEOUT")
    if dead_after is not None:
        os.environ["GOOD_JOB_DEAD_PROCESS_TIMEOUT"] = str(dead_after)
    try:
        host_a = _supervisor(url, "recovery:1")
        bench_jobs.mark.perform_later("host", 300.0)
        _wait_marks(conn, "host", 1, 60)
        host_b = _supervisor(url, "recovery:1")
        try:
            time.sleep(2.0)  # host B up and idle (its pool has nothing to claim)
            killed_at = time.time()
            os.killpg(host_a.pid, signal.SIGKILL)
            host_a.wait()
            _, again = _wait_marks(conn, "host", 2, 120)[1]
        finally:
            _stop(host_b)
    finally:
        if env_timeout is None:
            os.environ.pop("GOOD_JOB_DEAD_PROCESS_TIMEOUT", None)
        else:
            os.environ["GOOD_JOB_DEAD_PROCESS_TIMEOUT"] = env_timeout
    from goodjob_mp.config import load_settings as _load

    return {
        "dead_process_timeout_s": _load({}).dead_process_timeout
        if dead_after is None
        else dead_after,
        "recovery_s": round(again - killed_at, 3),
    }


def install_metrics() -> None:
    """The job metrics as a supervisor's child has them: mmap files in a private directory."""
    import tempfile

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="goodjob-bench-metrics-")
    from prometheus_client import CollectorRegistry

    from goodjob_mp.metrics import install

    install(registry=CollectorRegistry())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--single", type=int, default=3_000)
    parser.add_argument("--latency-samples", type=int, default=300)
    parser.add_argument("--supervisor", action="store_true", help="also drain via two pools")
    parser.add_argument("--supervisor-jobs", type=int, default=50_000)
    parser.add_argument("--recovery", action="store_true", help="also time kill -9 recovery")
    parser.add_argument(
        "--dead-process-timeout",
        type=float,
        help="for the whole-host recovery [default: the setting's default]",
    )
    parser.add_argument("--drain-only", action="store_true", help="only the two drains")
    parser.add_argument("--advisory-locks", action="store_true", help="drain with/without locks")
    parser.add_argument(
        "--concurrency", action="store_true", help="also drain a perform_limit=5 class"
    )
    parser.add_argument(
        "--backlog", type=int, nargs="?", const=200_000, help="claims behind N waiting jobs"
    )
    parser.add_argument("--async", dest="async_", action="store_true", help="async no-op drain")
    parser.add_argument("--metrics", action="store_true", help="drain with metrics installed")
    parser.add_argument(
        "--repeat", type=int, default=1, help="with --backlog: drain pairs to run [1]"
    )
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()

    server = server_url()
    name = f"goodjob_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = with_db(server, name)
    os.environ["GOOD_JOB_DATABASE_URL"] = url
    connection.reset_database_url()
    results: dict[str, object] = {"jobs": args.jobs}
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn)
            if not args.drain_only:
                results["single_enqueue_jobs_per_s"] = round(
                    bench_single_enqueue(conn, args.single)
                )
                results["bulk_enqueue_jobs_per_s"] = round(bench_bulk_enqueue(conn, args.jobs))
                results["raw_sql_ceiling_jobs_per_s"] = round(bench_raw_sql(conn, args.jobs))
            results["drain_preserve_on_jobs_per_s"] = round(bench_drain(conn, args.jobs, True))
            results["drain_preserve_off_jobs_per_s"] = round(bench_drain(conn, args.jobs, False))
            if not args.drain_only:
                results["latency"] = bench_latency(conn, args.latency_samples)
            if args.concurrency:
                # Five threads (the default) and a limit of five: every check admits, so this is
                # the cost of the check itself.
                results["drain_perform_limit_5_jobs_per_s"] = round(
                    bench_drain(conn, args.jobs, True, job=limited5)
                )
                results["perform_limit_5_refused_attempts"] = conn.execute(
                    "SELECT count(*) FROM good_job_executions WHERE error IS NOT NULL"
                ).fetchone()[0]
            if args.advisory_locks:
                for mode in ("never", "always"):
                    results[f"drain_advisory_locks_{mode}_jobs_per_s"] = round(
                        bench_drain(conn, args.jobs, True, advisory_locks=mode)
                    )
            if args.backlog:
                b = args.backlog
                if args.drain_only:  # the same latency without the backlog, for the ratio
                    results["latency"] = bench_latency(conn, args.latency_samples)
                results[f"latency_backlog_{b}"] = bench_latency(conn, args.latency_samples, b)
                # Alternated, --repeat times: on a loaded machine one pair is mostly noise.
                rates: dict[int, list[int]] = {10_000: [], b: []}
                for _ in range(args.repeat):
                    for depth in rates:
                        rate = bench_drain(conn, args.jobs, True, backlog=depth, queues="default")
                        rates[depth].append(round(rate))
                for depth, seen in rates.items():
                    key = f"drain_default_pool_backlog_{depth}_jobs_per_s"
                    results[key] = round(statistics.median(seen))
                    if args.repeat > 1:
                        results[key + "_runs"] = seen
                ratios = [x / y for x, y in zip(rates[b], rates[10_000], strict=True)]
                results[f"drain_ratio_backlog_{b}_to_10000"] = round(statistics.median(ratios), 2)
            if args.supervisor:
                results["supervisor_two_pools_jobs_per_s"] = round(
                    bench_supervisor_drain(conn, url, args.supervisor_jobs, "*:5;*:5")
                )
                results["supervisor_one_pool_jobs_per_s"] = round(
                    bench_supervisor_drain(conn, url, args.supervisor_jobs, "*:5")
                )
            if args.async_:
                # Alternated, best of three each: the box's noise hits both alike.
                sync_rate = async_rate = 0.0
                for _ in range(3):
                    sync_rate = max(sync_rate, bench_drain(conn, args.jobs, True))
                    async_rate = max(async_rate, bench_drain(conn, args.jobs, True, job=async_noop))
                results["drain_sync_noop_jobs_per_s"] = round(sync_rate)
                results["drain_async_noop_jobs_per_s"] = round(async_rate)
                results["async_to_sync_drain_ratio"] = round(async_rate / sync_rate, 3)
            if args.metrics:
                plain = max(bench_drain(conn, args.jobs, True) for _ in range(3))
                install_metrics()
                measured = max(bench_drain(conn, args.jobs, True) for _ in range(3))
                results["drain_without_metrics_jobs_per_s"] = round(plain)
                results["drain_with_metrics_jobs_per_s"] = round(measured)
                results["metrics_to_plain_drain_ratio"] = round(measured / plain, 3)
            if args.recovery:
                results["recovery_child_kill9"] = bench_recovery_child(conn, url)
                results["recovery_host_gone"] = bench_recovery_host(
                    conn, url, args.dead_process_timeout
                )
    finally:
        connection.close_thread_connection()
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
