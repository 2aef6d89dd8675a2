"""Argument (de)serialisation against the rows the real GoodJob / Active Job 6.1 wrote, the forms a
newer Rails writes, round trips of every supported Python type, and the refusals."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest

from goodjob_mp.serialization import (
    DeserializationError,
    GlobalID,
    SerializationError,
    WritePolicy,
    deserialize_arguments,
    dumps,
    serialize_arguments,
)
from tests.reference import REFERENCE_DIR

REFERENCE = REFERENCE_DIR / "good_jobs.jsonl"

ROWS = [json.loads(line) for line in REFERENCE.read_text().splitlines() if line.strip()]
BY_ID = {row["id"]: row for row in ROWS}


def arguments_of(row_id: str) -> list[Any]:
    return BY_ID[row_id]["serialized_params"]["arguments"]


def through_json(args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any] | None = None):
    """Serialise, pass through real JSON text as the database would, read back (naive datetimes
    kept under goodjob_mp's tag, so that their round trip is covered too)."""
    written = serialize_arguments(args, kwargs or {}, policy=WritePolicy(naive_datetimes="keep"))
    text = json.dumps(written, allow_nan=False)
    return deserialize_arguments(json.loads(text))


# --------------------------------------------------------------------------- reference rows


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row["serialized_params"]["job_class"])
def test_every_reference_row_decodes(row: dict[str, Any]) -> None:
    args, kwargs = deserialize_arguments(row["serialized_params"]["arguments"])
    assert isinstance(args, list)
    assert isinstance(kwargs, dict)


ARGS_JOB_VALUES = [
    'hello "world"\n héllo ✓',
    42,
    3.14,
    True,
    False,
    None,
    [1, "two", 3.0, None, [True]],
    {"user": {"id": 7, "tags": ["a", "b"]}, "meta": None, "n": 9007199254740993},
]


def test_args_job_json_natives() -> None:
    args, kwargs = deserialize_arguments(arguments_of("265b97ed-ce61-4e93-b67d-704ab712eae2"))
    assert args == ARGS_JOB_VALUES
    assert kwargs == {}
    assert type(args[3]) is bool and type(args[1]) is int


def test_args_job_written_like_active_job() -> None:
    # Ruby hashes with string keys carry `_aj_symbol_keys: []`; Python dicts are written that way.
    written = serialize_arguments(ARGS_JOB_VALUES, {})
    assert written == arguments_of("265b97ed-ce61-4e93-b67d-704ab712eae2")


def test_symbol_keyed_positional_hash_is_a_positional_dict() -> None:
    args, kwargs = deserialize_arguments(arguments_of("126567a5-a4e3-449c-8b98-c4f8e7ce4d2a"))
    assert args == [{"account_id": 1, "plain": 2, "nested": {"deep": "value"}}]
    assert kwargs == {}


def test_hash_with_indifferent_access_is_a_dict() -> None:
    args, kwargs = deserialize_arguments(arguments_of("b6ac456f-5d22-431a-9db8-87df402dad87"))
    assert args == [{"a": 1, "b": [2]}]
    assert kwargs == {}


def test_kwargs_job_reads_keyword_arguments() -> None:
    args, kwargs = deserialize_arguments(arguments_of("413079b1-93f8-4315-b719-3a19afbdcfe3"))
    assert args == [7]
    assert kwargs == {"name": "x", "flag": True, "tags": ["t1", "t2"]}


def test_kwargs_written_exactly_like_active_job() -> None:
    written = serialize_arguments((7,), {"name": "x", "flag": True, "tags": ["t1", "t2"]})
    expected = arguments_of("413079b1-93f8-4315-b719-3a19afbdcfe3")
    assert written == expected
    # The marker lists the keyword names in call order, as Ruby does.
    assert written[-1]["_aj_ruby2_keywords"] == ["name", "flag", "tags"]


