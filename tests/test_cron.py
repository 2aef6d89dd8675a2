"""Cron: schedule math (DST included), entry validation, the enable/disable switches, the CLI and
leader election between two schedulers over a simulated hour (injected clock, no waiting)."""

from __future__ import annotations

import datetime as dt
import json
import logging
from zoneinfo import ZoneInfo

import psycopg
import pytest
from click.testing import CliRunner

import goodjob_mp as gj
from goodjob_mp import config, cron
from goodjob_mp.cli import main
from goodjob_mp.cron import (
    CallableSchedule,
    CronConfigError,
    CronSchedule,
    CronScheduler,
    catch_up,
    parse_entries,
    parse_entry,
    runs_between,
)
from goodjob_mp.db import connection
from tests.waiting import backend_gone

UTC = dt.timezone.utc
NY = ZoneInfo("America/New_York")


@gj.job(queue="cron")
def cron_report(*args, **kwargs) -> None:
    pass


class CronClassJob(gj.Job):
    queue_name = "cron"

    def perform(self) -> None:
        pass


def utc(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=UTC)


# --- schedule math ----------------------------------------------------------------------------


def _day_runs(expr: str, tz: ZoneInfo, day: dt.date) -> list[str]:
    start = dt.datetime.combine(day, dt.time(), tz).astimezone(UTC) - dt.timedelta(seconds=1)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tz).astimezone(UTC)
    end -= dt.timedelta(seconds=1)
    return [
        r.astimezone(tz).strftime("%H:%M%z")
        for r in runs_between(CronSchedule(expr, tz), start, end)
    ]


SPRING = dt.date(2026, 3, 8)
FALL = dt.date(2026, 11, 1)


def test_dst_spring_forward_daily_runs_once():
    assert _day_runs("30 1 * * *", NY, SPRING) == ["01:30-0500"]
    # 02:30 does not exist that day: it runs once, at the instant 02:30 EST would have been.
    assert _day_runs("30 2 * * *", NY, SPRING) == ["03:30-0400"]
    assert _day_runs("30 2 * * *", NY, SPRING - dt.timedelta(days=1)) == ["02:30-0500"]


def test_dst_spring_forward_hourly_skips_nothing_doubles_nothing():
    runs = _day_runs("0 * * * *", NY, SPRING)
    assert len(runs) == 23 and len(set(runs)) == 23  # a 23-hour day
    assert runs[:4] == ["00:00-0500", "01:00-0500", "03:00-0400", "04:00-0400"]
    halves = _day_runs("*/30 * * * *", NY, SPRING)
    assert len(halves) == 46 and "03:00-0400" in halves and "03:30-0400" in halves


def test_dst_fall_back_daily_runs_once():
    assert _day_runs("30 1 * * *", NY, FALL) == ["01:30-0400"]
    assert _day_runs("30 2 * * *", NY, FALL) == ["02:30-0500"]


def test_dst_fall_back_hourly_runs_every_real_hour():
    runs = _day_runs("0 * * * *", NY, FALL)
    assert len(runs) == 25  # a 25-hour day: the repeated hour runs twice, once per real hour
    assert runs[:4] == ["00:00-0400", "01:00-0400", "01:00-0500", "02:00-0500"]
    instants = runs_between(
        CronSchedule("0 * * * *", NY), utc(2026, 11, 1, 3, 59), utc(2026, 11, 1, 8, 1)
    )
    assert [i.hour for i in instants] == [4, 5, 6, 7, 8]  # one per UTC hour, no gap, no double


