"""The dashboard in a real headless Chromium (Debian's ``chromium`` + ``chromium-driver``, driven
by Selenium; nothing is downloaded): every page on a database with real jobs, retry a discarded
job and watch a real worker run it again, toggle a cron entry, pause and unpause a queue, a
screenshot of the jobs page."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading

import pytest

pytest.importorskip("starlette", reason="the dashboard needs the 'web' extra")
uvicorn = pytest.importorskip("uvicorn", reason="the dashboard needs the 'web' extra")
pytest.importorskip("selenium", reason="browser tests need selenium (the 'web-test' extra)")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

import goodjob_mp as gj  # noqa: E402
from goodjob_mp.config import load_settings  # noqa: E402
from goodjob_mp.cron import parse_entries  # noqa: E402
from goodjob_mp.db import admin  # noqa: E402
from goodjob_mp.db.job_store import utcnow  # noqa: E402
from goodjob_mp.web import create_app  # noqa: E402
from goodjob_mp.worker.worker import Worker  # noqa: E402
from tests.dashboard_support import DiscardedOnce, cron_tick, make_job  # noqa: E402
from tests.waiting import wait_for  # noqa: E402

CHROMIUM = os.environ.get("GOOD_JOB_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("GOOD_JOB_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
CHROME_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1400,1000",
)

if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
    pytest.skip(
        f"browser tests need Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER}): "
        "apt-get install -y chromium chromium-driver",
        allow_module_level=True,
    )

ENTRIES = parse_entries({"heartbeat": {"cron": "*/10 * * * *", "class": cron_tick}})


@pytest.fixture(scope="module")
def browser():
    profile = tempfile.mkdtemp(prefix="goodjob-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROME_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def server(database_url):
    """The dashboard served by uvicorn on a free loopback port, in a thread of this process."""
    app = create_app(database_url=database_url, cron_entries=ENTRIES)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, name="dashboard-uvicorn", daemon=True)
    thread.start()
    assert wait_for(lambda: uv.started, timeout=30)
    yield f"http://127.0.0.1:{port}"
    uv.should_exit = True
    thread.join(10)
    app.state.dashboard.close()


def open_page(browser, url: str) -> None:
    browser.get(url)
    assert wait_for(lambda: browser.execute_script("return document.readyState") == "complete")


def test_every_page_loads_on_a_database_with_jobs(browser, server, db, tmp_path):
    for state in ("queued", "scheduled", "running", "succeeded", "discarded", "retried"):
        make_job(
            db,
            state,
            now=utcnow(),
            job_class=f"{state.title()}Job",
            arguments=["<script>alert(1)</script>"],
        )
    real = DiscardedOnce.perform_later("from-perform_later")  # written by enqueue, not by SQL
    cron_tick.set(priority=-5, labels=["nightly"]).perform_later()
    batch = gj.Batch(on_finish=cron_tick, description="nightly", properties={"user_id": 1})
    with batch:
        cron_tick.perform_later()
    gj.pause(queue="reports", connection=db)
    for path, heading in (
        ("/jobs", "Jobs"),
        (f"/jobs/{real.id}", "tests.dashboard_support.DiscardedOnce"),
        ("/jobs?label=nightly", "Jobs"),
        ("/jobs?state=discarded", "Jobs"),
        ("/cron", "Cron entries"),
        ("/processes", "Processes"),
        ("/performance", "Performance"),
        ("/batches", "Batches"),
        (f"/batches/{batch.id}", "nightly"),
        ("/pauses", "Pauses"),
    ):
        open_page(browser, server + path)
        assert browser.find_element(By.TAG_NAME, "h1").text.startswith(heading), path
        errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == [], path  # no blocked script, no CSP violation, no missing file
    open_page(browser, server + "/jobs")
    # The argument is shown as text and never ran (no alert is open).
    shown = [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "td.args")]
    assert sum("<script>alert(1)</script>" in text for text in shown) == 6
    assert browser.execute_script("return document.querySelectorAll('td script').length") == 0
    link = browser.find_element(By.CSS_SELECTOR, "a.job-link")
    link.click()
    assert wait_for(lambda: "Executions" in browser.page_source)
    shot = tmp_path / "jobs-page.png"
    open_page(browser, server + "/jobs")
    assert browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    keep = os.environ.get("GOOD_JOB_DASHBOARD_SCREENSHOT")
    if keep:  # docs/dashboard.png is made this way
        shutil.copy(shot, keep)


def test_retry_a_discarded_job_and_a_real_worker_runs_it_again(browser, server, db):
    worker = Worker(load_settings({"queues": "dashboard", "poll_interval": 1.0, "max_threads": 1}))
    worker.start()
    try:
        handle = DiscardedOnce.perform_later("invoice-7")
        assert wait_for(lambda: _state(db, handle.id) == "discarded", timeout=30)
        open_page(browser, server + "/jobs?state=discarded")
        browser.find_element(By.CSS_SELECTOR, f'tr[data-job-id="{handle.id}"] a.job-link').click()
        assert wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "button.action-retry"))
        browser.find_element(By.CSS_SELECTOR, "button.action-retry").click()
        alert = browser.switch_to.alert  # the confirmation
        alert.accept()
        assert wait_for(lambda: "1 job retried." in browser.page_source, timeout=30)
        assert wait_for(lambda: _state(db, handle.id) == "succeeded", timeout=30)
        open_page(browser, f"{server}/jobs/{handle.id}")
        heading = browser.find_element(By.TAG_NAME, "h1").text
        assert "succeeded" in heading
        executions = browser.find_elements(By.CSS_SELECTOR, "section.execution")
        assert len(executions) == 2
        assert "not there yet" in executions[0].text and "succeeded" in executions[1].text
    finally:
        assert worker.shutdown(10)


def test_toggle_a_cron_entry(browser, server, db):
    open_page(browser, server + "/cron")
    row = 'tr[data-cron-key="heartbeat"]'
    assert browser.find_element(By.CSS_SELECTOR, f"{row} .badge").text == "enabled"
    browser.find_element(By.CSS_SELECTOR, f"{row} button.cron-toggle").click()
    assert wait_for(lambda: "Cron entry disabled." in browser.page_source, timeout=30)
    assert browser.find_element(By.CSS_SELECTOR, f"{row} .badge").text == "disabled"
    settings = db.execute(
        "SELECT value FROM good_job_settings WHERE key = 'cron_keys_disabled'"
    ).fetchone()
    assert settings == (["heartbeat"],)
    browser.find_element(By.CSS_SELECTOR, f"{row} button.cron-toggle").click()
    assert wait_for(lambda: "Cron entry enabled." in browser.page_source, timeout=30)
    assert browser.find_element(By.CSS_SELECTOR, f"{row} .badge").text == "enabled"


def test_pause_and_unpause_a_queue_from_the_pauses_page(browser, server, db):
    open_page(browser, server + "/pauses")
    browser.find_element(By.CSS_SELECTOR, "form.pause-form input[name=name]").send_keys("mail")
    browser.find_element(By.CSS_SELECTOR, "form.pause-form button.pause").click()
    assert wait_for(lambda: "Paused." in browser.page_source, timeout=30)
    row = 'tr[data-pause="queue:mail"]'
    assert browser.find_elements(By.CSS_SELECTOR, row)
    assert "mail" in gj.pauses(connection=db).queues
    browser.find_element(By.CSS_SELECTOR, f"{row} button.unpause").click()
    assert wait_for(lambda: "Unpaused." in browser.page_source, timeout=30)
    assert not browser.find_elements(By.CSS_SELECTOR, row)
    assert "mail" not in gj.pauses(connection=db).queues


def _state(db, job_id) -> str | None:
    detail = admin.find_job(db, job_id)
    return detail.job["state"] if detail else None
