"""The dashboard's batches and pauses pages (issue 11), over HTTP with a real PostgreSQL: they
show what ``goodjob-supervisor batches`` and ``pauses`` show, and pause/unpause go through the
same functions, behind CSRF and read-only mode."""

from __future__ import annotations

import re
import uuid

import pytest

pytest.importorskip("starlette", reason="the dashboard needs the 'web' extra")
pytest.importorskip("httpx", reason="Starlette's test client needs httpx (the 'web-test' extra)")

from starlette.testclient import TestClient  # noqa: E402

import goodjob_mp as gj  # noqa: E402
from goodjob_mp.db import batches, settings_store  # noqa: E402
from goodjob_mp.web import create_app  # noqa: E402
from tests import jobs_for_batches as B  # noqa: E402
from tests import jobs_for_tests as J  # noqa: E402

XSS = "<script>alert(1)</script>"


@pytest.fixture()
def client(db, database_url):
    app = create_app(database_url=database_url, cron_entries={})
    with TestClient(app) as c:
        yield c
    app.state.dashboard.close()


@pytest.fixture()
def records(tmp_path, monkeypatch):
    monkeypatch.setenv(J.RECORD_DIR_ENV, str(tmp_path))
    return tmp_path


def token(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_batches_list_and_one_batch(client, db, records):
    gj.configure(execution_mode="inline")
    batch = gj.Batch(on_finish=B.ReportDone, description=XSS, properties={"note": XSS})
    with batch:
        B.Item.perform_later(1)
        B.Item.perform_later(2, "discard")
    html = client.get("/batches").text
    assert f'data-batch-id="{batch.id}"' in html
    assert XSS not in html and "&lt;script&gt;" in html
    row = re.search(rf'data-batch-id="{batch.id}">(.*?)</tr>', html, re.S).group(1)
    cells = re.findall(r"<td>(\d+)</td>", row)
    assert cells == ["2", "2", "1", "1"]  # jobs, finished, discarded, callbacks
    assert "state-discarded" in row
    one = client.get(f"/batches/{batch.id}").text
    assert XSS not in one
    assert one.count("<td>job</td>") == 2 and one.count("<td>callback</td>") == 1
    assert "tests.jobs_for_batches.ReportDone" in one
    assert client.get(f"/batches/{uuid.uuid4()}").status_code == 404
    assert client.get("/batches/not-an-id").status_code == 404


def test_batches_page_pages_with_a_keyset_cursor(client, db):
    made = []
    for n in range(30):
        b = gj.Batch(description=f"b{n:02d}")
        b.save()
        made.append(b)
    first = client.get("/batches").text
    assert first.count("data-batch-id=") == 25
    cursor = re.search(r'href="/batches\?before=([^"]+)"', first).group(1)
    second = client.get(f"/batches?before={cursor}").text
    ids = set(re.findall(r'data-batch-id="([^"]+)"', first + second))
    assert ids == {str(b.id) for b in made}
    assert "Older batches" not in second
    assert client.get("/batches?before=junk").status_code == 400


def test_batches_page_shows_the_cli_rows(client, db):
    b = gj.Batch(description="same as cli")
    b.save()
    (summary,) = batches.list_batches(db)
    html = client.get("/batches").text
    assert summary.state == "pending" and "state-pending" in html


def test_pause_and_unpause_from_the_page(client, db):
    page = client.get("/pauses")
    assert "Nothing is paused." in page.text
    csrf = token(page.text)
    done = client.post("/pauses/pause", data={"csrf_token": csrf, "kind": "queue", "name": "mail"})
    assert done.status_code == 200 and "Paused." in done.text
    assert settings_store.read_pauses(db).queues == ("mail",)
    client.post("/pauses/pause", data={"csrf_token": csrf, "kind": "label", "name": XSS})
    html = client.get("/pauses").text
    assert 'data-pause="queue:mail"' in html and XSS not in html
    assert settings_store.read_pauses(db).labels == (XSS,)
    gone = client.post(
        "/pauses/unpause", data={"csrf_token": csrf, "kind": "queue", "name": "mail"}
    )
    assert "Unpaused." in gone.text and settings_store.read_pauses(db).queues == ()
    again = client.post(
        "/pauses/unpause", data={"csrf_token": csrf, "kind": "queue", "name": "mail"}
    )
    assert "Nothing changed." in again.text
    bad = client.post("/pauses/pause", data={"csrf_token": csrf, "kind": "table", "name": "x"})
    assert bad.status_code == 400


def test_pause_needs_the_csrf_token(client, db):
    client.get("/pauses")
    refused = client.post("/pauses/pause", data={"kind": "queue", "name": "mail"})
    assert refused.status_code == 403
    assert settings_store.read_pauses(db).queues == ()


def test_pauses_page_shows_what_the_api_paused_and_read_only_refuses(db, database_url):
    gj.pause(queue="reports", connection=db)
    app = create_app(database_url=database_url, read_only=True, cron_entries={})
    with TestClient(app) as client:
        html = client.get("/pauses").text
        assert 'data-pause="queue:reports"' in html
        assert 'class="unpause"' not in html and 'class="pause"' not in html
        refused = client.post(
            "/pauses/unpause", data={"csrf_token": "x", "kind": "queue", "name": "reports"}
        )
        assert refused.status_code == 403 and "read-only" in refused.text
    app.state.dashboard.close()
    assert settings_store.read_pauses(db).queues == ("reports",)
