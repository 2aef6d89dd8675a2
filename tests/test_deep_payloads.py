"""Arguments nested too deeply to decode (issue 15.7): refused at enqueue with a clear error; a
row that a foreign writer put there is discarded as unreadable by a real worker, whose child
stays up and goes on running the other jobs."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import threading
import uuid

import pytest

from goodjob_mp.db.jsonb import UnreadableJSON, loads
from goodjob_mp.serialization import (
    MAX_NESTING,
    DeserializationError,
    SerializationError,
    deserialize_arguments,
    dumps,
    serialize_arguments,
)
from tests import jobs_for_tests as J
from tests.supervising import *  # noqa: F403 - fixtures
from tests.waiting import wait_for

DEPTH = 5000


def nested_list(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


def insert_raw(db, job_class: str, arguments_json: str) -> uuid.UUID:
    """Insert a job row by hand, as a foreign writer would: the payload goes in as JSON text,
    so no Python encoder limits what it holds."""
    job_id = uuid.uuid4()
    params = (
        f'{{"job_class": "{job_class}", "job_id": "{job_id}", "queue_name": "default",'
        f' "priority": null, "executions": 0, "arguments": {arguments_json}}}'
    )
    db.execute(
        "INSERT INTO good_jobs (id, active_job_id, job_class, queue_name, priority,"
        " serialized_params, scheduled_at, created_at, updated_at)"
        " VALUES (%s, %s, %s, 'default', 0, %s::jsonb, now() AT TIME ZONE 'UTC',"
        " now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC')",
        (job_id, job_id, job_class, params),
    )
    return job_id


def json_depth(value) -> int:
    depth, level = 0, [(value, 1)]
    while level:
        item, d = level.pop()
        if isinstance(item, (list, dict)):
            depth = max(depth, d)
            level.extend((v, d + 1) for v in (item.values() if isinstance(item, dict) else item))
    return depth


def test_enqueue_refuses_arguments_nested_too_deeply(db):
    for depth in (MAX_NESTING + 1, DEPTH):
        with pytest.raises(SerializationError) as caught:
            J.remember.perform_later(nested_list(depth))
        message = str(caught.value)
        assert f"nested more than {MAX_NESTING} containers deep" in message, message
        assert "inside argument 1" in message and "more)" in message
        assert caught.value.path == "args[0]" + "[0]" * MAX_NESTING
    with pytest.raises(SerializationError) as caught:
        J.remember.perform_later("x", extra=nested_list(MAX_NESTING))  # + the keywords hash
    assert caught.value.path.startswith("kwargs['extra'][0]")
    with pytest.raises(SerializationError):
        J.remember.perform_later(nested_tuple(MAX_NESTING + 1))
    assert db.execute("SELECT count(*) FROM good_jobs").fetchone()[0] == 0


def nested_tuple(depth: int) -> tuple:
    value: tuple = ()
    for _ in range(depth - 1):
        value = (value,)
    return value


def ruby_decodes(text: str) -> bool:
    """Whether Active Support (what Rails' jsonb columns decode with) reads ``text``."""
    done = subprocess.run(
        [
            "ruby",
            "-ractive_support",
            "-ractive_support/json",
            "-e",
            "ActiveSupport::JSON.decode(STDIN.read)",
        ],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if "cannot load such file" in done.stderr:
        pytest.skip("Ruby lacks Active Support")
    return done.returncode == 0


def test_the_deepest_accepted_arguments_are_read_back_by_rails_and_by_the_worker():
    from goodjob_mp.enqueue import build_serialized_params

    for args, kwargs in (
        ([nested_list(MAX_NESTING)], {}),
        ([], {"extra": nested_list(MAX_NESTING - 1)}),
        ([nested_tuple(MAX_NESTING)], {}),
    ):
        arguments = serialize_arguments(args, kwargs)
        params = build_serialized_params(
            "X", uuid.uuid4(), "q", None, arguments, dt.datetime(2026, 1, 1), None
        )
        text = dumps(params)
        stored = json.loads(text)
        if not isinstance(args[0] if args else None, tuple):
            # Ruby's JSON.parse (ActiveSupport::JSON.decode, how Rails reads jsonb) accepts 100.
            assert json_depth(stored) == 100
            if shutil.which("ruby"):
                assert ruby_decodes(text) and not ruby_decodes(f"[{text}]")
        # The worker reads it in a thread, with the stack a worker thread has.
        read: list = []
        thread = threading.Thread(
            target=lambda out, arguments: out.append(deserialize_arguments(arguments)),
            args=(read, stored["arguments"]),
        )
        thread.start()
        thread.join()
        assert read == [(list(args), kwargs)]


def test_safe_loads_turns_a_too_deep_value_into_a_marker():
    text = "[" * DEPTH + "]" * DEPTH
    with pytest.raises(RecursionError):
        json.loads(text)
    value = loads(text)
    assert isinstance(value, UnreadableJSON) and "nested too deeply" in value.reason
    assert loads(b'{"a": [1]}') == {"a": [1]}


@pytest.mark.parametrize(
    "text",
    [
        '{"a": [1, 2.5, null, true], "b": "\\u00e9"}',
        "[]",
        "3",
        '"x"',
        ' {"a": 1}',  # leading and trailing whitespace: the fast path steps aside
        '{"a": 1} ',
        '{"a": 1}\n',
        '{"a": 1} {"b": 2}',  # extra data
        '{"a": 1',  # truncated
        "",
        "nan",
        "NaN",
        "\ufeff{}",  # a BOM
    ],
)
def test_loads_gives_exactly_what_json_loads_gives(text):
    # jsonb.loads calls the C scanner directly for the common case; values and errors (type
    # and message) must be json.loads's, for str and for bytes.
    for data in (text, text.encode()):
        try:
            expected = json.loads(data)
        except ValueError as exc:
            with pytest.raises(type(exc)) as raised:
                loads(data)
            assert str(raised.value) == str(exc)
        else:
            value = loads(data)
            assert value == expected or (value != value and expected != expected)  # NaN
            assert type(value) is type(expected)


def test_a_claim_decodes_serialized_params_on_first_use(db):
    # The fetcher passes the text on; the thread that performs the job decodes it.
    from goodjob_mp.db import job_store
    from goodjob_mp.queues import QueueSelector

    J.remember.perform_later("x")
    (job,) = job_store.claim_jobs(db, QueueSelector("all", ()), uuid.uuid4(), 1)
    assert isinstance(job.raw_params, str)
    assert job.serialized_params["arguments"] == ["x"]
    assert job.raw_params is job.serialized_params  # decoded once, then kept


def test_reader_recursion_is_a_deserialization_error():
    # json.loads can decode this depth, the argument reader (two frames per level) cannot.
    depth = 700
    arguments = json.loads("[" + "[" * depth + "{}" + "]" * depth + "]")
    with pytest.raises(DeserializationError, match="nested deeper than Python's recursion"):
        deserialize_arguments(arguments)


def test_worker_discards_an_unreadable_payload_and_keeps_running(start, records, db):
    deep = "[" + "[" * DEPTH + "]" * DEPTH + "]"
    bad = insert_raw(db, "tests.jobs_for_tests.remember", deep)
    good = insert_raw(db, "tests.jobs_for_tests.remember", '["after"]')
    sup = start("--queues=*:2")
    (child,) = sup.wait_ready()

    def finished(job_id):
        row = db.execute("SELECT finished_at FROM good_jobs WHERE id = %s", (job_id,)).fetchone()
        return row[0] is not None

    assert wait_for(lambda: finished(bad) and finished(good), 30), sup.output()
    error, event = db.execute(
        "SELECT error, error_event FROM good_jobs WHERE id = %s", (bad,)
    ).fetchone()
    assert error.startswith("DeserializationError: ") and "nested too deeply" in error
    assert event == 5  # discarded
    (execution_error,) = db.execute(
        "SELECT error FROM good_job_executions WHERE active_job_id = %s", (bad,)
    ).fetchone()
    assert execution_error == error
    assert J.lines(records, "remember") == ["after"]
    # The same child kept running: a later job runs in it, and nothing was restarted.
    J.remember.perform_later("later")
    assert wait_for(lambda: J.lines(records, "remember") == ["after", "later"], 30)
    assert sup.children() == [child]
    output = sup.output()
    assert "RecursionError" in output and "Traceback" not in output
    assert "restarting pool" not in output


def test_dashboard_shows_an_unreadable_payload(db, database_url):
    pytest.importorskip("starlette", reason="the dashboard needs the 'web' extra")
    pytest.importorskip("httpx", reason="Starlette's test client needs httpx")
    from starlette.testclient import TestClient

    from goodjob_mp.web import create_app

    deep = "[" + "[" * DEPTH + "]" * DEPTH + "]"
    bad = insert_raw(db, "tests.jobs_for_tests.remember", deep)
    insert_raw(db, "tests.jobs_for_tests.remember", '["readable"]')
    app = create_app(database_url=database_url)
    try:
        with TestClient(app) as client:
            listing = client.get("/jobs")
            assert listing.status_code == 200 and "readable" in listing.text
            assert "unreadable JSON" in listing.text
            page = client.get(f"/jobs/{bad}")
            assert page.status_code == 200 and "nested too deeply" in page.text
    finally:
        app.state.dashboard.close()