def test_dst_instants_strictly_increase_around_both_transitions():
    schedule = CronSchedule("*/20 * * * *", NY)
    # In real time a "*/20" entry fires every 20 minutes straight through both changes: the
    # skipped wall times and the repeated ones cancel out, nothing is lost or doubled.
    for first, last in ((utc(2026, 3, 1), utc(2026, 3, 15)), (utc(2026, 10, 25), utc(2026, 11, 8))):
        runs = runs_between(schedule, first, last)
        gaps = {b - a for a, b in zip(runs, runs[1:], strict=False)}
        assert gaps == {dt.timedelta(minutes=20)}
        assert len(runs) == 14 * 72


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        ("* * * * *", utc(2026, 5, 1, 10, 0, 30), utc(2026, 5, 1, 10, 1)),
        ("0 * * * *", utc(2026, 5, 1, 10, 0), utc(2026, 5, 1, 11, 0)),
        ("@hourly", utc(2026, 5, 1, 10, 0), utc(2026, 5, 1, 11, 0)),
        ("@daily", utc(2026, 5, 1, 10, 0), utc(2026, 5, 2)),
        ("@weekly", utc(2026, 5, 1), utc(2026, 5, 3)),  # Sunday
        ("@monthly", utc(2026, 5, 1), utc(2026, 6, 1)),
        ("*/15 * * * * *", utc(2026, 5, 1, 10, 0, 1), utc(2026, 5, 1, 10, 0, 15)),  # seconds first
        ("30 0 9 * * 1-5", utc(2026, 5, 1, 10), utc(2026, 5, 4, 9, 0, 30)),
        ("0 9 * * 1", utc(2026, 5, 1), utc(2026, 5, 4, 9)),
    ],
)
def test_next_after_utc(expr, after, expected):
    assert CronSchedule(expr).next_after(after) == expected


def test_next_after_in_entry_timezone_stored_in_utc():
    paris = CronSchedule("0 9 * * *", ZoneInfo("Europe/Paris"))
    assert paris.next_after(utc(2026, 7, 1)) == utc(2026, 7, 1, 7)  # CEST
    assert paris.next_after(utc(2026, 1, 1)) == utc(2026, 1, 1, 8)  # CET


def test_callable_schedule():
    start = utc(2026, 5, 1, 10)
    schedule = CallableSchedule(lambda last: (last or start) + dt.timedelta(minutes=5))
    assert runs_between(schedule, start, start + dt.timedelta(minutes=20)) == [
        start + dt.timedelta(minutes=m) for m in (5, 10, 15, 20)
    ]
    # A naive result is wall time in the entry's timezone.
    naive = CallableSchedule(lambda last: dt.datetime(2026, 7, 1, 9), ZoneInfo("Europe/Paris"))
    assert naive.next_after(None) == utc(2026, 7, 1, 7)
    # A result that does not move forward ends the schedule instead of looping.
    stuck = CallableSchedule(lambda last: start)
    assert runs_between(stuck, start, start + dt.timedelta(hours=1)) == []
    with pytest.raises(TypeError, match="must return a datetime"):
        CallableSchedule(lambda last: "soon").next_after(None)


def test_runs_between_bounds():
    schedule = CronSchedule("*/10 * * * *")
    runs = runs_between(schedule, utc(2026, 5, 1, 10), utc(2026, 5, 1, 11))
    assert runs[0] == utc(2026, 5, 1, 10, 10) and runs[-1] == utc(2026, 5, 1, 11)  # (start, end]
    assert len(runs) == 6
    assert len(runs_between(schedule, utc(2026, 5, 1), utc(2026, 5, 2), limit=3)) == 3


def test_catch_up_with_graceful_period():
    schedule = CronSchedule("*/10 * * * *")
    now = utc(2026, 5, 1, 10, 35)
    plan = catch_up(schedule, now, 1800, last_enqueued=utc(2026, 5, 1, 9, 0))
    assert plan.enqueue == [utc(2026, 5, 1, 10, m) for m in (10, 20, 30)]
    assert plan.skipped == [utc(2026, 5, 1, 9, m) for m in (10, 20, 30, 40, 50)] + [
        utc(2026, 5, 1, 10)
    ]
    # Nothing recorded before: nothing reported as missed.
    assert catch_up(schedule, now, 1800).skipped == []


def test_catch_up_without_graceful_period_skips_and_reports():
    schedule = CronSchedule("*/10 * * * *")
    now = utc(2026, 5, 1, 10, 35)
    plan = catch_up(schedule, now, None, last_enqueued=utc(2026, 5, 1, 10, 0))
    assert plan.enqueue == []
    assert plan.skipped == [
        utc(2026, 5, 1, 10, 10),
        utc(2026, 5, 1, 10, 20),
        utc(2026, 5, 1, 10, 30),
    ]
    # A leader that ran until now missed nothing.
    assert catch_up(schedule, now, None, last_enqueued=utc(2026, 5, 1, 10, 30)).skipped == []


