"""Screenshots of the dashboard for docs/ (jobs, one job, cron, processes, performance, batches,
one batch, pauses).

    python3 scripts/dashboard_screenshots.py [--out docs]

Makes its own database on the server (GOOD_JOB_TEST_SERVER_URL, else 127.0.0.1:5432), fills it
with a plausible mix of jobs, executions from the last hour, one supervisor's process row, three
batches (made with gj.Batch) and two pauses,
serves the dashboard with uvicorn on a free loopback port and photographs each page with
Debian's headless Chromium (Selenium + /usr/bin/chromedriver). Drops the database afterwards.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import shutil
import socket
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from goodjob_mp.cron import parse_entries  # noqa: E402
from goodjob_mp.db.job_store import utcnow  # noqa: E402
from goodjob_mp.db.migrate import migrate  # noqa: E402
from scripts.bench_dashboard import server_url, with_db  # noqa: E402
from tests.dashboard_support import add_execution, cron_tick, make_job  # noqa: E402

CLASSES = [
    ("Billing::ChargeInvoice", "billing"),  # a Rails app's job, on the same tables
    ("Mailer::SendWelcome", "mail"),
    ("Reports::Nightly", "reports"),
    ("app.jobs.resize_image", "default"),
    ("app.jobs.sync_crm", "default"),
]
STATES = ["succeeded"] * 12 + ["discarded"] * 2 + ["queued"] * 3 + ["scheduled"] * 2 + ["running"]
BACKTRACE = [
    'File "app/jobs.py", line 42, in perform',
    'File "goodjob_mp/execution.py", line 120, in perform',
]


def fill(conn: psycopg.Connection, now: dt.datetime) -> uuid.UUID:
    rng = random.Random(3)
    discarded = None
    for i in range(40):
        job_class, queue = rng.choice(CLASSES)
        state = rng.choice(STATES)
        job_id = make_job(
            conn,
            state,
            now=now - dt.timedelta(minutes=i),
            job_class=job_class,
            queue_name=queue,
            priority=rng.choice([0, 0, -10, 5]),
            labels=rng.choice([None, None, ["vip"], ["eu", "batch"]]),
            arguments=[rng.randint(1, 9999), {"account": f"acct-{rng.randint(1, 99)}"}],
        )
        if state in ("succeeded", "discarded"):
            failed = state == "discarded"
            add_execution(
                conn,
                job_id,
                started=now - dt.timedelta(minutes=i, seconds=3),
                seconds=rng.random() * 2,
                job_class=job_class,
                queue_name=queue,
                error="GoneError: record 7 no longer exists" if failed else None,
                event=5 if failed else None,
                backtrace=BACKTRACE if failed else None,
            )
            discarded = job_id if failed else discarded
    for minute in range(60):
        for _ in range(rng.randint(5, 40)):
            job_class, queue = rng.choice(CLASSES)
            add_execution(
                conn,
                uuid.uuid4(),
                started=now - dt.timedelta(minutes=minute, seconds=rng.randint(0, 59)),
                seconds=rng.expovariate(3 if queue != "reports" else 0.5),
                job_class=job_class,
                queue_name=queue,
            )
    state = {
        "hostname": "worker-1",
        "pid": 4242,
        "memory": 81234,
        "proctitle": "goodjob-supervisor: 2 pools",
        "schedulers": [
            {"queues": "mail,billing", "max_threads": 2, "active_threads": 1, "state": "running"},
            {"queues": "*", "max_threads": 5, "active_threads": 3, "state": "running"},
        ],
    }
    conn.execute(
        "INSERT INTO good_job_processes (id, created_at, updated_at, state, lock_type) "
        "VALUES (%s, %s, %s, %s, 0)",
        (uuid.uuid4(), now - dt.timedelta(hours=2), now - dt.timedelta(seconds=4), Jsonb(state)),
    )
    assert discarded is not None
    return discarded


def fill_batches(conn: psycopg.Connection) -> uuid.UUID:
    """Three batches: one done (its callback run), one under way, one with a discarded job."""
    import goodjob_mp as gj
    from goodjob_mp.features.batches import continue_discard_or_finish

    finish = "UPDATE good_jobs SET finished_at = now() AT TIME ZONE 'UTC', error = %s WHERE id = %s"
    made = []
    for description, jobs, done, discarded in (
        ("Nightly invoices 2026-12-02", 6, 6, 0),
        ("CSV import: customers.csv", 10, 4, 0),
        ("Thumbnail backfill", 4, 4, 1),
    ):
        batch = gj.Batch(
            on_finish="Reports::BatchFinishedJob",
            on_discard=cron_tick,
            callback_queue_name="default",
            description=description,
            properties={"requested_by": "ops@example.com"},
        )
        with gj.using_connection(conn), batch:
            ids = [cron_tick.perform_later().id for _ in range(jobs)]
        for n, job_id in enumerate(ids[:done]):
            conn.execute(finish, ("GoneError: image 7 is gone" if n < discarded else None, job_id))
            with conn.transaction():
                continue_discard_or_finish(conn, batch.id, discarded=n < discarded)
        made.append(batch.id)
    conn.execute("UPDATE good_jobs SET finished_at = now() AT TIME ZONE 'UTC'"
                 " WHERE batch_callback_id = %s", (made[0],))  # fmt: skip
    with conn.transaction():
        continue_discard_or_finish(conn, made[0])
    gj.pause(queue="reports", connection=conn)
    gj.pause(label="vip", connection=conn)
    return made[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs"), help="Folder for the PNG files.")
    args = parser.parse_args()
    import uvicorn
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from goodjob_mp.web import create_app

    server = server_url()
    dbname = f"goodjob_screenshots_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    url = with_db(server, dbname)
    profile = tempfile.mkdtemp(prefix="goodjob-chromium-")
    try:
        with psycopg.connect(url, autocommit=True, options="-c timezone=UTC") as conn:
            migrate(conn)
            discarded = fill(conn, utcnow())
            batch = fill_batches(conn)
        entries = parse_entries(
            {
                "nightly_report": {
                    "cron": "0 3 * * *",
                    "class": cron_tick,
                    "description": "Nightly revenue report",
                },
                "sync": {"cron": "*/5 * * * *", "class": cron_tick},
            }
        )
        app = create_app(database_url=url, cron_entries=entries)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        threading.Thread(target=uv.run, daemon=True).start()
        while not uv.started:
            time.sleep(0.05)
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for flag in (
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1400,900",
            f"--user-data-dir={profile}",
        ):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        try:
            for name, path in (
                ("jobs", "/jobs"),
                ("job", f"/jobs/{discarded}"),
                ("cron", "/cron"),
                ("processes", "/processes"),
                ("performance", "/performance"),
                ("batches", "/batches"),
                ("batch", f"/batches/{batch}"),
                ("pauses", "/pauses"),
            ):
                driver.get(f"http://127.0.0.1:{port}{path}")
                target = Path(args.out) / f"dashboard-{name}.png"
                driver.save_screenshot(str(target))
                print(target)
        finally:
            driver.quit()
            uv.should_exit = True
            app.state.dashboard.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    sys.exit(main())