def test_serialized_args_job_values() -> None:
    args, kwargs = deserialize_arguments(arguments_of("61c0fd9f-bba7-4063-93f7-69347c90025a"))
    assert kwargs == {}
    utc, pacific, tokyo, kolkata, day, money, status, duration, module = args

    assert utc == datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc)
    assert utc.utcoffset() == timedelta(0)
    assert pacific.utcoffset() == timedelta(hours=-8)
    assert pacific.replace(tzinfo=None) == datetime(2024, 1, 2, 3, 4, 5)
    assert pacific == datetime(2024, 1, 2, 11, 4, 5, tzinfo=timezone.utc)
    assert tokyo.utcoffset() == timedelta(hours=9)
    assert tokyo == datetime(2024, 6, 1, 0, 0, tzinfo=timezone.utc)
    assert kolkata.utcoffset() == timedelta(hours=5, minutes=30)
    assert kolkata == datetime(2024, 2, 29, 8, 15, 30, tzinfo=timezone.utc)
    assert type(day) is date and day == date(2024, 12, 31)
    assert money == "12.34"  # Rails 6.1 writes BigDecimal as a bare string
    assert status == "pending"
    assert duration == timedelta(hours=1, minutes=30)
    assert module == "String"


def test_timedelta_written_like_active_support_duration() -> None:
    row = arguments_of("61c0fd9f-bba7-4063-93f7-69347c90025a")
    assert serialize_arguments([timedelta(hours=1, minutes=30)], {}) == [row[7]]


def test_batch_callback_global_id() -> None:
    args, kwargs = deserialize_arguments(arguments_of("d9ee6eaa-86cb-4874-8b65-503f68b3916c"))
    uri = "gid://good-job-bench-app/GoodJob::Batch/d4aa21a3-61a3-4a56-9a4c-dd0f0f71ee5d"
    assert args == [GlobalID(uri), {"event": "finish"}]
    assert kwargs == {}
    gid = args[0]
    assert (gid.app, gid.model_name, gid.model_id) == (
        "good-job-bench-app",
        "GoodJob::Batch",
        "d4aa21a3-61a3-4a56-9a4c-dd0f0f71ee5d",
    )
    assert serialize_arguments([gid], {}) == [{"_aj_globalid": uri}]


# --------------------------------------------------------------------------- newer Rails forms


def test_rails_71_big_decimal_serializer() -> None:
    payload = [{"_aj_serialized": "ActiveJob::Serializers::BigDecimalSerializer", "value": "12.34"}]
    assert deserialize_arguments(payload) == ([Decimal("12.34")], {})
    # Ruby's BigDecimal#to_s form.
    payload[0]["value"] = "0.1234e2"
    assert deserialize_arguments(payload) == ([Decimal("12.34")], {})


def test_rails_713_time_with_zone_keeps_the_zone() -> None:
    payload = [
        {
            "_aj_serialized": "ActiveJob::Serializers::TimeWithZoneSerializer",
            "value": "2024-06-01T09:00:00.123456789+09:00",
            "time_zone": "Asia/Tokyo",
        }
    ]
    (value,), _ = deserialize_arguments(payload)
    assert value.tzinfo == ZoneInfo("Asia/Tokyo")
    assert value == datetime(2024, 6, 1, 0, 0, 0, 123456, tzinfo=timezone.utc)  # ns truncated


def test_rails_7_indifferent_access_marker() -> None:
    payload = [{"a": 1, "_aj_hash_with_indifferent_access": True}, 2]
    assert deserialize_arguments(payload) == ([{"a": 1}, 2], {})
    trailing = [{"a": 1, "_aj_hash_with_indifferent_access": True}]
    assert deserialize_arguments(trailing) == ([{"a": 1}], {})


def test_duration_with_calendar_parts_and_value_only() -> None:
    def symbol(name: str) -> dict[str, str]:
        return {"_aj_serialized": "ActiveJob::Serializers::SymbolSerializer", "value": name}

    parts = [[symbol("years"), 1], [symbol("months"), 2], [symbol("weeks"), 1], [symbol("days"), 1]]
    payload = [
        {"_aj_serialized": "ActiveJob::Serializers::DurationSerializer", "value": 0, "parts": parts}
    ]
    (value,), _ = deserialize_arguments(payload)
    assert value == timedelta(seconds=31556952 + 2 * 2629746 + 604800 + 86400)

    value_only = [{"_aj_serialized": "ActiveJob::Serializers::DurationSerializer", "value": 90}]
    assert deserialize_arguments(value_only) == ([timedelta(seconds=90)], {})


