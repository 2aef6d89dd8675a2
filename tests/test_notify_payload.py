"""The NOTIFY payload is built from a cached per-queue prefix; it must stay the exact JSON
GoodJob's listeners parse."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from goodjob_mp.db.job_store import notify_payload
from goodjob_mp.serialization import dumps


@pytest.mark.parametrize("queue", ["default", None, 'ü"quoted\\back', "tab\tnew\nline", ""])
def test_notify_payload_is_the_json_of_goodjobs_shape(queue):
    at = dt.datetime(2026, 1, 2, 3, 4, 5, 60)
    text = notify_payload(queue, at)
    assert text == dumps({"queue_name": queue, "scheduled_at": at.isoformat() + "Z"})
    assert json.loads(text) == {"queue_name": queue, "scheduled_at": "2026-01-02T03:04:05.000060Z"}
