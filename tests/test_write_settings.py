"""The argument-writing settings (naive_datetimes, decimal_format, active_job_compatible) as
enqueue applies them, and their validation."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from uuid import UUID

import pytest

import goodjob_mp as gj
from goodjob_mp.config import ConfigError, load_settings
from tests import jobs_for_tests as J


def arguments(db, handle):
    return db.execute(
        "SELECT serialized_params->'arguments' FROM good_jobs WHERE id = %s", (handle.id,)
    ).fetchone()[0]


def test_decimal_format_string_through_enqueue(db):
    gj.configure(decimal_format="string")
    handle = J.remember.perform_later(Decimal("12.50"))
    assert arguments(db, handle) == ["12.50"]


def test_naive_datetime_refused_at_enqueue_and_nothing_written(db):
    with pytest.raises(gj.SerializationError, match="naive datetime"):
        J.remember.perform_later(dt.datetime(2026, 1, 1, 9, 30))
    assert db.execute("SELECT count(*) FROM good_jobs").fetchone()[0] == 0


def test_naive_datetimes_utc_from_the_environment(db, monkeypatch):
    monkeypatch.setenv("GOOD_JOB_NAIVE_DATETIMES", "utc")
    gj.configure()  # forget the cached settings
    handle = J.remember.perform_later(dt.datetime(2026, 1, 1, 9, 30))
    assert arguments(db, handle)[0]["value"] == "2026-01-01T09:30:00.000000000Z"


def test_active_job_compatible_refuses_a_uuid_at_enqueue(db):
    gj.configure(active_job_compatible=True)
    with pytest.raises(gj.SerializationError, match="active_job_compatible"):
        J.remember.perform_later(UUID(int=1))


@pytest.mark.parametrize(
    ("name", "value"), [("naive_datetimes", "local"), ("decimal_format", "float")]
)
def test_bad_values_are_refused_naming_the_setting(name, value):
    with pytest.raises(ConfigError, match=f"setting {name} = '{value}'"):
        load_settings({name: value})