def test_only_a_trailing_keywords_hash_becomes_kwargs() -> None:
    marker = {"a": 1, "_aj_ruby2_keywords": ["a"]}
    assert deserialize_arguments([dict(marker), 2]) == ([{"a": 1}, 2], {})
    assert deserialize_arguments([[dict(marker)]]) == ([[{"a": 1}]], {})
    assert deserialize_arguments([2, dict(marker)]) == ([2], {"a": 1})


# --------------------------------------------------------------------------- written forms


def test_zoneinfo_datetime_written_as_time_with_zone() -> None:
    value = datetime(2024, 6, 1, 9, 0, 0, 5, tzinfo=ZoneInfo("Asia/Tokyo"))
    assert serialize_arguments([value], {}) == [
        {
            "_aj_serialized": "ActiveJob::Serializers::TimeWithZoneSerializer",
            "value": "2024-06-01T09:00:00.000005000+09:00",
            "time_zone": "Asia/Tokyo",
        }
    ]


def test_fixed_offset_and_utc_datetimes_written_as_time() -> None:
    fixed = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-8)))
    utc = datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc)
    assert serialize_arguments([utc, fixed], {}) == [
        {
            "_aj_serialized": "ActiveJob::Serializers::TimeSerializer",
            "value": "2024-01-02T03:04:05.123456000Z",
        },
        {
            "_aj_serialized": "ActiveJob::Serializers::TimeSerializer",
            "value": "2024-01-02T03:04:05.000000000-08:00",
        },
    ]


def test_naive_datetime_is_refused_by_default_naming_the_fix() -> None:
    value = datetime(2024, 1, 2, 3, 4, 5, 6)
    with pytest.raises(
        SerializationError, match=r"kwargs\['when'\]\['at'\].*naive datetime"
    ) as info:
        serialize_arguments([], {"when": {"at": value}})
    assert "tzinfo=datetime.timezone.utc" in str(info.value)
    assert info.value.path == "kwargs['when']['at']"


def test_naive_datetime_as_utc() -> None:
    value = datetime(2024, 1, 2, 3, 4, 5, 6)
    written = serialize_arguments([value], {}, policy=WritePolicy(naive_datetimes="utc"))
    assert written == [
        {
            "_aj_serialized": "ActiveJob::Serializers::TimeSerializer",
            "value": "2024-01-02T03:04:05.000006000Z",
        }
    ]
    assert deserialize_arguments(written) == ([value.replace(tzinfo=timezone.utc)], {})


def test_naive_datetime_kept_under_its_own_tag() -> None:
    value = datetime(2024, 1, 2, 3, 4, 5, 6)
    keep = WritePolicy(naive_datetimes="keep")
    assert serialize_arguments([value], {}, policy=keep) == [
        {
            "_aj_serialized": "GoodJobMP::NaiveDateTimeSerializer",
            "value": "2024-01-02T03:04:05.000006000",
        }
    ]


def test_decimal_and_date_written_forms() -> None:
    assert serialize_arguments([Decimal("12.34"), date(2024, 12, 31)], {}) == [
        {"_aj_serialized": "ActiveJob::Serializers::BigDecimalSerializer", "value": "12.34"},
        {"_aj_serialized": "ActiveJob::Serializers::DateSerializer", "value": "2024-12-31"},
    ]


def test_common_case_is_a_plain_copy() -> None:
    args = [1, "a", 2.5, None, True]
    written = serialize_arguments(args, {})
    assert written == args and written is not args
    assert deserialize_arguments(written) == (args, {})


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize(
    "value",
    [
        datetime(2024, 3, 10, 1, 30, tzinfo=ZoneInfo("America/New_York")),
        datetime(2024, 11, 3, 1, 30, fold=1, tzinfo=ZoneInfo("America/New_York")),
        datetime(2024, 1, 2, 3, 4, 5, 999999, tzinfo=ZoneInfo("UTC")),
        datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=5, minutes=45))),
        datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(-timedelta(hours=3, seconds=7))),
        datetime(2024, 1, 2, 3, 4, 5, 1, tzinfo=timezone.utc),
        datetime(1, 1, 1, 0, 0, 0),
        datetime(2024, 2, 29, 23, 59, 59, 999999),
    ],
    ids=str,
)
def test_datetime_round_trip_keeps_instant_and_offset(value: datetime) -> None:
    (back,), _ = through_json([value])
    assert back == value
    assert back.utcoffset() == value.utcoffset()
    assert back.replace(tzinfo=None) == value.replace(tzinfo=None)
    if isinstance(value.tzinfo, ZoneInfo):
        assert back.tzinfo == value.tzinfo


