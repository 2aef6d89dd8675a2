"""goodjob_mp.db.admin against real PostgreSQL: GoodJob's states, filters, keyset pages, counts,
actions one by one and in bulk, processes, performance, cron state, Rails GoodJob's own rows."""

from __future__ import annotations

import datetime as dt
import uuid

import psycopg
import pytest

from goodjob_mp.cron import parse_entries
from goodjob_mp.db import admin
from goodjob_mp.db.processes import register_process
from tests.dashboard_support import NOW, add_execution, load_goodjob_reference, make_job
from tests.waiting import backend_gone

STATES = ("scheduled", "retried", "queued", "running", "succeeded", "discarded")


def ids(page: admin.JobPage) -> list[uuid.UUID]:
    return [row["id"] for row in page.rows]


def test_each_state_is_goodjobs_definition(db):
    made = {state: make_job(db, state) for state in STATES}
    # Retried once only: Active Job counted one execution, so GoodJob still calls it scheduled.
    once = make_job(db, "scheduled", executions=1, error="E: x", error_event=3)
    for state in STATES:
        page = admin.list_jobs(db, admin.JobFilter(state=state), now=NOW)
        expected = {made[state]} | ({once} if state == "scheduled" else set())
        assert set(ids(page)) == expected, state
        assert {row["state"] for row in page.rows} == {state}
    everything = admin.list_jobs(db, now=NOW)
    assert len(everything.rows) == 7
    counts = admin.state_counts(db, now=NOW)
    assert {k: c.value for k, c in counts.items()} == {
        "scheduled": 2,
        "retried": 1,
        "queued": 1,
        "running": 1,
        "succeeded": 1,
        "discarded": 1,
    }


def test_filters_queue_class_label_priority_cron_key(db):
    a = make_job(db, "queued", queue_name="mail", job_class="Mailer", labels=["vip", "eu"])
    b = make_job(db, "queued", queue_name="mail", job_class="Billing", priority=-5)
    c = make_job(db, "succeeded", queue_name="reports", cron_key="nightly", labels=["eu"])

    def found(**kw):
        return set(ids(admin.list_jobs(db, admin.JobFilter(**kw), now=NOW)))

    assert found(queue="mail") == {a, b}
    assert found(job_class="Billing") == {b}
    assert found(label="eu") == {a, c}
    assert found(label="vip", queue="mail") == {a}
    assert found(priority=-5) == {b}
    assert found(cron_key="nightly") == {c}
    assert found(queue="mail", state="succeeded") == set()


def test_search_finds_arguments_errors_and_ids(db):
    a = make_job(db, "queued", arguments=["invoice", {"customer": "Zanzibar Traders"}])
    b = make_job(db, "discarded", error="TimeoutError: gateway unreachable after 30 s")
    c = make_job(db, "queued", arguments=[42])

    def found(text):
        return set(ids(admin.list_jobs(db, admin.JobFilter(search=text), now=NOW)))

    assert found("zanzibar") == {a}
    assert found("gateway unreachable") == {b}
    assert found("42") == {c}
    assert found(str(b)) == {b}  # a job id goes straight to the row
    assert found("nothing-like-this") == set()


def test_filter_from_query_params_names_bad_values():
    flt = admin.JobFilter.from_params({"state": "queued", "priority": " -3 ", "queue": ""})
    assert flt == admin.JobFilter(state="queued", priority=-3)
    assert flt.params() == {"state": "queued", "priority": "-3"}
    with pytest.raises(admin.FilterError, match="state 'done' is unknown; use one of scheduled"):
        admin.JobFilter.from_params({"state": "done"})
    with pytest.raises(admin.FilterError, match="priority 'high' must be a whole number"):
        admin.JobFilter.from_params({"priority": "high"})


