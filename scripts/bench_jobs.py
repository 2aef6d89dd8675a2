"""Jobs for the recovery benchmarks in ``bench.py`` (imported by the supervisor with --app).

``mark`` records each start of a job (key, pid, wall-clock time) in ``bench_marks`` on its own
connection, then sleeps on its first start only: the benchmark kills the process running it and
times how long until the job starts again somewhere else.
"""

from __future__ import annotations

import os
import time

import psycopg

import goodjob_mp as gj

CREATE_MARKS = "CREATE TABLE IF NOT EXISTS bench_marks (key text, pid int, at float8)"


@gj.job(queue="recovery")
def mark(key: str, first_sleep: float) -> None:
    with psycopg.connect(os.environ["GOOD_JOB_DATABASE_URL"], autocommit=True) as conn:
        earlier = conn.execute("SELECT count(*) FROM bench_marks WHERE key = %s", (key,))
        first = earlier.fetchone()[0] == 0
        conn.execute(
            "INSERT INTO bench_marks (key, pid, at) VALUES (%s, %s, %s)",
            (key, os.getpid(), time.time()),
        )
    if first:
        time.sleep(first_sleep)