# --- entries ----------------------------------------------------------------------------------

VALID = {"cron": "*/5 * * * *", "class": "tests.test_cron.cron_report"}


def test_parse_entry_forms():
    entry = parse_entry(
        "report",
        {
            **VALID,
            "args": [1, 2],
            "kwargs": {"a": 1},
            "set": {"queue": "low", "priority": 5, "labels": ["cron"]},
            "description": "every five minutes",
            "enabled_by_default": False,
            "timezone": "Europe/Paris",
        },
    )
    assert entry.job_class is cron_report.job_class and entry.timezone == "Europe/Paris"
    assert not entry.enabled_by_default
    assert parse_entry("k", {"cron": "@daily", "class": CronClassJob}).job_class is CronClassJob
    assert (
        parse_entry("k", {"cron": "@daily", "class": cron_report}).job_class
        is cron_report.job_class
    )
    calls = parse_entry("k", {**VALID, "args": lambda: [1], "kwargs": dict, "set": dict})
    assert calls.resolved_args() == ([1], {}, {})


def test_entries_from_goodjob_cron_json_env():
    raw = {"nightly": {**VALID, "args": ["x"], "timezone": "America/New_York"}}
    settings = config.load_settings(environ={"GOOD_JOB_CRON": json.dumps(raw)})
    entries = cron.validate_cron_entries(settings)
    assert entries["nightly"].schedule == CronSchedule("*/5 * * * *", NY)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({**VALID, "cron": "61 * * * *"}, "cron '61 * * * *' is not a valid expression"),
        ({**VALID, "cron": "every day"}, "is not a valid expression"),
        ({**VALID, "cron": ""}, "must be a cron expression string or a callable"),
        ({**VALID, "cron": 5}, "must be a cron expression string or a callable"),
        ({**VALID, "class": "nope.Missing"}, "class 'nope.Missing'"),
        ({**VALID, "class": 42}, "is not a job"),
        ({**VALID, "clas": "x"}, "unknown key(s) 'clas'"),
        ({**VALID, "timezone": "Mars/Olympus"}, "timezone 'Mars/Olympus' is not a known"),
        ({**VALID, "timezone": 3}, "timezone 3 is not a known"),
        ({**VALID, "args": "abc"}, "args 'abc' must be a list or a callable"),
        ({**VALID, "kwargs": [1]}, "kwargs [1] must be a mapping or a callable"),
        ({**VALID, "set": 5}, "set 5 must be a mapping or a callable"),
        ({**VALID, "set": {"queu": "x"}}, "set has unknown option(s) 'queu'"),
        ({**VALID, "set": {"priority": "high"}}, "priority must be an int"),
        ({**VALID, "enabled_by_default": "yes"}, "enabled_by_default 'yes' must be true or false"),
        ({**VALID, "description": 7}, "description 7 must be a string"),
        ({"class": VALID["class"]}, "missing 'cron'"),
        ({"cron": "@daily"}, "missing 'class'"),
        ("@daily", "must be a mapping"),
    ],
)
def test_invalid_entries_name_the_entry_and_the_problem(raw, fragment):
    with pytest.raises(CronConfigError) as info:
        parse_entries({"the_entry": raw})
    assert "'the_entry'" in str(info.value)
    assert fragment in str(info.value)


def test_invalid_cron_setting_shapes():
    with pytest.raises(CronConfigError, match="cron key '' must be a non-empty string"):
        parse_entries({"": VALID})
    with pytest.raises(CronConfigError, match="mapping of cron key"):
        parse_entries(["x"])  # type: ignore[arg-type]
    with pytest.raises(CronConfigError):
        CronScheduler(config.Settings(cron={"bad": {**VALID, "timezone": "Nowhere"}}))


def test_is_enabled_rule():
    on = parse_entry("on", VALID)
    off = parse_entry("off", {**VALID, "enabled_by_default": False})
    assert cron.is_enabled(on, [], []) and not cron.is_enabled(on, [], ["on"])
    assert not cron.is_enabled(off, [], []) and cron.is_enabled(off, ["off"], [])
    assert cron.is_enabled(on, ["on"], ["on"])  # GoodJob: explicitly enabled wins


# --- database: switches, enqueue --------------------------------------------------------------


