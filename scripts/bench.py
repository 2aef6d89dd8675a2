"""Benchmark: enqueue, drain, pools, deep tables and their raw-SQL ceilings, in one run.

    python scripts/bench.py [--quick] [--only SECTION,...] [--jobs 20000] [--json out.json]
                            [--advisory-locks] [--recovery] [--concurrency] [--async]
                            [--metrics] [--repeat N]

Sections (all but the last five run by default; --only picks some):
  enqueue   single enqueue and bulk enqueue (1,000 per call), each with its raw-SQL ceiling
  drain     1-process drain with preservation on and off, and the raw-SQL ceiling of the cycle
  latency   enqueue-to-start latency of an idle pool
  pools     drain by a supervisor with two pools and with one; RSS of the supervisor and of
            each child (peak during the drain)
  backlog   claims behind a deep queue: latency, and drain of a `default` pool with 10,000 and
            with --backlog (200,000) jobs waiting on queue `backlog`, alternated --repeat times
            (median, and the median ratio of the two)
  finished  single enqueue and claim latency with --finished (1,000,000) finished rows (and as
            many executions rows) in the table
  advisory  drain with GoodJob's per-job advisory locks taken (always) and not (never)
  recovery  kill -9 of a child, and of a whole host: seconds until the job starts again
  concurrency  drain of a class with `gj.Concurrency(perform_limit=5)` (one key): every attempt
            takes the perform check (docs/concurrency.md); five threads, so every check admits
  async     drain of a no-op ``async def`` job (the pool's event loop) beside the sync no-op,
            alternately, best of three each, with the ratio async/sync
  metrics   the sync no-op drain with the Prometheus job metrics installed (multiprocess files,
            as in a supervisor's children) against without, best of three each (run last: the
            metrics stay installed)

The ceilings are the fastest cycle the schema allows, as raw SQL with no job code, writing the
same row as goodjob_mp does (the no-op job's full Active Job envelope, its time-ordered id):
single enqueue is one prepared INSERT+NOTIFY per job with its JSON prebuilt; bulk is one COPY
of rows encoded before the clock starts; the drain ceiling claims (returning ids only) and finishes
(executions row + finished row, or DELETE) in batches of 200 on two connections at once, so it
keeps both of Postgres's CPUs busy. Every figure is also given as a ratio to its ceiling.

The pool figures time the drain itself (first claim to last finish, from the rows'
performed_at and finished_at), not the supervisor's start-up; the wall time including start-up
is given beside them. The drains that run a Worker in this process set Python's garbage
collector as a supervisor's child does (`worker_gc_threshold`) and restore it afterwards.

--quick shrinks every size (a one-minute smoke run). The code measured is the goodjob_mp on
PYTHONPATH when that is set (compare two checkouts by running this script against each), else
this checkout's.

Creates its own database on the server of GOOD_JOB_DATABASE_URL / DATABASE_URL (else
postgresql://postgres@127.0.0.1:5432/postgres) and drops it afterwards. Prints JSON. Figures are
ratios to compare within one run on a shared machine, not absolute truths.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if not os.environ.get("PYTHONPATH"):
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import psycopg  # noqa: E402

import goodjob_mp as gj  # noqa: E402
from goodjob_mp.cli import supervisor_command  # noqa: E402
from goodjob_mp.config import Settings, load_settings  # noqa: E402
from goodjob_mp.db import connection, job_store  # noqa: E402
from goodjob_mp.db.migrate import migrate  # noqa: E402
from goodjob_mp.demo import noop  # noqa: E402
from goodjob_mp.enqueue import envelope_json  # noqa: E402
from goodjob_mp.supervisor.gc_tuning import tune_for_worker  # noqa: E402
from goodjob_mp.worker.worker import Worker  # noqa: E402

_started: dict[str, float] = {}
_start_event = threading.Event()
# The checkout whose goodjob_mp this run measures (PYTHONPATH's when set): supervisors run it too.
CODE_ROOT = Path(gj.__file__).resolve().parents[1]
BATCH = 1_000  # jobs per bulk() call in the bulk-enqueue figure
SECTIONS = ("enqueue", "drain", "latency", "pools", "backlog", "finished")
OPT_IN = ("advisory", "recovery", "concurrency", "async", "metrics")


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


def create_database(server: str, prefix: str = "goodjob_bench") -> tuple[str, str]:
    """A fresh database on ``server``: its name and its URL (drop it with ``drop_database``)."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return name, with_db(server, name)


