"""The dashboard app over HTTP (Starlette's test client, real PostgreSQL): pages, escaping, CSRF,
auth, read-only mode, mounting under a prefix, the ``dashboard`` and ``jobs`` commands."""

from __future__ import annotations

import base64
import re
import subprocess
import urllib.request
import uuid

import pytest

pytest.importorskip("starlette", reason="the dashboard needs the 'web' extra")
pytest.importorskip("httpx", reason="Starlette's test client needs httpx (the 'web-test' extra)")

from click.testing import CliRunner  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from goodjob_mp.cli import main, supervisor_command  # noqa: E402
from goodjob_mp.cron import parse_entries  # noqa: E402
from goodjob_mp.dashboard_cli import is_loopback, parse_bind  # noqa: E402
from goodjob_mp.db import admin  # noqa: E402
from goodjob_mp.web import BasicAuth, charts, create_app  # noqa: E402
from goodjob_mp.web.security import csrf_ok, new_csrf_token, origin_ok  # noqa: E402
from tests.dashboard_support import cron_tick, make_job  # noqa: E402
from tests.waiting import wait_for  # noqa: E402

XSS = "<script>alert(1)</script>"
ENTRIES = parse_entries({"tick": {"cron": "*/5 * * * *", "class": cron_tick}})


@pytest.fixture()
def client(db, database_url):
    app = create_app(database_url=database_url, cron_entries=ENTRIES)
    with TestClient(app) as c:
        yield c
    app.state.dashboard.close()


