"""goodjob_mp.contrib.flask, .starlette and .fastapi: the example apps under examples/ started
for real (Flask's test client, Starlette's TestClient, FastAPI under a real uvicorn), a job
enqueued over HTTP and run by async-mode workers in the app's process against real PostgreSQL,
the dashboard mounted, and a clean stop: no goodjob_mp thread left, the process row gone."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from types import ModuleType

import pytest

from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
_loaded: dict[str, ModuleType] = {}


def example(name: str) -> ModuleType:
    """examples/<name>/app.py, imported once (its job is registered once per process)."""
    if name not in _loaded:
        spec = importlib.util.spec_from_file_location(
            f"example_{name}_app", EXAMPLES / name / "app.py"
        )
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _loaded[name] = module
    return _loaded[name]


def needs(*modules: str) -> None:
    # The examples mount the dashboard, so the web extra (starlette, jinja2) is needed too.
    for module in ("starlette", "jinja2", *modules):
        pytest.importorskip(module)


def goodjob_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("gj-")]


def process_rows(db) -> int:
    return db.execute("SELECT count(*) FROM good_job_processes").fetchone()[0]


@pytest.fixture(autouse=True)
def _no_workers_left():
    from goodjob_mp import modes

    yield
    modes.shutdown(5)


def test_flask_extension_runs_jobs_in_async_mode_and_stops_cleanly(db, monkeypatch):
    needs("flask", "a2wsgi")
    monkeypatch.setenv("GOOD_JOB_POLL_INTERVAL", "1")
    mod = example("flask")
    app = mod.create_app()
    with app.test_client() as client:
        assert goodjob_threads() == []  # started by the first request, after any fork
        posted = client.post("/greet?name=ada")
        assert posted.status_code == 202
        job_id = posted.get_json()["job"]
        assert goodjob_threads()
        assert wait_for(lambda: client.get(f"/jobs/{job_id}").get_json()["state"] == "succeeded")
        assert process_rows(db) == 1
        html = client.get("/good_job/jobs").get_data(as_text=True)
        assert job_id in html
    assert mod.goodjob.shutdown() is True
    assert wait_for(lambda: goodjob_threads() == []), goodjob_threads()
    assert process_rows(db) == 0


def test_flask_extension_starts_nothing_outside_async_mode(db):
    needs("flask", "a2wsgi")
    mod = example("flask")
    app = mod.create_app({"GOOD_JOB": {"execution_mode": "external"}})
    with app.test_client() as client:
        job_id = client.post("/greet").get_json()["job"]
        assert client.get(f"/jobs/{job_id}").get_json()["state"] == "queued"
    assert goodjob_threads() == [] and process_rows(db) == 0
    assert mod.goodjob.shutdown() is True


def test_starlette_lifespan_runs_jobs_in_async_mode_and_stops_cleanly(db, monkeypatch):
    needs("httpx")
    from starlette.testclient import TestClient

    monkeypatch.setenv("GOOD_JOB_POLL_INTERVAL", "1")
    app = example("starlette").create_app()
    with TestClient(app) as client:  # runs the lifespan: workers start here
        assert goodjob_threads() and process_rows(db) == 1
        posted = client.post("/greet", params={"name": "ada"})
        assert posted.status_code == 202
        job_id = posted.json()["job"]
        assert wait_for(lambda: client.get(f"/jobs/{job_id}").json()["state"] == "succeeded")
        assert job_id in client.get("/good_job/jobs").text
        dashboard = app.state.goodjob_dashboards[0].state.dashboard
        assert dashboard._pool is not None
    assert wait_for(lambda: goodjob_threads() == []), goodjob_threads()
    assert process_rows(db) == 0
    assert dashboard._pool is None  # closed by the lifespan


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _http(method: str, url: str) -> dict:
    request = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_fastapi_lifespan_under_uvicorn_runs_jobs_and_stops_on_term(db, database_url, tmp_path):
    needs("fastapi", "uvicorn")
    port = _free_port()
    log_path = tmp_path / "uvicorn.log"
    env = {
        **os.environ,
        "GOOD_JOB_DATABASE_URL": database_url,
        "GOOD_JOB_POLL_INTERVAL": "1",
        "PYTHONPATH": str(ROOT),
    }
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--app-dir", str(EXAMPLES / "fastapi"),
             "app:create_app", "--factory", "--port", str(port), "--log-level", "info"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:

            def up() -> bool:
                try:
                    return (
                        _http("GET", f"{base}/jobs/00000000-0000-0000-0000-000000000000") and False
                    )
                except urllib.error.HTTPError as exc:
                    return exc.code == 404
                except OSError:
                    return False

            assert wait_for(up, timeout=60, step=0.2), log_path.read_text()
            assert process_rows(db) == 1  # the lifespan started the workers before serving
            job_id = _http("POST", f"{base}/greet?name=ada")["job"]

            def succeeded() -> bool:
                return _http("GET", f"{base}/jobs/{job_id}")["state"] == "succeeded"

            assert wait_for(succeeded, timeout=60, step=0.1), log_path.read_text()
            with urllib.request.urlopen(f"{base}/good_job/jobs", timeout=10) as page:
                assert job_id in page.read().decode()
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=60)
    output = log_path.read_text()
    # uvicorn >= 0.29 re-raises the TERM it handled once it has shut down cleanly.
    assert code in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output, output
    assert "Finished server process" in output, output
    assert process_rows(db) == 0