@pytest.mark.parametrize(
    "value",
    [
        timedelta(0),
        timedelta(seconds=1),
        timedelta(microseconds=1),
        timedelta(hours=1, minutes=30),
        timedelta(days=400, seconds=5, microseconds=250),
        timedelta(hours=-1, minutes=-30),
        timedelta(microseconds=-1),
        timedelta(days=999_999_999, hours=23, minutes=59, seconds=59, microseconds=999_999),
        timedelta.min,
    ],
    ids=str,
)
def test_timedelta_round_trip(value: timedelta) -> None:
    assert through_json([value]) == ([value], {})


class Colour(enum.IntEnum):
    RED = 1


class Mode(str, enum.Enum):
    FAST = "fast"


def test_round_trip_of_other_types() -> None:
    values = [
        date(2024, 12, 31),
        Decimal("12.340"),
        Decimal("-1E+30"),
        UUID("265b97ed-ce61-4e93-b67d-704ab712eae2"),
        (1, "two", (3.0, None)),
        (),
        {3, 1, 2},
        frozenset({"b", "a"}),
        {1, "a", (2, 3)},
        set(),
        GlobalID("gid://app/User/1"),
    ]
    args, kwargs = through_json(values)
    assert args == values and kwargs == {}
    assert [type(v) for v in args] == [type(v) for v in values]
    assert str(args[1]) == "12.340"


def test_sets_are_written_in_a_stable_order() -> None:
    (written,) = serialize_arguments([{3, 1, 2}], {})
    assert written["value"] == [1, 2, 3]
    first = serialize_arguments([{1, "a", 2.5}], {})
    assert first == serialize_arguments([{2.5, "a", 1}], {})


def test_enums_are_written_as_their_values() -> None:
    written = serialize_arguments([Colour.RED, Mode.FAST], {"mode": Mode.FAST})
    assert json.loads(json.dumps(written)) == written
    assert deserialize_arguments(written) == ([1, "fast"], {"mode": "fast"})
    assert type(written[0]) is int and type(written[1]) is str


def test_nested_structures_and_kwargs_round_trip() -> None:
    args = (
        {
            "when": datetime(2024, 1, 1, tzinfo=ZoneInfo("Europe/Paris")),
            "items": [{"id": UUID(int=5), "price": Decimal("9.99")}, (date(2024, 1, 1), {7})],
            "": {"empty": {}},
        },
        [[], {}],
    )
    kwargs = {"after": timedelta(minutes=5), "tags": ("a", "b"), "opts": {"x": None}}
    assert through_json(args, kwargs) == (list(args), kwargs)


def test_empty_kwargs_write_no_trailing_hash() -> None:
    assert serialize_arguments([{"a": 1}], {}) == [{"a": 1, "_aj_symbol_keys": []}]
    assert through_json([{"a": 1}]) == ([{"a": 1}], {})
    assert through_json([], {"only": 1}) == ([], {"only": 1})


# --------------------------------------------------------------------------- refusals


def refusal(args: Any, kwargs: Any = None, **options: Any) -> SerializationError:
    with pytest.raises(SerializationError) as caught:
        serialize_arguments(args, kwargs or {}, **options)
    return caught.value


def test_generic_object_refused_naming_argument_type_and_job() -> None:
    error = refusal([1, object()], job_name="myapp.jobs.x")
    message = str(error)
    assert "argument 2 (positional index 1)" in message
    assert "'object'" in message
    assert "'myapp.jobs.x'" in message
    assert error.path == "args[1]" and error.type_name == "object"
    assert isinstance(error, TypeError)


def test_lambda_refused() -> None:
    message = str(refusal([lambda: None]))
    assert "'function'" in message and "dotted name" in message


def test_bytes_refused_with_base64_hint() -> None:
    message = str(refusal([], {"payload": b"\x00"}))
    assert "keyword argument 'payload'" in message
    assert "'bytes'" in message and "base64" in message


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_refused(value: float) -> None:
    message = str(refusal([value]))
    assert "'float'" in message and "NaN" in message


def test_non_finite_decimal_refused() -> None:
    assert "'Decimal'" in str(refusal([Decimal("NaN")]))