def token(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_every_page_renders(client, db):
    make_job(db, "discarded", arguments=["x"])
    make_job(db, "running")
    for path in ("/jobs", "/jobs?state=discarded", "/cron", "/processes", "/performance"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert "goodjob_mp" in response.text
    assert client.get("/", follow_redirects=False).headers["location"] == "/jobs"
    searched = client.get("/jobs?search=zzz").text
    assert "Searched 2 jobs." in searched and "No jobs match." in searched


def test_a_script_argument_renders_as_text(client, db):
    job_id = make_job(db, "discarded", arguments=[XSS], error=f"ValueError: {XSS}", labels=[XSS])
    for path in ("/jobs", f"/jobs/{job_id}", f"/jobs?search={XSS}"):
        html = client.get(path).text
        assert XSS not in html, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, path
    headers = client.get("/jobs").headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"


def test_job_page_shows_executions_with_backtrace(client, db):
    import datetime as dt

    from tests.dashboard_support import NOW, add_execution

    job_id = make_job(db, "discarded", labels=["billing"])
    add_execution(
        db, job_id, started=NOW, seconds=0.25, error="GoneError: gone", event=5,
        backtrace=["jobs.py:12 in perform", "execution.py:80 in run"],
    )  # fmt: skip
    html = client.get(f"/jobs/{job_id}").text
    assert "GoneError: gone" in html and "jobs.py:12 in perform" in html
    assert "250 ms" in html and "billing" in html and "discarded" in html
    assert dt.datetime  # the page's timings come from the rows above
    assert client.get(f"/jobs/{uuid.uuid4()}").status_code == 404
    assert client.get("/jobs/not-a-uuid").status_code == 400


def test_actions_need_the_forms_csrf_token(client, db):
    job_id = make_job(db, "queued")
    page = client.get(f"/jobs/{job_id}").text
    assert client.post(f"/jobs/{job_id}/discard").status_code == 403
    assert client.post(f"/jobs/{job_id}/discard", data={"csrf_token": "x.y"}).status_code == 403
    forged = new_csrf_token(b"someone else's secret")
    client.cookies.set("goodjob_csrf", forged)
    assert client.post(f"/jobs/{job_id}/discard", data={"csrf_token": forged}).status_code == 403
    client.cookies.clear()
    page = client.get(f"/jobs/{job_id}").text
    cross = client.post(
        f"/jobs/{job_id}/discard",
        data={"csrf_token": token(page)},
        headers={"origin": "https://evil.example"},
    )
    assert cross.status_code == 403
    assert admin.find_job(db, job_id).job["state"] == "queued"
    ok = client.post(f"/jobs/{job_id}/discard", data={"csrf_token": token(page)})
    assert ok.status_code == 200 and "1 job discarded." in ok.text
    assert admin.find_job(db, job_id).job["state"] == "discarded"


def test_bulk_actions_on_selected_and_on_the_filter(client, db):
    a, b, c = (make_job(db, "discarded", queue_name="mail") for _ in range(3))
    other = make_job(db, "discarded", queue_name="other")
    html = client.get("/jobs?state=discarded").text
    selected = client.post(
        "/jobs/bulk",
        data={"csrf_token": token(html), "action": "retry", "job_id": [str(a), str(b)]},
        follow_redirects=False,
    )
    assert selected.status_code == 303
    assert {admin.find_job(db, j).job["state"] for j in (a, b)} == {"queued"}
    filtered = client.post(
        "/jobs/bulk",
        data={
            "csrf_token": token(html),
            "action": "destroy",
            "scope": "all",
            "filter_state": "discarded",
            "filter_queue": "mail",
        },
    )
    assert "1 job destroyed." in filtered.text
    assert admin.find_job(db, c) is None and admin.find_job(db, other) is not None


def test_read_only_hides_buttons_and_refuses_posts(db, database_url):
    job_id = make_job(db, "queued")
    app = create_app(database_url=database_url, read_only=True, cron_entries=ENTRIES)
    with TestClient(app) as client:
        html = client.get(f"/jobs/{job_id}").text
        assert "read-only" in html and 'class="action-discard"' not in html
        assert 'class="cron-toggle"' not in client.get("/cron").text
        assert "csrf_token" not in html  # no forms at all
        refused = client.post(f"/jobs/{job_id}/discard", data={"csrf_token": "x"})
        assert refused.status_code == 403 and "read-only" in refused.text
    app.state.dashboard.close()
    assert admin.find_job(db, job_id).job["state"] == "queued"


def test_basic_auth_and_callable_auth(db, database_url):
    app = create_app(database_url=database_url, auth=BasicAuth("admin", "s3cret"))
    with TestClient(app) as client:
        denied = client.get("/jobs")
        assert denied.status_code == 401 and "Basic" in denied.headers["www-authenticate"]
        bad = base64.b64encode(b"admin:wrong").decode()
        assert client.get("/jobs", headers={"authorization": f"Basic {bad}"}).status_code == 401
        good = base64.b64encode(b"admin:s3cret").decode()
        assert client.get("/jobs", headers={"authorization": f"Basic {good}"}).status_code == 200
    app.state.dashboard.close()
    app = create_app(
        database_url=database_url, auth=lambda request: request.headers.get("x-staff") == "yes"
    )
    with TestClient(app) as client:
        assert client.get("/jobs").status_code == 403
        assert client.get("/jobs", headers={"x-staff": "yes"}).status_code == 200
    app.state.dashboard.close()

    async def staff_only(request):
        return request.headers.get("x-staff") == "yes"

    app = create_app(database_url=database_url, auth=staff_only)
    with TestClient(app) as client:
        assert client.get("/processes").status_code == 403
        assert client.get("/processes", headers={"x-staff": "yes"}).status_code == 200
    app.state.dashboard.close()


def test_an_oversized_form_is_refused_unread(client, db):
    job_id = make_job(db, "queued")
    html = client.get(f"/jobs/{job_id}").text
    big = {"csrf_token": token(html), "padding": "x" * (300 * 1024)}
    assert client.post(f"/jobs/{job_id}/discard", data=big).status_code == 413
    assert admin.find_job(db, job_id).job["state"] == "queued"


def test_cron_toggle_and_run_now(client, db):
    html = client.get("/cron").text
    assert "*/5 * * * *" in html and "enabled" in html
    off = client.post("/cron/tick/disable", data={"csrf_token": token(html)})
    assert "Cron entry disabled." in off.text and 'class="badge cron-disabled"' in off.text
    run = client.post("/cron/tick/run", data={"csrf_token": token(html)})
    assert "Cron entry enqueued." in run.text
    assert db.execute("SELECT count(*) FROM good_jobs WHERE cron_key = 'tick'").fetchone()[0] == 1
    assert client.post("/cron/nope/run", data={"csrf_token": token(html)}).status_code == 404


def test_mounted_under_a_prefix_in_starlette_django_asgi_and_flask(db, database_url):
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount

    job_id = make_job(db, "queued")
    dashboard = create_app(database_url=database_url, cron_entries=ENTRIES)
    host = Starlette(routes=[Mount("/admin/jobs", app=dashboard)])  # as FastAPI's app.mount
    with TestClient(host) as client:
        html = client.get("/admin/jobs/jobs").text
        assert f'href="/admin/jobs/jobs/{job_id}"' in html
        assert 'href="/admin/jobs/static/dashboard.css"' in html
        assert client.get("/admin/jobs/static/dashboard.css").status_code == 200
        posted = client.post(
            f"/admin/jobs/jobs/{job_id}/reschedule",
            data={"csrf_token": token(html)},
            follow_redirects=False,
        )
        assert posted.headers["location"].startswith(f"/admin/jobs/jobs/{job_id}?")
    dashboard.state.dashboard.close()

    # docs/dashboard.md's Django asgi.py dispatcher, with a stand-in for Django's app.
    dashboard = create_app(database_url=database_url, cron_entries=ENTRIES)

    async def django_app(scope, receive, send):
        await PlainTextResponse("django")(scope, receive, send)

    async def application(scope, receive, send):
        path = scope.get("path", "")
        if scope["type"] == "http" and (path == "/jobs" or path.startswith("/jobs/")):
            scope = dict(scope, root_path=scope.get("root_path", "") + "/jobs")
            await dashboard(scope, receive, send)
        else:
            await django_app(scope, receive, send)

    client = TestClient(application)  # no lifespan: the stand-in only speaks HTTP
    assert client.get("/other").text == "django"
    html = client.get("/jobs/jobs").text
    assert f'href="/jobs/jobs/{job_id}"' in html
    assert client.get(f"/jobs/jobs/{job_id}").status_code == 200
    dashboard.state.dashboard.close()

    flask = pytest.importorskip("flask")
    a2wsgi = pytest.importorskip("a2wsgi")
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    site = flask.Flask("site")
    dashboard = create_app(database_url=database_url, cron_entries=ENTRIES)
    site.wsgi_app = DispatcherMiddleware(
        site.wsgi_app, {"/jobs-admin": a2wsgi.ASGIMiddleware(dashboard)}
    )
    with site.test_client() as c:
        html = c.get("/jobs-admin/jobs").get_data(as_text=True)
        assert f'href="/jobs-admin/jobs/{job_id}"' in html
        assert c.get("/jobs-admin/static/dashboard.js").status_code == 200
    dashboard.state.dashboard.close()


def test_security_helpers():
    secret = b"k" * 32
    tok = new_csrf_token(secret)
    assert csrf_ok(secret, tok, tok)
    assert not csrf_ok(secret, tok, new_csrf_token(secret))
    assert not csrf_ok(b"other" * 8, tok, tok)
    assert not csrf_ok(secret, None, tok)
    assert origin_ok(None, "h:1") and origin_ok("http://h:1", "h:1")
    assert not origin_ok("http://evil:1", "h:1")
    assert BasicAuth("u", "p").check("Basic " + base64.b64encode(b"u:p").decode())
    assert not BasicAuth("u", "p").check("Basic !!!")


def test_charts_escape_names_and_fold_extra_series():
    series = {f"<b>Job{i}</b>": [i, i + 1] for i in range(10)}
    svg = str(charts.line_chart(series, ["12:00", "12:01"], title="t"))
    assert "<b>" not in svg and "&lt;b&gt;Job9&lt;/b&gt;" in svg
    assert "other (2)" in svg
    top = charts.top_series(series, limit=8)
    assert top[-1] == ("other (2)", [0 + 1, 1 + 2])
    bars = str(charts.duration_bars([("<i>x</i>", 0.1, 0.5)], title="d"))
    assert "&lt;i&gt;" in bars and "100 ms / 500 ms" in bars
    assert charts.format_seconds(90) == "90.0 s" and charts.format_seconds(600) == "10.0 min"


def test_bind_parsing():
    assert parse_bind("127.0.0.1:8088") == ("127.0.0.1", 8088)
    assert parse_bind("[::1]:9000") == ("::1", 9000)
    for bad in ("8088", "host:http", "h:70000"):
        with pytest.raises(ValueError, match="--bind"):
            parse_bind(bad)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0")


def test_jobs_commands_use_the_same_store(db):
    discarded = make_job(db, "discarded", queue_name="mail")
    queued = make_job(db, "queued")
    runner = CliRunner()
    listed = runner.invoke(main, ["jobs", "list", "--state", "discarded"])
    assert listed.exit_code == 0 and str(discarded) in listed.output
    retried = runner.invoke(main, ["jobs", "retry", str(discarded), str(queued)])
    assert retried.exit_code == 0, retried.output
    assert "retry: 1 job(s)" in retried.output and "1 left as they were" in retried.output
    assert admin.find_job(db, discarded).job["state"] == "queued"
    bulk = runner.invoke(main, ["jobs", "discard", "--all", "--queue", "mail"])
    assert bulk.exit_code == 0 and "discard: 1 job(s)" in bulk.output
    refused = runner.invoke(main, ["jobs", "destroy"])
    assert refused.exit_code == 2 and "give job ids, or --all" in refused.output
    bad = runner.invoke(main, ["jobs", "destroy", "nope"])
    assert bad.exit_code == 2 and "job id 'nope' is not a UUID" in bad.output


def test_dashboard_command_refuses_an_open_bind_without_auth():
    result = CliRunner().invoke(main, ["dashboard", "--bind", "0.0.0.0:8088"])
    assert result.exit_code == 1
    assert "refusing to serve the dashboard on 0.0.0.0 without auth" in result.output


def test_dashboard_command_serves_with_uvicorn(db, tmp_path):
    import socket

    make_job(db, "queued", job_class="ServedJob")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        supervisor_command("dashboard", "--bind", f"127.0.0.1:{port}", "--read-only"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def page() -> str | None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/jobs", timeout=5) as r:
                    return r.read().decode()
            except OSError:
                return None

        assert wait_for(page, timeout=30, step=0.2)
        assert "ServedJob" in page() and "read-only" in page()
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert f"dashboard on http://127.0.0.1:{port}/ (read-only)" in out


def test_database_down_is_one_clear_line(db, monkeypatch):
    from goodjob_mp.db import connection

    down = "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2"
    app = create_app(database_url=down, cron_entries=ENTRIES)
    with TestClient(app) as client:
        page = client.get("/jobs")
    assert page.status_code == 503 and "The database cannot be reached" in page.text
    monkeypatch.setenv("GOOD_JOB_DATABASE_URL", down)
    connection.reset_database_url()  # this process resolved the test database before
    try:
        result = CliRunner().invoke(main, ["dashboard"], catch_exceptions=False)
    finally:
        monkeypatch.undo()
        connection.reset_database_url()
    assert result.exit_code == 1 and "cannot connect to the database" in result.output
    assert "Traceback" not in result.output


def test_rails_goodjob_rows_render_on_every_page(client, db):
    from tests.dashboard_support import load_goodjob_reference

    load_goodjob_reference(db)
    jobs = client.get("/jobs?limit=50").text
    for job_class in ("BlockingJob", "RetryStoppedJob", "SerializedArgsJob", "LabeledJob"):
        assert job_class in jobs
    interrupted = client.get("/jobs/a6ee82b2-3254-480b-b97f-f62afaa243c7").text
    assert "GoodJob::InterruptedError" in interrupted and "Executions (2)" in interrupted
    processes = client.get("/processes").text
    assert "work,crash,reports" in processes and "capture_fixtures.rb" in processes
    assert client.get("/performance?minutes=1440").status_code == 200