def test_switches_round_trip_in_goodjob_format(db):
    assert cron.read_switches(db) == (set(), set())
    cron.set_enabled(db, "a", False)
    cron.set_enabled(db, "b", False)
    cron.set_enabled(db, "b", False)
    cron.set_enabled(db, "c", True)
    rows = dict(db.execute("SELECT key, value FROM good_job_settings"))
    assert rows == {"cron_keys_disabled": ["a", "b"], "cron_keys_enabled": ["c"]}
    cron.set_enabled(db, "a", True)
    assert cron.read_switches(db) == ({"c", "a"}, {"b"})


def test_switches_written_by_goodjob_are_read(db):
    db.execute(
        "INSERT INTO good_job_settings (key, value, created_at, updated_at) VALUES "
        "('cron_keys_enabled', '[\"nightly_cleanup\"]', now(), now()), "
        "('cron_keys_disabled', '[\"hourly_digest\"]', now(), now())"
    )
    assert cron.read_switches(db) == ({"nightly_cleanup"}, {"hourly_digest"})


def test_unique_violation_is_already_enqueued(db):
    entry = parse_entry("k", VALID)
    at = utc(2026, 5, 1, 10)
    assert cron.enqueue_run(db, entry, at) is True
    assert cron.enqueue_run(db, entry, at) is False
    assert cron.enqueue_run(db, entry, None) is True  # a manual run never collides
    assert cron.enqueue_run(db, entry, None) is True
    rows = db.execute(
        "SELECT cron_at FROM good_jobs WHERE cron_key = 'k' ORDER BY cron_at"
    ).fetchall()
    assert rows == [(dt.datetime(2026, 5, 1, 10),), (None,), (None,)]  # naive UTC


def test_callable_args_kwargs_set_are_evaluated_at_every_enqueue(db):
    counter = iter(range(100))
    entry = parse_entry(
        "k",
        {
            **VALID,
            "args": lambda: [next(counter)],
            "kwargs": lambda: {"tag": "t"},
            "set": lambda: {"queue": "q1", "priority": 3},
        },
    )
    cron.enqueue_run(db, entry, utc(2026, 5, 1, 10))
    cron.enqueue_run(db, entry, utc(2026, 5, 1, 11))
    rows = db.execute(
        "SELECT queue_name, priority, serialized_params->'arguments'->0 FROM good_jobs "
        "ORDER BY cron_at"
    ).fetchall()
    assert rows == [("q1", 3, 0), ("q1", 3, 1)]


# --- the leader -------------------------------------------------------------------------------


class Clock:
    def __init__(self, start: dt.datetime) -> None:
        self.now = start.timestamp()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _scheduler(clock: Clock, raw: dict, graceful: float | None = None) -> CronScheduler:
    settings = config.Settings(cron=raw, cron_graceful_restart_period=graceful)
    return CronScheduler(settings, clock=clock)


def _cron_ats(db, key: str) -> list[dt.datetime]:
    rows = db.execute(
        "SELECT cron_at FROM good_jobs WHERE cron_key = %s ORDER BY cron_at", (key,)
    ).fetchall()
    return [r[0] for r in rows]