def test_non_str_dict_key_refused_with_path() -> None:
    error = refusal([{"k": {1: "x"}}])
    message = str(error)
    assert "dict key 1 of type 'int'" in message
    assert "args[0]['k']" in message and error.path == "args[0]['k']"


@pytest.mark.parametrize(
    "key",
    [
        "_aj_symbol_keys",
        "_aj_ruby2_keywords",
        "_aj_serialized",
        "_aj_globalid",
        "_aj_hash_with_indifferent_access",
    ],
)
def test_reserved_keys_refused(key: str) -> None:
    assert key in str(refusal([{key: 1}]))
    message = str(refusal([], {key: 1}))
    assert "keyword argument name" in message and key in message


def test_nested_bad_value_path() -> None:
    error = refusal([{"k": [0, 1, 2, {3}, object()]}])
    assert error.path == "args[0]['k'][4]"
    assert "args[0]['k'][4] (inside argument 1 (positional index 0))" in str(error)
    error = refusal([], {"when": [{"at": b""}]})
    assert error.path == "kwargs['when'][0]['at']"
    assert "'bytes'" in str(error)


def test_other_refusals() -> None:
    @dataclasses.dataclass
    class Point:
        x: int

    class Plain(enum.Enum):
        A = object()

    assert "dataclasses.asdict" in str(refusal([Point(1)]))
    assert "'Plain'" in str(refusal([Plain.A]))
    assert "'generator'" in str(refusal([(i for i in range(2))]))
    assert "'type'" in str(refusal([str]))
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    assert "contains itself" in str(refusal([cyclic]))


def test_shared_values_are_not_cycles() -> None:
    shared = [1]
    assert through_json([shared, shared, {"a": shared}]) == ([[1], [1], {"a": [1]}], {})


# --------------------------------------------------------------------------- unreadable payloads


def unreadable(arguments: Any) -> DeserializationError:
    with pytest.raises(DeserializationError) as caught:
        deserialize_arguments(arguments)
    return caught.value


def test_unknown_serializer_named() -> None:
    error = unreadable([1, {"x": [{"_aj_serialized": "MyApp::MoneySerializer", "cents": 5}]}])
    assert "MyApp::MoneySerializer" in str(error)
    assert error.path == "arguments[1]['x'][0]"
    assert isinstance(error, ValueError)


def test_bad_payload_parts_named() -> None:
    bad_time = [{"_aj_serialized": "ActiveJob::Serializers::TimeSerializer", "value": "yesterday"}]
    message = str(unreadable(bad_time))
    assert "TimeSerializer" in message and "'yesterday'" in message

    no_value = [{"_aj_serialized": "ActiveJob::Serializers::DateSerializer"}]
    assert "'value'" in str(unreadable(no_value))

    bad_uuid = [{"_aj_serialized": "GoodJobMP::UUIDSerializer", "value": "nope"}]
    assert "not a UUID" in str(unreadable(bad_uuid))

    unit = {"_aj_serialized": "ActiveJob::Serializers::SymbolSerializer", "value": "fortnights"}
    duration = {
        "_aj_serialized": "ActiveJob::Serializers::DurationSerializer",
        "parts": [[unit, 1]],
    }
    assert "fortnights" in str(unreadable([duration]))

    zone = {
        "_aj_serialized": "ActiveJob::Serializers::TimeWithZoneSerializer",
        "value": "2024-06-01T09:00:00+09:00",
        "time_zone": "Mars/Olympus_Mons",
    }
    assert "Mars/Olympus_Mons" in str(unreadable([zone]))

    assert "JSON array" in str(unreadable({"a": 1}))


# --------------------------------------------------------------------------- text jsonb refuses


@pytest.mark.parametrize(
    ("args", "kwargs", "path", "fragment"),
    [
        (["a\x00b"], {}, "args[0]", "NUL character"),
        ([{"k": ["ok", "x\x00"]}], {}, "args[0]['k'][1]", "NUL character"),
        ([{"bad\x00key": 1}], {}, "args[0]", "NUL character"),
        ([], {"name": "lone \udc80"}, "kwargs['name']", "lone surrogate"),
        ([[{"\ud800": 1}]], {}, "args[0][0]", "lone surrogate"),
    ],
)
def test_text_jsonb_cannot_store_is_refused_naming_its_path(args, kwargs, path, fragment) -> None:
    with pytest.raises(SerializationError, match=fragment) as info:
        serialize_arguments(args, kwargs, job_name="MyJob")
    assert info.value.path == path
    assert "MyJob" in str(info.value) and "\n" not in str(info.value)