@pytest.mark.parametrize("state", [None, "queued", "succeeded", "running"])
def test_keyset_pages_cover_every_row_once_in_order(db, state):
    # Many rows share one timestamp: the id tie-breaker must keep pages exact.
    finishing = state in (None, "succeeded")
    for i in range(23):
        make_job(
            db,
            state or "succeeded",
            created_at=NOW - dt.timedelta(minutes=i // 5),
            scheduled_at=NOW - dt.timedelta(minutes=i // 5),
            performed_at=NOW - dt.timedelta(minutes=i // 5) if state != "queued" else None,
            finished_at=NOW - dt.timedelta(seconds=i // 4) if finishing else None,
        )
    flt = admin.JobFilter(state=state)
    whole = ids(admin.list_jobs(db, flt, limit=100, now=NOW))
    assert len(whole) == 23
    seen, cursor = [], None
    while True:
        page = admin.list_jobs(db, flt, after=cursor, limit=5, now=NOW)
        seen += ids(page)
        cursor = page.next_cursor
        if cursor is None:
            break
        cursor = admin.Cursor.decode(cursor.encode())  # as a link carries it
    assert seen == whole


def test_keyset_page_survives_rows_arriving_and_the_cursor_row_going(db):
    for i in range(6):
        make_job(db, "succeeded", created_at=NOW - dt.timedelta(minutes=i))
    first = admin.list_jobs(db, limit=3, now=NOW)
    make_job(db, "succeeded", created_at=NOW)  # newer: belongs before page 1, not on page 2
    db.execute("DELETE FROM good_jobs WHERE id = %s", (first.rows[-1]["id"],))
    second = admin.list_jobs(db, after=first.next_cursor, limit=3, now=NOW)
    assert len(second.rows) == 3
    assert not set(ids(first)) & set(ids(second))
    assert second.next_cursor is None


def test_bad_cursor_is_a_filter_error():
    with pytest.raises(admin.FilterError, match="not one this dashboard made"):
        admin.Cursor.decode("bm9wZQ")


def test_counts_stop_at_the_cap(db):
    for _ in range(7):
        make_job(db, "queued")
    counts = admin.state_counts(db, now=NOW, limit=5)
    assert (counts["queued"].value, counts["queued"].capped, str(counts["queued"])) == (
        5,
        True,
        "5+",
    )
    assert str(counts["running"]) == "0"


def test_find_job_with_every_execution(db):
    job_id = make_job(db, "succeeded")
    add_execution(
        db,
        job_id,
        started=NOW - dt.timedelta(minutes=5),
        seconds=1.5,
        error="TransientError: once",
        event=3,
        backtrace=["app.py:1 in perform", "worker.py:9 in run"],
    )
    add_execution(db, job_id, started=NOW - dt.timedelta(minutes=2), seconds=0.2)
    detail = admin.find_job(db, job_id, now=NOW)
    assert detail.job["state"] == "succeeded"
    assert [e["error"] for e in detail.executions] == ["TransientError: once", None]
    assert detail.executions[0]["error_backtrace"] == ["app.py:1 in perform", "worker.py:9 in run"]
    assert detail.executions[0]["duration"] == dt.timedelta(seconds=1.5)
    assert admin.find_job(db, uuid.uuid4()) is None


def test_retry_puts_a_discarded_job_back_with_one_more_execution(db, database_url):
    job_id = make_job(db, "discarded", queue_name="mail", executions=1)
    with psycopg.connect(database_url, autocommit=True) as listener:
        listener.execute("LISTEN good_job")
        assert admin.apply_action(db, "retry", [job_id]) == [job_id]
        notes = list(listener.notifies(timeout=5, stop_after=1))
    assert '"queue_name":"mail"' in notes[0].payload
    row = db.execute(
        "SELECT finished_at, performed_at, error_event, serialized_params->>'executions', "
        "scheduled_at <= now() AT TIME ZONE 'UTC' FROM good_jobs WHERE id = %s",
        (job_id,),
    ).fetchone()
    assert row == (None, None, 3, "2", True)
    assert admin.list_jobs(db, admin.JobFilter(state="queued")).rows[0]["id"] == job_id
    assert admin.apply_action(db, "retry", [job_id]) == []  # no longer discarded


def test_actions_apply_only_to_the_states_they_fit(db):
    jobs = {state: make_job(db, state) for state in STATES}
    for action, fits in admin.ACTION_STATES.items():
        db.execute("BEGIN")
        try:
            changed = admin.apply_action(db, action, list(jobs.values()), now=NOW)
        finally:
            db.execute("ROLLBACK")
        assert {s for s, j in jobs.items() if j in changed} == set(fits), action
    assert admin.allowed_actions("queued") == ["discard", "reschedule"]
    assert admin.allowed_actions("queued", running=True) == []


def test_discard_reschedule_destroy(db):
    later = make_job(db, "scheduled")
    waiting = make_job(db, "queued")
    done = make_job(db, "succeeded")
    add_execution(db, done, started=NOW - dt.timedelta(minutes=3), seconds=1)
    assert admin.apply_action(db, "reschedule", [later]) == [later]
    assert admin.find_job(db, later).job["state"] == "queued"
    assert admin.apply_action(db, "discard", [waiting]) == [waiting]
    discarded = admin.find_job(db, waiting).job
    assert (discarded["state"], discarded["error_event"]) == ("discarded", 5)
    assert discarded["error"] == admin.DISCARD_ERROR
    assert admin.apply_action(db, "destroy", [done]) == [done]
    assert admin.find_job(db, done) is None
    left = db.execute("SELECT count(*) FROM good_job_executions WHERE active_job_id = %s", (done,))
    assert left.fetchone()[0] == 0


def test_a_job_held_by_goodjobs_advisory_lock_is_left_alone(db, database_url):
    job_id = make_job(db, "queued")
    key = db.execute(
        "SELECT ('x' || substr(md5('good_jobs-' || %s::text), 1, 16))::bit(64)::bigint",
        (job_id,),
    ).fetchone()[0]
    with psycopg.connect(database_url, autocommit=True) as rails:
        rails.execute("SELECT pg_advisory_lock(%s)", (key,))
        assert admin.apply_action(db, "discard", [job_id]) == []
        rails_pid = rails.info.backend_pid
    assert backend_gone(db, rails_pid)  # its lock goes with the server process, not the close
    assert admin.apply_action(db, "discard", [job_id]) == [job_id]


def test_unknown_action_is_refused(db):
    with pytest.raises(admin.FilterError, match="action 'explode' is unknown"):
        admin.apply_action(db, "explode", [uuid.uuid4()])


def test_bulk_action_on_everything_a_filter_matches_in_batches(db):
    mail = [make_job(db, "discarded", queue_name="mail") for _ in range(7)]
    other = make_job(db, "discarded", queue_name="other")
    flt = admin.JobFilter(state="discarded", queue="mail")
    assert admin.apply_action_to_filter(db, "retry", flt, batch=3) == 7
    states = {r["id"]: r["state"] for r in admin.list_jobs(db, limit=50).rows}
    assert {states[j] for j in mail} == {"queued"}
    assert states[other] == "discarded"
    # Without a state, only the jobs the action fits are changed.
    assert admin.apply_action_to_filter(db, "destroy", admin.JobFilter(), batch=2) == 1


def test_processes_alive_by_lock_or_fresh_heartbeat(db, database_url):
    live = uuid.uuid4()
    state = {
        "hostname": "web-1",
        "pid": 4242,
        "memory": 51200,
        "schedulers": [
            {"queues": "mail", "max_threads": 2, "active_threads": 1},
            {"queues": "*", "max_threads": 3, "active_threads": 2},
        ],
    }
    with psycopg.connect(database_url, autocommit=True) as holder:
        assert register_process(holder, live, state)
        db.execute(
            "INSERT INTO good_job_processes (id, created_at, updated_at, state) "
            "VALUES (%s, now() - interval '2 hours', now() - interval '1 hour', '{}')",
            (uuid.uuid4(),),
        )
        make_job(db, "running", locked_by_id=live)
        rows = {p.id: p for p in admin.list_processes(db)}
    assert len(rows) == 2
    p = rows[live]
    assert (p.alive, p.locked, p.hostname, p.pid, p.memory_kb) == (True, True, "web-1", 4242, 51200)
    assert (p.threads_busy, p.threads_total, p.locked_jobs) == (3, 5, 1)
    stale = next(r for k, r in rows.items() if k != live)
    assert (stale.alive, stale.pools, stale.hostname) == (False, [], None)


def test_performance_per_minute_and_percentiles(db):
    now = dt.datetime(2026, 12, 1, 12, 30, 20)
    job_id = make_job(db, "succeeded")
    for i, seconds in enumerate([0.1] * 9 + [2.0]):
        add_execution(
            db, job_id, started=now - dt.timedelta(minutes=i % 3, seconds=30), seconds=seconds
        )
    add_execution(
        db, job_id, started=now - dt.timedelta(minutes=3), seconds=5, job_class="B", queue_name="q"
    )
    add_execution(db, job_id, started=now - dt.timedelta(hours=3), seconds=9)  # outside
    perf = admin.performance(db, minutes=10, now=now)
    assert len(perf.minutes) == 10 and perf.minutes[-1] == dt.datetime(2026, 12, 1, 12, 30)
    line = perf.series[("ExampleJob", "default")]
    assert sum(line) == 10 and line[-4:] == [3, 3, 4, 0]  # finished 12:27-12:29
    assert sum(perf.series[("B", "q")]) == 1
    first = perf.durations[0]
    assert (first["job_class"], first["n"]) == ("ExampleJob", 10)
    assert first["p50"] == pytest.approx(0.1)
    assert first["p95"] == pytest.approx(0.1 + 0.55 * 1.9)


def test_cron_states_read_switches_and_last_runs(db):
    from goodjob_mp import cron as cron_mod
    from tests.dashboard_support import cron_tick

    entries = parse_entries(
        {
            "tick": {"cron": "*/5 * * * *", "class": cron_tick},
            "off": {"cron": "@daily", "class": cron_tick, "enabled_by_default": False},
        }
    )
    cron_mod.set_enabled(db, "tick", False)
    cron_mod.enqueue_run(db, entries["off"], None)
    rows = {r.key: r for r in admin.cron_states(db, entries, now=NOW)}
    assert (rows["tick"].enabled, rows["tick"].next_at) == (False, None)
    assert rows["off"].last_run is not None and rows["off"].last_run.cron_at is None
    cron_mod.set_enabled(db, "tick", True)
    tick = admin.cron_states(db, entries, now=NOW)[0]
    assert tick.enabled and tick.next_at == dt.datetime(2026, 12, 1, 12, 5, tzinfo=dt.timezone.utc)


def test_rows_written_by_rails_goodjob_show_in_their_states(db):
    load_goodjob_reference(db)
    now = dt.datetime(2026, 11, 22, 6, 0, 0)
    by_class = {}
    page = admin.list_jobs(db, limit=100, now=now)
    for row in page.rows:
        by_class.setdefault(row["job_class"], set()).add(row["state"])
    assert len(page.rows) == 27
    assert by_class["BlockingJob"] == {"running"}
    assert by_class["DiscardJob"] == {"discarded"}
    assert by_class["SuccessJob"] == {"succeeded"}
    assert by_class["ScheduledJob"] == {"scheduled"}
    assert by_class["NoArgsJob"] == {"queued"}
    detail = admin.find_job(db, uuid.UUID("a6ee82b2-3254-480b-b97f-f62afaa243c7"), now=now)
    assert [e["error_event"] for e in detail.executions] == [0, None]
    search = admin.list_jobs(db, admin.JobFilter(search="boom"), now=now)
    assert [r["job_class"] for r in search.rows] == ["UnhandledErrorJob"]
    labelled = admin.list_jobs(db, admin.JobFilter(label="billing"), now=now)
    assert [r["job_class"] for r in labelled.rows] == ["LabeledJob"]
    # Retry a job Rails discarded: only Active Job's execution count changes in its params.
    discarded = uuid.UUID("9fcf7ce5-e55f-40cf-aa4a-617f08449ae6")
    before = admin.find_job(db, discarded, now=now).job["serialized_params"]
    assert admin.apply_action(db, "retry", [discarded], now=now) == [discarded]
    after = admin.find_job(db, discarded, now=now).job
    assert after["state"] == "queued"
    assert after["serialized_params"] == {**before, "executions": before["executions"] + 1}
    processes = admin.list_processes(db, now=now)
    assert {p.hostname for p in processes} == {"vm"}
    capsule = next(p for p in processes if p.pools)
    assert (capsule.threads_busy, capsule.threads_total) == (1, 1)


def test_text_search_pages_through_a_bounded_window(db):
    # 12 jobs, newest first; the word is on the 2nd and the 11th.
    made = []
    for i in range(12):
        arguments = ["needle"] if i in (1, 10) else ["hay"]
        made.append(
            make_job(db, "queued", created_at=NOW - dt.timedelta(minutes=i), arguments=arguments)
        )
    flt = admin.JobFilter(search="needle")
    first = admin.list_jobs(db, flt, now=NOW, window=5)
    assert (ids(first), first.searched, first.window_full) == ([made[1]], 5, True)
    second = admin.list_jobs(db, flt, after=first.next_cursor, now=NOW, window=5)
    assert (ids(second), second.searched) == ([], 5)
    third = admin.list_jobs(db, flt, after=second.next_cursor, now=NOW, window=5)
    assert (ids(third), third.searched, third.window_full, third.next_cursor) == (
        [made[10]],
        2,
        False,
        None,
    )
    # More hits than a page: the cursor is the last hit shown, and nothing is skipped.
    many = admin.list_jobs(db, admin.JobFilter(search="hay"), limit=4, now=NOW, window=100)
    rest = admin.list_jobs(
        db, admin.JobFilter(search="hay"), after=many.next_cursor, limit=100, now=NOW
    )
    assert ids(many) + ids(rest) == [j for i, j in enumerate(made) if i not in (1, 10)]
    assert set(admin.state_counts(db, flt).values()) == {admin.Count(None)}


def test_a_count_that_runs_out_of_time_is_left_out(db):
    make_job(db, "queued")
    counts = admin.state_counts(db, admin.JobFilter(job_class="ExampleJob"), now=NOW, timeout_ms=1)
    # With 1 ms some or all counts are cancelled; they show as unknown, the rest still count.
    assert all(c.value in (None, 0, 1) for c in counts.values())
    db.execute("SELECT pg_sleep(0)")  # the connection is usable afterwards
    slow = admin.STATES["queued"]
    try:
        admin.STATES["queued"] = slow + " AND pg_sleep(0.2) IS NOT NULL"
        counts = admin.state_counts(db, now=NOW, timeout_ms=50)
    finally:
        admin.STATES["queued"] = slow
    assert counts["queued"] == admin.Count(None) and str(counts["queued"]) == "?"
    assert counts["running"] == admin.Count(0)