def drop_database(server: str, name: str) -> None:
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def unfinished(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM good_jobs WHERE finished_at IS NULL").fetchone()[0]


def truncate(conn: psycopg.Connection) -> None:
    conn.execute("TRUNCATE good_jobs, good_job_executions, good_job_processes")
    conn.execute("VACUUM ANALYZE good_jobs")


def enqueue_jobs(n: int, queue: str | None = None, job_cls: object = noop) -> None:
    job = job_cls.set(queue=queue) if queue else job_cls  # type: ignore[attr-defined]
    for start in range(0, n, BATCH):
        with gj.bulk():
            for _ in range(min(BATCH, n - start)):
                job.perform_later()


# --- enqueue ------------------------------------------------------------------------------------


# Python CPU per enqueued job of the last enqueue figure (steadier than jobs/s on a loaded box).
enqueue_cpu: dict[str, float] = {}


def bench_single_enqueue(conn: psycopg.Connection, n: int, *, keep: bool = False) -> float:
    if not keep:
        truncate(conn)
    t0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        noop.perform_later()
    took = time.perf_counter() - t0
    enqueue_cpu["single"] = round((time.process_time() - cpu0) / n * 1e6, 1)
    return n / took


def bench_bulk_enqueue(conn: psycopg.Connection, n: int) -> float:
    truncate(conn)
    t0, cpu0 = time.perf_counter(), time.process_time()
    enqueue_jobs(n)
    took = time.perf_counter() - t0
    enqueue_cpu["bulk"] = round((time.process_time() - cpu0) / n * 1e6, 1)
    return n / took


_PARAMS_JSON = json.dumps(
    {"job_class": "goodjob_mp.demo.noop", "arguments": [], "executions": 0, "locale": "en"}
)


def _envelope(job_id: uuid.UUID, now: object) -> str:
    """The Active Job envelope goodjob_mp writes for a no-op job: the ceilings write the same
    row as the code they bound (a shorter JSON would make the server's part look cheaper)."""
    return envelope_json("goodjob_mp.demo.noop", job_id, "default", None, [], now, None)


CEILING_INSERT = """
WITH i AS (
    INSERT INTO good_jobs (id, active_job_id, job_class, queue_name, priority, serialized_params,
                           scheduled_at, created_at, updated_at)
    VALUES (%(id)s, %(id)s, 'goodjob_mp.demo.noop', 'default', 0, %(p)s::jsonb, %(t)s, %(t)s,
            %(t)s)
    RETURNING id)
SELECT pg_notify('good_job', '{"queue_name":"default"}') FROM i
"""


def ceiling_single_enqueue(conn: psycopg.Connection, n: int) -> float:
    """One prepared INSERT+NOTIFY statement per job (autocommit: one round trip), JSON prebuilt."""
    truncate(conn)
    now = job_store.utcnow()
    ids = [job_store.new_job_id() for _ in range(n)]
    params = [_envelope(job_id, now) for job_id in ids]
    t0 = time.perf_counter()
    for job_id, p in zip(ids, params, strict=True):
        conn.execute(CEILING_INSERT, {"id": job_id, "p": p, "t": now}, prepare=True)
    return n / (time.perf_counter() - t0)


def ceiling_bulk_enqueue(conn: psycopg.Connection, n: int) -> float:
    """COPY of rows encoded before the clock starts, 1,000 per transaction, one NOTIFY each."""
    truncate(conn)
    when = job_store.utcnow()
    now = when.isoformat()
    chunks = []
    for start in range(0, n, BATCH):
        lines = []
        for _ in range(min(BATCH, n - start)):
            i = job_store.new_job_id()
            p = _envelope(i, when)
            lines.append(f"{i}\t{i}\tgoodjob_mp.demo.noop\tdefault\t0\t{p}\t{now}\t{now}\t{now}\n")
        chunks.append("".join(lines).encode())
    columns = "id, active_job_id, job_class, queue_name, priority, serialized_params, " + (
        "scheduled_at, created_at, updated_at"
    )
    t0 = time.perf_counter()
    for chunk in chunks:
        with conn.transaction():
            with conn.cursor().copy(f"COPY good_jobs ({columns}) FROM STDIN") as copy:
                copy.write(chunk)
            conn.execute("SELECT pg_notify('good_job', '{\"queue_name\":\"default\"}')")
    return n / (time.perf_counter() - t0)


# --- drain --------------------------------------------------------------------------------------


@contextlib.contextmanager
def collector_as_in_a_child(settings: Settings) -> Iterator[None]:
    """A supervisor's child sets Python's garbage collector before its worker starts
    (``worker_gc_threshold``); a drain measured in this process does the same, then undoes it."""
    before = gc.get_threshold()
    tune_for_worker(settings.worker_gc_threshold)
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def bench_drain(
    conn: psycopg.Connection,
    n: int,
    preserve: bool,
    *,
    backlog: int = 0,
    cpu_out: dict | None = None,
    job: object = noop,
    **settings_: object,
) -> float:
    truncate(conn)
    if backlog:
        enqueue_jobs(backlog, "backlog")
    enqueue_jobs(n, job_cls=job)
    conn.execute("VACUUM ANALYZE good_jobs")
    settings = load_settings({"preserve_job_records": preserve, "poll_interval": 1.0, **settings_})
    base: dict[int, int] = {}
    _sample_backends(conn, base)  # e.g. the enqueue pool's connection: count only the drain
    with collector_as_in_a_child(settings):
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        worker = Worker(settings).start()
        backends: dict[int, int] = {}
        # Done when the worker has written n results: counting rows instead would be a scan of
        # the whole table every 50 ms (no index serves it), which behind a 200k backlog slowed
        # the drain it measured several times over.
        while worker.succeeded + worker.errored < n and not worker.stopping:
            _sample_backends(conn, backends)
            time.sleep(0.05)
        took = time.perf_counter() - t0
        _sample_backends(conn, backends)
        cpu = time.process_time() - cpu0
        worker.shutdown(10)
    left = (
        "SELECT count(*) FROM good_jobs WHERE finished_at IS NULL AND queue_name = 'default'"
        if preserve
        else "SELECT count(*) FROM good_jobs WHERE queue_name = 'default'"
    )
    assert conn.execute(left).fetchone()[0] == 0, "the drain left jobs behind"
    if cpu_out is not None:
        # CPU per job is steadier than jobs/s on a loaded box: it counts work, not waiting.
        cpu_out["python_cpu_us_per_job"] = round(cpu / n * 1e6, 1)
        cpu_out["postgres_cpu_us_per_job"] = round(
            _ticks_s(sum(v - base.get(pid, 0) for pid, v in backends.items())) / n * 1e6, 1
        )
    return n / took


_OWN_BACKENDS = (
    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
    "AND pid <> pg_backend_pid()"
)


def _ticks_s(ticks: int) -> float:
    return ticks / os.sysconf("SC_CLK_TCK")


def _sample_backends(conn: psycopg.Connection, seen: dict[int, int]) -> None:
    """Latest utime+stime (clock ticks) of each other backend on this database (the worker's
    connections); readable when this runs as root or as the server's user."""
    for (pid,) in conn.execute(_OWN_BACKENDS).fetchall():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            seen[pid] = int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass


CEILING_CLAIM = """
UPDATE good_jobs AS j
SET locked_by_id = %(p)s, locked_at = %(t)s, lock_type = 1, performed_at = %(t)s,
    executions_count = COALESCE(j.executions_count, 0) + 1, updated_at = %(t)s
FROM (SELECT id FROM good_jobs
      WHERE finished_at IS NULL AND locked_by_id IS NULL AND scheduled_at <= %(t)s
      ORDER BY priority ASC NULLS LAST, scheduled_at ASC LIMIT %(n)s
      FOR NO KEY UPDATE SKIP LOCKED) AS c
WHERE j.id = c.id
RETURNING j.id
"""
CEILING_FINISH = """
WITH e AS (
    INSERT INTO good_job_executions (active_job_id, created_at, updated_at, job_class,
        queue_name, serialized_params, scheduled_at, finished_at, process_id, duration)
    SELECT active_job_id, %(t)s, %(t)s, job_class, queue_name, serialized_params, scheduled_at,
        %(t)s, %(p)s, interval '0'
    FROM good_jobs WHERE id = ANY(%(ids)s::uuid[])
)
UPDATE good_jobs SET finished_at = %(t)s, locked_by_id = NULL, locked_at = NULL,
    lock_type = NULL, updated_at = %(t)s
WHERE id = ANY(%(ids)s::uuid[])
"""
CEILING_DELETE = "DELETE FROM good_jobs WHERE id = ANY(%(ids)s::uuid[])"


def ceiling_drain(
    conn: psycopg.Connection, url: str, n: int, preserve: bool, connections: int = 2
) -> float:
    """Claim (ids only) and finish in batches of 200, no job code, on ``connections`` at once."""
    truncate(conn)
    enqueue_jobs(n)
    conn.execute("VACUUM ANALYZE good_jobs")
    finish = CEILING_FINISH if preserve else CEILING_DELETE
    conns = [psycopg.connect(url, autocommit=True) for _ in range(connections)]
    done = [0] * connections

    def cycle(k: int) -> None:
        c, p = conns[k], uuid.uuid4()
        while True:
            t = job_store.utcnow()
            ids = [r[0] for r in c.execute(CEILING_CLAIM, {"p": p, "t": t, "n": 200}, prepare=True)]
            if not ids:
                return
            c.execute(finish, {"ids": ids, "t": t, "p": p}, prepare=True)
            done[k] += len(ids)

    threads = [threading.Thread(target=cycle, args=(k,)) for k in range(connections)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.perf_counter() - t0
    for c in conns:
        c.close()
    return sum(done) / took


# --- latency ------------------------------------------------------------------------------------


def bench_latency(
    conn: psycopg.Connection, samples: int, backlog: int = 0, *, keep: bool = False
) -> dict[str, float]:
    if not keep:
        truncate(conn)
    if backlog:
        enqueue_jobs(backlog, "backlog")
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


# --- pools (a supervisor) -----------------------------------------------------------------------


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _child_env(url: str) -> dict[str, str]:
    # The measured checkout first, then scripts/ (bench_jobs), whatever the caller's cwd.
    path = os.pathsep.join([str(CODE_ROOT), str(ROOT / "scripts")])
    return dict(os.environ, GOOD_JOB_DATABASE_URL=url, PYTHONPATH=path)


def bench_supervisor_drain(conn: psycopg.Connection, url: str, n: int, queues: str) -> dict:
    """Drain ``n`` jobs with a supervisor running ``queues``. ``jobs_per_s`` counts from the
    first claim to the last finish (the rows' own timestamps), so start-up is left out;
    ``with_startup_jobs_per_s`` is the wall time from launch. RSS is each process's peak."""
    truncate(conn)
    enqueue_jobs(n)
    conn.execute("VACUUM ANALYZE good_jobs")
    command = supervisor_command(
        "--app=goodjob_mp.demo", f"--queues={queues}", "--log-level=warning"
    )
    t0 = time.perf_counter()
    proc = subprocess.Popen(command, env=_child_env(url), cwd=CODE_ROOT)
    peak: dict[int, int] = {}
    try:
        while unfinished(conn):
            for pid in [proc.pid, *_children(proc.pid)]:
                peak[pid] = max(peak.get(pid, 0), _rss_kb(pid))
            time.sleep(0.05)
        wall = time.perf_counter() - t0
    finally:
        proc.terminate()
        proc.wait(60)
    first, last = conn.execute(
        "SELECT min(performed_at), max(finished_at) FROM good_jobs"
    ).fetchone()
    return {
        "jobs_per_s": round(n / (last - first).total_seconds()),
        "with_startup_jobs_per_s": round(n / wall),
        "rss_supervisor_mb": round(peak.pop(proc.pid, 0) / 1024, 1),
        "rss_children_mb": [round(kb / 1024, 1) for _, kb in sorted(peak.items())],
    }


# --- a table with a long history ----------------------------------------------------------------

FILL_FINISHED = """
INSERT INTO good_jobs (id, active_job_id, job_class, queue_name, priority, serialized_params,
                       scheduled_at, created_at, updated_at, performed_at, finished_at,
                       executions_count)
SELECT g, g, 'goodjob_mp.demo.noop', 'default', 0, %(p)s::jsonb, t, t, t, t, t, 1
FROM (SELECT gen_random_uuid() AS g, now()::timestamp - interval '1 day' + i * interval '1 ms' AS t
      FROM generate_series(1, %(n)s) AS i) AS s
"""
FILL_EXECUTIONS = """
INSERT INTO good_job_executions (active_job_id, created_at, updated_at, job_class, queue_name,
    serialized_params, scheduled_at, finished_at, duration)
SELECT active_job_id, finished_at, finished_at, job_class, queue_name, serialized_params,
    scheduled_at, finished_at, interval '1 ms'
FROM good_jobs
"""


def fill_finished(conn: psycopg.Connection, n: int) -> None:
    truncate(conn)
    conn.execute(FILL_FINISHED, {"p": _PARAMS_JSON, "n": n})
    conn.execute(FILL_EXECUTIONS)
    conn.execute("VACUUM ANALYZE good_jobs, good_job_executions")


# --- recovery -----------------------------------------------------------------------------------


def _supervisor(url: str, queues: str, *extra: str) -> subprocess.Popen:
    command = supervisor_command(
        "--app=bench_jobs",
        f"--queues={queues}",
        "--log-level=warning",
        *extra,
    )
    # Its own session, so a "whole host" can be killed at once with killpg.
    return subprocess.Popen(
        command, env=_child_env(url), cwd=ROOT / "scripts", start_new_session=True
    )


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


def ratio(value: float, ceiling: float) -> float:
    return round(value / ceiling, 3) if ceiling else 0.0


def _timed(results: dict, key: str, run: Callable[[], float]) -> float:
    value = round(run())
    results[key] = value
    return value


def install_metrics() -> None:
    """The job metrics as a supervisor's child has them: mmap files in a private directory."""
    import tempfile

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="goodjob-bench-metrics-")
    from prometheus_client import CollectorRegistry

    from goodjob_mp.metrics import install

    install(registry=CollectorRegistry())


def emit(results: dict, json_path: str | None) -> None:
    """Print the results as JSON, and write them to ``json_path`` too when given."""
    text = json.dumps(results, indent=2)
    print(text)
    if json_path:
        Path(json_path).write_text(text + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes everywhere")
    parser.add_argument("--only", help=f"comma-separated sections of {SECTIONS + OPT_IN}")
    parser.add_argument("--jobs", type=int, help="jobs per drain and bulk figure [20000]")
    parser.add_argument("--single", type=int, help="single enqueues [3000]")
    parser.add_argument("--latency-samples", type=int, help="[300]")
    parser.add_argument("--supervisor-jobs", type=int, help="jobs per pools figure [50000]")
    parser.add_argument("--backlog", type=int, help="deep-queue size [200000]")
    parser.add_argument("--finished", type=int, help="finished rows for that section [1000000]")
    parser.add_argument("--drain-only", action="store_true", help="same as --only drain")
    parser.add_argument("--advisory-locks", action="store_true", help="add section advisory")
    parser.add_argument("--recovery", action="store_true", help="add section recovery")
    parser.add_argument("--concurrency", action="store_true", help="add section concurrency")
    parser.add_argument("--async", dest="async_", action="store_true", help="add section async")
    parser.add_argument("--metrics", action="store_true", help="add section metrics")
    parser.add_argument("--repeat", type=int, default=1, help="backlog drain pairs to run [1]")
    parser.add_argument(
        "--dead-process-timeout",
        type=float,
        help="for the whole-host recovery [default: the setting's default]",
    )
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()
    quick = args.quick
    jobs = args.jobs or (5_000 if quick else 20_000)
    single = args.single or (500 if quick else 3_000)
    samples = args.latency_samples or (50 if quick else 300)
    sup_jobs = args.supervisor_jobs or (10_000 if quick else 50_000)
    backlog = args.backlog or (20_000 if quick else 200_000)
    finished = args.finished or (100_000 if quick else 1_000_000)
    sections = set(args.only.split(",")) if args.only else set(SECTIONS)
    if args.drain_only:
        sections = {"drain"}
    if args.advisory_locks:
        sections.add("advisory")
    for flag, section in (
        (args.recovery, "recovery"),
        (args.concurrency, "concurrency"),
        (args.async_, "async"),
        (args.metrics, "metrics"),
    ):
        if flag:
            sections.add(section)
    unknown = sections - set(SECTIONS + OPT_IN)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}")

    server = server_url()
    name, url = create_database(server, "goodjob_bench")
    os.environ["GOOD_JOB_DATABASE_URL"] = url
    connection.reset_database_url()
    results: dict[str, object] = {"code": str(CODE_ROOT), "jobs": jobs}
    r = results
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn)
            if "enqueue" in sections:
                ceiling = _timed(
                    r,
                    "ceiling_single_enqueue_jobs_per_s",
                    lambda: ceiling_single_enqueue(conn, single),
                )
                value = _timed(
                    r, "single_enqueue_jobs_per_s", lambda: bench_single_enqueue(conn, single)
                )
                r["single_enqueue_ratio_to_ceiling"] = ratio(value, ceiling)
                ceiling = _timed(
                    r, "ceiling_bulk_enqueue_jobs_per_s", lambda: ceiling_bulk_enqueue(conn, jobs)
                )
                value = _timed(r, "bulk_enqueue_jobs_per_s", lambda: bench_bulk_enqueue(conn, jobs))
                r["bulk_enqueue_ratio_to_ceiling"] = ratio(value, ceiling)
                r["enqueue_python_cpu_us_per_job"] = dict(enqueue_cpu)
            drain_ceiling = 0.0
            if sections & {"drain", "pools", "backlog", "advisory"}:
                drain_ceiling = _timed(
                    r,
                    "ceiling_drain_preserved_jobs_per_s",
                    lambda: ceiling_drain(conn, url, jobs, True),
                )
            if "drain" in sections:
                on_cpu: dict = {}
                off_cpu: dict = {}
                value = _timed(
                    r,
                    "drain_preserve_on_jobs_per_s",
                    lambda: bench_drain(conn, jobs, True, cpu_out=on_cpu),
                )
                r["drain_preserve_on_cpu"] = on_cpu
                r["drain_preserve_on_ratio_to_ceiling"] = ratio(value, drain_ceiling)
                ceiling = _timed(
                    r,
                    "ceiling_drain_deleted_jobs_per_s",
                    lambda: ceiling_drain(conn, url, jobs, False),
                )
                value = _timed(
                    r,
                    "drain_preserve_off_jobs_per_s",
                    lambda: bench_drain(conn, jobs, False, cpu_out=off_cpu),
                )
                r["drain_preserve_off_cpu"] = off_cpu
                r["drain_preserve_off_ratio_to_ceiling"] = ratio(value, ceiling)
            if "latency" in sections:
                r["latency"] = bench_latency(conn, samples)
            if "pools" in sections:
                for label, queues in (("two_pools", "*:5;*:5"), ("one_pool", "*:5")):
                    out = bench_supervisor_drain(conn, url, sup_jobs, queues)
                    out["ratio_to_ceiling"] = ratio(out["jobs_per_s"], drain_ceiling)
                    r[f"supervisor_{label}"] = out
            if "backlog" in sections:
                r[f"latency_backlog_{backlog}"] = bench_latency(conn, samples, backlog)
                # Alternated, --repeat times: on a loaded machine one pair is mostly noise.
                rates: dict[int, list[float]] = {depth: [] for depth in sorted({10_000, backlog})}
                for _ in range(args.repeat):
                    for depth, seen in rates.items():
                        seen.append(bench_drain(conn, jobs, True, backlog=depth, queues="default"))
                for depth, seen in rates.items():
                    key = f"drain_default_pool_backlog_{depth}_jobs_per_s"
                    value = statistics.median(seen)
                    r[key] = round(value)
                    if args.repeat > 1:
                        r[key + "_runs"] = [round(x) for x in seen]
                    r[f"drain_default_pool_backlog_{depth}_ratio_to_ceiling"] = ratio(
                        value, drain_ceiling
                    )
                if backlog != 10_000:
                    pairs = zip(rates[backlog], rates[10_000], strict=True)
                    r[f"drain_ratio_backlog_{backlog}_to_10000"] = round(
                        statistics.median([x / y for x, y in pairs]), 2
                    )
            if "finished" in sections:
                fill_finished(conn, finished)
                r[f"finished_{finished}_single_enqueue_jobs_per_s"] = round(
                    bench_single_enqueue(conn, single, keep=True)
                )
                r[f"finished_{finished}_latency"] = bench_latency(conn, samples, keep=True)
            if "advisory" in sections:
                for mode in ("never", "always"):
                    r[f"drain_advisory_locks_{mode}_jobs_per_s"] = round(
                        bench_drain(conn, jobs, True, advisory_locks=mode)
                    )
            if "recovery" in sections:
                r["recovery_child_kill9"] = bench_recovery_child(conn, url)
                r["recovery_host_gone"] = bench_recovery_host(conn, url, args.dead_process_timeout)
            if "concurrency" in sections:
                r["drain_perform_limit_5_jobs_per_s"] = round(
                    bench_drain(conn, jobs, True, job=limited5)
                )
                r["perform_limit_5_refused_attempts"] = conn.execute(
                    "SELECT count(*) FROM good_job_executions WHERE error IS NOT NULL"
                ).fetchone()[0]
            if "async" in sections:
                # Alternated, best of three each: the box's noise hits both alike.
                sync_rate = async_rate = 0.0
                for _ in range(3):
                    sync_rate = max(sync_rate, bench_drain(conn, jobs, True))
                    async_rate = max(async_rate, bench_drain(conn, jobs, True, job=async_noop))
                r["drain_sync_noop_jobs_per_s"] = round(sync_rate)
                r["drain_async_noop_jobs_per_s"] = round(async_rate)
                r["async_to_sync_drain_ratio"] = round(async_rate / sync_rate, 3)
            if "metrics" in sections:
                plain = max(bench_drain(conn, jobs, True) for _ in range(3))
                install_metrics()
                measured = max(bench_drain(conn, jobs, True) for _ in range(3))
                r["drain_without_metrics_jobs_per_s"] = round(plain)
                r["drain_with_metrics_jobs_per_s"] = round(measured)
                r["metrics_to_plain_drain_ratio"] = round(measured / plain, 3)
    finally:
        connection.close_thread_connection()
        drop_database(server, name)
    emit(results, args.json)


if __name__ == "__main__":
    main()