def test_a_keyword_name_with_nul_is_refused() -> None:
    with pytest.raises(SerializationError, match="NUL character"):
        serialize_arguments([], {"a\x00": 1})


def test_non_ascii_text_is_still_a_plain_copy() -> None:
    args = ["größe", "✓ 日本", {"ключ": "значение"}]
    assert serialize_arguments(args, {}) == [
        args[0],
        args[1],
        {"ключ": "значение", "_aj_symbol_keys": []},
    ]


# --------------------------------------------------------------------------- floats and jsonb


@pytest.mark.parametrize(
    "value", [1e16, 1e300, -1.5e16, 1.7976931348623157e308, 12345678901234567.0]
)
def test_big_floats_are_written_so_that_jsonb_keeps_them_floats(db, value) -> None:
    text = dumps({"v": [value], "s": "1e+300 stays text"})
    assert "e+" not in text.replace("1e+300 stays text", "")
    (back,) = db.execute("SELECT %s::jsonb", (text,)).fetchone()
    assert back == {"v": [value], "s": "1e+300 stays text"}
    assert type(back["v"][0]) is float


def test_exponent_form_alone_would_come_back_an_int(db) -> None:
    # Why dumps() rewrites: this is what json.dumps (and Ruby's 1.0e+300) would give.
    (back,) = db.execute("SELECT '[1e+300, 1.0e+16]'::jsonb").fetchone()
    assert [type(v) for v in back] == [int, int]


def test_big_float_argument_reads_back_a_float_through_a_real_row(db) -> None:
    from goodjob_mp.db.job_store import insert_job
    from goodjob_mp.enqueue import build_job
    from goodjob_mp.jobs import EnqueueOptions
    from tests.jobs_for_tests import remember

    row = build_job(remember.job_class, [1e300], {"extra": 2.5e20}, EnqueueOptions())
    insert_job(db, row)
    (params,) = db.execute(
        "SELECT serialized_params FROM good_jobs WHERE id = %s", (row.id,)
    ).fetchone()
    args, kwargs = deserialize_arguments(params["arguments"])
    assert args == [1e300] and type(args[0]) is float
    assert kwargs == {"extra": 2.5e20} and type(kwargs["extra"]) is float


# --------------------------------------------------------------------------- write policies


def test_decimals_as_plain_strings_for_active_job_6_1_and_7_0() -> None:
    policy = WritePolicy(decimal_format="string")
    assert serialize_arguments([Decimal("12.340"), {"d": Decimal("-1E+3")}], {}, policy=policy) == [
        "12.340",
        {"d": "-1E+3", "_aj_symbol_keys": []},
    ]


@pytest.mark.parametrize(
    ("value", "fix"),
    [
        (UUID("12345678-1234-5678-1234-567812345678"), "str(value)"),
        ((1, 2), "a list"),
        ({1, 2}, "a sorted list"),
        (frozenset({1}), "a sorted list"),
        (datetime(2024, 1, 1), "attach a zone"),
    ],
    ids=str,
)
def test_active_job_compatible_refuses_goodjob_mp_only_values(value, fix) -> None:
    strict = WritePolicy(naive_datetimes="keep", active_job_compatible=True)
    with pytest.raises(SerializationError, match="cannot serialise argument 1") as info:
        serialize_arguments([value], {}, policy=strict)
    assert fix in str(info.value)
    serialize_arguments([value], {}, policy=WritePolicy(naive_datetimes="keep"))  # allowed


def test_active_job_compatible_still_writes_every_active_job_type() -> None:
    strict = WritePolicy(active_job_compatible=True)
    values = [
        1,
        "s",
        2.5,
        None,
        [1],
        {"a": 1},
        date(2024, 1, 1),
        datetime(2024, 1, 1, tzinfo=timezone.utc),
        timedelta(seconds=5),
        Decimal("1.5"),
        GlobalID("gid://app/User/1"),
    ]
    written = serialize_arguments(values, {}, policy=strict)
    assert "GoodJobMP" not in json.dumps(written)