def _minutes(start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    out, at = [], start
    while at <= end:
        out.append(at.replace(tzinfo=None))
        at += dt.timedelta(minutes=1)
    return out


MINUTELY = {"minutely": {**VALID, "cron": "* * * * *"}, "hourly": {**VALID, "cron": "@hourly"}}
START = utc(2026, 5, 1, 9, 59, 55)
END = utc(2026, 5, 1, 11, 0, 0)


def _run(clock: Clock, schedulers: list[CronScheduler], until: dt.datetime, step: float = 5):
    leaders_seen = []
    while clock.now <= until.timestamp():
        for s in schedulers:
            s.tick()
        leaders_seen.append(sum(s.is_leader for s in schedulers))
        clock.advance(step)
    return leaders_seen


def test_two_schedulers_enqueue_each_run_exactly_once(db):
    clock = Clock(START)
    a, b = _scheduler(clock, MINUTELY), _scheduler(clock, MINUTELY)
    try:
        leaders = _run(clock, [a, b], END)
        assert set(leaders) == {1}  # always exactly one leader
        assert _cron_ats(db, "minutely") == _minutes(utc(2026, 5, 1, 10), END)
        assert _cron_ats(db, "hourly") == [dt.datetime(2026, 5, 1, 10), dt.datetime(2026, 5, 1, 11)]
        leader = a if a.is_leader else b
        assert leader.next_wakeup() <= clock.now + cron.HEALTH_INTERVAL
        follower = b if leader is a else a
        assert follower.next_wakeup() <= clock.now + 1
    finally:
        a.close()
        b.close()


def test_killed_leader_hands_over_and_graceful_period_fills_the_gap(db):
    clock = Clock(START)
    a = _scheduler(clock, MINUTELY, graceful=900)
    b = _scheduler(clock, MINUTELY, graceful=900)
    try:
        _run(clock, [a, b], utc(2026, 5, 1, 10, 20, 2))
        assert a.is_leader and not b.is_leader
        # The leader's process dies (its session ends); the other supervisor is busy (or
        # restarting) for ten minutes before its next tick.
        pid = a._conn.info.backend_pid
        db.execute("SELECT pg_terminate_backend(%s)", (pid,))
        assert backend_gone(db, pid)
        clock.advance(600)
        _run(clock, [b], END)
        assert b.is_leader
        # The first leader also caught up the 15 minutes before it started (09:45 on).
        assert _cron_ats(db, "minutely") == _minutes(utc(2026, 5, 1, 9, 45), END)
    finally:
        a.close()
        b.close()


def test_connection_loss_hands_over_within_a_retry(db):
    clock = Clock(START)
    a, b = _scheduler(clock, MINUTELY, graceful=60), _scheduler(clock, MINUTELY, graceful=60)
    try:
        _run(clock, [a, b], utc(2026, 5, 1, 10, 30, 2))
        leader, other = (a, b) if a.is_leader else (b, a)
        pid = leader._conn.info.backend_pid
        db.execute("SELECT pg_terminate_backend(%s)", (pid,))
        assert backend_gone(db, pid)
        leader.tick()  # finds its connection gone
        assert not leader.is_leader
        other.tick()
        assert other.is_leader
        _run(clock, [a, b], END)
        assert _cron_ats(db, "minutely") == _minutes(utc(2026, 5, 1, 9, 59), END)
    finally:
        a.close()
        b.close()


def test_without_graceful_period_missed_runs_are_skipped_and_logged(db, caplog):
    clock = Clock(START)
    a, b = _scheduler(clock, MINUTELY), _scheduler(clock, MINUTELY)
    try:
        _run(clock, [a], utc(2026, 5, 1, 10, 10, 2))
        a.close()  # the leader stops
        clock.advance(300)
        with caplog.at_level(logging.WARNING, logger="goodjob_mp.cron"):
            _run(clock, [b], utc(2026, 5, 1, 10, 30, 0))
        assert any("minutely missed 5 run(s)" in r.getMessage() for r in caplog.records)
        expected = _minutes(utc(2026, 5, 1, 10), utc(2026, 5, 1, 10, 10))
        expected += _minutes(utc(2026, 5, 1, 10, 16), utc(2026, 5, 1, 10, 30))
        assert _cron_ats(db, "minutely") == expected
    finally:
        b.close()


def test_two_leaders_at_once_still_enqueue_no_duplicate(db):
    clock = Clock(START)
    a, b = _scheduler(clock, MINUTELY, graceful=300), _scheduler(clock, MINUTELY, graceful=300)
    try:
        a.tick()
        assert a.is_leader
        # A network split: b believes it leads too (its own connection, no lock).
        b._conn = connection.connect()
        b.is_leader = True
        b._become_leader(dt.datetime.fromtimestamp(clock.now, UTC))
        leaders = _run(clock, [a, b], utc(2026, 5, 1, 10, 30))
        assert set(leaders) == {2}
        assert _cron_ats(db, "minutely") == _minutes(
            utc(2026, 5, 1, 9, 55), utc(2026, 5, 1, 10, 30)
        )
    finally:
        a.close()
        b.close()


def test_disabled_entries_are_skipped_until_enabled(db):
    clock = Clock(START)
    s = _scheduler(clock, MINUTELY)
    try:
        cron.set_enabled(db, "minutely", False)
        _run(clock, [s], utc(2026, 5, 1, 10, 5, 2))
        assert _cron_ats(db, "minutely") == []
        assert len(_cron_ats(db, "hourly")) == 1
        cron.set_enabled(db, "minutely", True)
        _run(clock, [s], utc(2026, 5, 1, 10, 8, 0))
        assert _cron_ats(db, "minutely") == _minutes(utc(2026, 5, 1, 10, 6), utc(2026, 5, 1, 10, 8))
    finally:
        s.close()


def test_tick_never_raises_when_the_database_is_unreachable():
    clock = Clock(START)

    def unreachable() -> psycopg.Connection:
        return connection.connect("postgresql://postgres@127.0.0.1:1/none?connect_timeout=2")

    s = CronScheduler(config.Settings(cron=MINUTELY), clock=clock, connect=unreachable)
    s.tick()
    assert not s.is_leader
    assert clock.now < s.next_wakeup() <= clock.now + 1
    s.close()


def test_close_releases_leadership(db):
    clock = Clock(START)
    a, b = _scheduler(clock, MINUTELY), _scheduler(clock, MINUTELY)
    try:
        a.tick()
        b.tick()
        assert a.is_leader and not b.is_leader
        a.close()
        clock.advance(1)
        b.tick()
        assert b.is_leader
    finally:
        b.close()


def test_before_fork_releases_and_resumes_without_missing_a_run(db):
    clock = Clock(START)
    s = _scheduler(clock, MINUTELY)  # no graceful period: only resuming can fill the gap
    try:
        _run(clock, [s], utc(2026, 5, 1, 10, 5, 0))
        s.before_fork()
        assert not s.is_leader and s._conn is None  # nothing crosses the fork
        clock.advance(20)  # 10:05:20 (the 10:05 run was enqueued before the fork)
        s.tick()
        assert s.is_leader
        clock.now = utc(2026, 5, 1, 10, 6, 30).timestamp()
        s.tick()
        s.before_fork()
        clock.now = utc(2026, 5, 1, 10, 7, 10).timestamp()  # the 10:07 run fell due meanwhile
        s.tick()
        assert s.is_leader
        assert _cron_ats(db, "minutely") == _minutes(utc(2026, 5, 1, 10), utc(2026, 5, 1, 10, 7))
    finally:
        s.close()


# --- CLI --------------------------------------------------------------------------------------


def _cli(*args: str):
    result = CliRunner().invoke(main, ["cron", *args], catch_exceptions=False)
    return result


def test_cli_list_enable_disable_run(db):
    gj.configure(
        cron={
            "report": {**VALID, "timezone": "America/New_York", "description": "the report"},
            "quiet": {**VALID, "enabled_by_default": False},
        }
    )
    out = _cli("list")
    assert out.exit_code == 0, out.output
    assert "report  [enabled]" in out.output and "quiet  [disabled]" in out.output
    assert "(America/New_York)" in out.output and "UTC)" in out.output  # local and UTC times
    assert "last run:  never" in out.output

    assert _cli("disable", "report").exit_code == 0
    assert _cli("enable", "quiet").exit_code == 0
    assert cron.read_switches(db) == ({"quiet"}, {"report"})
    out = _cli("list")
    assert "report  [disabled]" in out.output and "quiet  [enabled]" in out.output

    assert _cli("run", "report").exit_code == 0  # run now works even when disabled
    row = db.execute("SELECT cron_key, cron_at, queue_name FROM good_jobs").fetchone()
    assert row == ("report", None, "cron")
    assert gj.perform_inline() == 1
    out = _cli("list")
    assert "(run now): succeeded" in out.output

    assert _cli("enable", "report").exit_code == 0
    assert cron.read_switches(db) == ({"quiet", "report"}, set())


def test_cli_unknown_key_and_bad_entry():
    gj.configure(cron={"report": VALID})
    out = CliRunner().invoke(main, ["cron", "run", "nope"])
    assert out.exit_code != 0 and "no cron entry 'nope'; known keys: report" in out.output
    gj.configure(cron={"broken": {**VALID, "cron": "nonsense"}})
    out = CliRunner().invoke(main, ["cron", "list"])
    assert out.exit_code != 0 and "cron entry 'broken'" in out.output
