"""Concurrency controls and throttles (issue 9): GoodJob's good_job_control_concurrency_with,
stored as GoodJob stores it, holding across processes (docs/concurrency.md)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

import goodjob_mp as gj
from goodjob_mp import features
from goodjob_mp.config import load_settings
from goodjob_mp.db import job_store
from goodjob_mp.execution import perform
from goodjob_mp.features import concurrency as policy
from goodjob_mp.features import concurrency_io
from goodjob_mp.queues import QueueSelector
from tests import jobs_for_concurrency as J
from tests.supervising import *  # noqa: F403 - the start fixture

ALL = QueueSelector("all", ())


def features_check(job, config):
    """The perform seam's admission half (the job then counts as running until released)."""
    return concurrency_io.check_perform(job, config)


@pytest.fixture(autouse=True)
def _fresh_check_connection():
    yield
    concurrency_io.close()


# --- policy (pure) ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "needs at least one of"),
        ({"perform_limit": -1}, "perform_limit=-1"),
        ({"perform_limit": 1.5}, "whole number >= 0"),
        ({"total_limit": True}, "total_limit=True"),
        ({"enqueue_throttle": (0, 60)}, "enqueue_throttle=(0, 60)"),
        ({"perform_throttle": (1, 0)}, "(count, period)"),
        ({"perform_throttle": 5}, "perform_throttle=5"),
        ({"perform_limit": 1, "key": 42}, "key=42"),
        ({"perform_limit": 1, "retry_wait": "slowly"}, "retry_wait='slowly'"),
    ],
)
def test_bad_configs_fail_where_the_class_is_defined(options, message) -> None:
    with pytest.raises(
        gj.JobDefinitionError, match=message.replace("(", r"\(").replace(")", r"\)")
    ):

        class Bad(gj.Job):
            concurrency = gj.Concurrency(**options)


def test_a_config_that_is_not_a_concurrency_is_refused() -> None:
    with pytest.raises(gj.JobDefinitionError, match=r"Bad.concurrency = \{'perform_limit': 1\}"):

        class Bad(gj.Job):
            concurrency = {"perform_limit": 1}


def test_stage_rules_follow_goodjob() -> None:
    total = gj.Concurrency(total_limit=3)
    assert total.enqueue_rule == policy.EnqueueRule(3, False, None)
    assert total.perform_rule == policy.PerformRule(3, None)
    both = gj.Concurrency(total_limit=3, enqueue_limit=1, perform_limit=2)
    assert both.enqueue_rule == policy.EnqueueRule(1, True, None)  # enqueue_limit wins
    assert both.perform_rule == policy.PerformRule(2, None)
    only = gj.Concurrency(perform_throttle=(5, dt.timedelta(minutes=1)))
    assert only.enqueue_rule is None
    assert only.perform_rule == policy.PerformRule(None, policy.Throttle(5, 60.0))


def test_keys() -> None:
    assert gj.Concurrency(perform_limit=1).key_for("SyncJob", (), {}) == "SyncJob"
    assert gj.Concurrency(perform_limit=1, key="k").key_for("SyncJob", (), {}) == "k"
    assert gj.Concurrency(perform_limit=1, key=None).key_for("SyncJob", (), {}) is None
    by_arg = gj.Concurrency(perform_limit=1, key=lambda a, *, b: f"{a}-{b}")
    assert by_arg.key_for("SyncJob", (1,), {"b": 2}) == "1-2"
    assert policy.key_text(7) == "7" and policy.key_text(True) == "true"
    assert policy.key_text(dt.date(2026, 12, 3)) == "2026-12-03"
    assert policy.key_text("") is None
    with pytest.raises(TypeError, match="must be a string"):
        policy.key_text(["a"])


def test_decisions() -> None:
    rule = policy.EnqueueRule(2, True, policy.Throttle(3, 60))
    assert policy.enqueue_refusal(rule, 1, 0) is None
    assert policy.enqueue_refusal(rule, 2, 0) == "limit"
    assert policy.enqueue_refusal(rule, 0, 3) == "throttle"
    perform_rule = policy.PerformRule(1, policy.Throttle(2, 60))
    assert policy.perform_refusal(perform_rule, 0, 1) is None
    assert policy.perform_refusal(perform_rule, 1, 0) == "limit"
    assert policy.perform_refusal(perform_rule, 0, 2) == "throttle"
    assert policy.perform_refusal(policy.PerformRule(0, None), 0, 0) == "limit"


def test_refused_jobs_wait_polynomially_longer_on_their_refusal_count() -> None:
    config = gj.Concurrency(perform_limit=1)
    for refusals, base in ((1, 1), (2, 16), (3, 81)):
        wait = config.retry_seconds(refusals)
        assert base + 2 <= wait <= base * 1.15 + 2
    assert gj.Concurrency(perform_limit=1, retry_wait=0.5).retry_seconds(9) <= 0.5 * 1.15


# --- enqueue ----------------------------------------------------------------------------------


def _rows(db):
    return db.execute(
        "SELECT job_class, concurrency_key, serialized_params FROM good_jobs ORDER BY created_at"
    ).fetchall()


def test_the_key_is_stored_in_the_column_and_not_in_the_payload(db) -> None:
    J.Sync.perform_later(42)
    J.totalled.perform_later()
    rows = _rows(db)
    assert [(r[0], r[1]) for r in rows] == [
        ("tests.jobs_for_concurrency.Sync", "sync-42"),
        ("tests.jobs_for_concurrency.totalled", "total"),
    ]
    assert "good_job_concurrency_key" not in rows[0][2]
    gj.enqueue("tests.jobs_for_concurrency.Sync", [5])  # by name: the class's key too
    assert _rows(db)[-1][1] == "sync-5"


def test_enqueue_limit_refuses_without_raising_and_writes_nothing(db) -> None:
    first, second = J.report.perform_later("a"), J.report.perform_later("a")
    third = J.report.perform_later("a")
    assert first and second and first.enqueued and second.refused is None
    assert not third and third.enqueued is False and third.refused == "limit"
    assert J.report.perform_later("other-key")  # another key has its own places
    assert (
        db.execute("SELECT count(*) FROM good_jobs WHERE id = %s", (third.id,)).fetchone()[0] == 0
    )
    # enqueue_limit counts waiting jobs only: once one runs, there is a place again.
    db.execute(
        "UPDATE good_jobs SET locked_by_id = gen_random_uuid(), performed_at = now() WHERE id = %s",
        (first.id,),
    )
    assert J.report.perform_later("a")
    assert not J.report.perform_later("a")


def test_total_limit_counts_running_jobs_too(db) -> None:
    first = J.totalled.perform_later()
    assert not J.totalled.perform_later()
    db.execute(
        "UPDATE good_jobs SET locked_by_id = gen_random_uuid(), performed_at = now() WHERE id = %s",
        (first.id,),
    )
    assert not J.totalled.perform_later()
    db.execute("UPDATE good_jobs SET finished_at = now() WHERE id = %s", (first.id,))
    assert J.totalled.perform_later()


def test_enqueue_throttle_counts_jobs_created_in_the_period(db) -> None:
    assert J.enqueue_throttled.perform_later() and J.enqueue_throttled.perform_later()
    refused = J.enqueue_throttled.perform_later()
    assert refused.refused == "throttle"
    # Finished jobs count too; jobs created before the period do not.
    db.execute("UPDATE good_jobs SET finished_at = now()")
    assert not J.enqueue_throttled.perform_later()
    db.execute("UPDATE good_jobs SET created_at = created_at - interval '61 seconds'")
    assert J.enqueue_throttled.perform_later()


def test_bulk_enqueue_skips_refused_rows_and_counts_its_own(db) -> None:
    with gj.bulk() as batch:
        for key in ("x", "x", "x", "y", "x"):
            J.report.perform_later(key)
    assert [h.enqueued for h in batch.jobs] == [True, True, False, True, False]
    assert [h.refused for h in batch.jobs][2] == "limit"
    keys = [r[1] for r in _rows(db)]
    assert sorted(keys) == ["report-x", "report-x", "report-y"]


def test_enqueue_inside_a_callers_transaction_holds_the_key_until_commit(db, database_url) -> None:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as mine:
        with mine.transaction(), gj.using_connection(mine):
            assert J.report.perform_later("t") and J.report.perform_later("t")
            locks = db.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = %s",
                (mine.info.backend_pid,),
            ).fetchone()[0]
            assert locks == 1  # GoodJob's key lock, held until this transaction ends
        assert not J.report.perform_later("t")


# --- perform ----------------------------------------------------------------------------------


def _claim(db, n: int = 10, process_id: uuid.UUID | None = None):
    return job_store.claim_jobs(db, ALL, process_id or uuid.uuid4(), n)


def test_perform_limit_admits_up_to_the_limit_and_refuses_the_rest(db) -> None:
    for _ in range(3):
        J.Sync.perform_later(1)
    J.Sync.perform_later(2)
    jobs = _claim(db)
    config = J.Sync._concurrency
    verdicts = [features_check(job, config) for job in jobs]
    assert sorted(verdicts, key=str) == [None, None, "limit", "limit"]  # one per key
    admitted = [j for j, v in zip(jobs, verdicts, strict=True) if v is None]
    assert {j.serialized_params["arguments"][0] for j in admitted} == {1, 2}
    # Checking an admitted job again is idempotent (it does not count itself).
    assert features_check(admitted[0], config) is None
    # Once the admitted job of key 1 finishes, the next one of key 1 is let through.
    key1 = next(j for j in admitted if j.serialized_params["arguments"][0] == 1)
    db.execute("UPDATE good_jobs SET finished_at = now() WHERE id = %s", (key1.id,))
    refused_1 = [j for j, v in zip(jobs, verdicts, strict=True) if v == "limit"]
    assert [features_check(j, config) for j in refused_1] == [None, "limit"]


def test_a_job_claimed_earlier_but_checked_later_does_not_exceed_the_limit(db) -> None:
    """GoodJob lets the oldest `limit` running jobs through; a job claimed before an admitted
    one but checked after it would pass that test too. The admission mark closes the race."""
    J.Sync.perform_later(3)
    J.Sync.perform_later(3)
    process = uuid.uuid4()
    t0 = job_store.utcnow()
    (older,) = job_store.claim_jobs(db, ALL, process, 1, now=t0)
    (newer,) = job_store.claim_jobs(db, ALL, process, 1, now=t0 + dt.timedelta(seconds=5))
    assert features_check(newer, J.Sync._concurrency) is None
    assert features_check(older, J.Sync._concurrency) == "limit"


def test_a_refused_perform_is_recorded_as_goodjobs_concurrency_retry(db) -> None:
    J.Sync.perform_later(9)
    J.Sync.perform_later(9)
    process = uuid.uuid4()
    first, second = _claim(db, process_id=process)
    settings = load_settings({})
    assert features_check(first, J.Sync._concurrency) is None
    result = perform(second, settings)
    assert result.outcome == "retried" and not result.finished
    assert job_store.write_results(db, [result], process) == []
    row = db.execute(
        "SELECT error, error_event, executions_count, performed_at, locked_by_id,"
        " serialized_params, scheduled_at - %s FROM good_jobs WHERE id = %s",
        (result.ended_at, second.id),
    ).fetchone()
    error = policy.CONCURRENCY_ERROR
    assert error == (
        "GoodJob::ActiveJobExtensions::Concurrency::ConcurrencyExceededError: "
        "GoodJob::ActiveJobExtensions::Concurrency::ConcurrencyExceededError"
    )
    assert row[:5] == (error, 3, 1, None, None)
    assert row[5]["executions"] == 1
    assert row[5]["exception_executions"] == {
        "[GoodJob::ActiveJobExtensions::Concurrency::ConcurrencyExceededError]": 1
    }
    assert dt.timedelta(seconds=3) <= row[6] <= dt.timedelta(seconds=3.2)  # 1**4 + 2 + jitter
    execution = db.execute(
        "SELECT error, error_event, error_backtrace FROM good_job_executions"
    ).fetchall()
    assert execution == [(error, 3, [])]


def test_perform_throttle_counts_attempts_started_in_the_period(db) -> None:
    for _ in range(3):
        J.perform_throttled.perform_later()
    process = uuid.uuid4()
    jobs = _claim(db, process_id=process)
    settings = load_settings({})
    results = [perform(job, settings) for job in jobs]
    assert [r.outcome for r in results] == ["succeeded", "succeeded", "retried"]
    assert results[2].error == policy.THROTTLE_ERROR
    job_store.write_results(db, results, process)
    # A throttle-refused attempt does not count against the throttle (GoodJob's count).
    db.execute("UPDATE good_jobs SET scheduled_at = now() at time zone 'utc' - interval '1 s'")
    (again,) = _claim(db, process_id=process)
    assert perform(again, settings).error == policy.THROTTLE_ERROR
    db.execute("UPDATE good_job_executions SET created_at = created_at - interval '61 seconds'")
    assert perform(again, settings).outcome == "succeeded"


def test_jobs_without_a_concurrency_config_never_reach_the_check(db, monkeypatch) -> None:
    from tests import jobs_for_tests as T

    called = []
    monkeypatch.setattr(features, "admit_perform", lambda *a: called.append(a))
    T.noop.perform_later()
    (job,) = _claim(db)
    assert perform(job, load_settings({})).outcome == "succeeded"
    assert called == []


# --- across processes: the ledger ---------------------------------------------------------------

OVERLAP = f"""
SELECT COALESCE(max((SELECT count(*) FROM {J.LEDGER_TABLE} b
                     WHERE b.started_at <= a.started_at AND b.ended_at > a.started_at)), 0)
FROM {J.LEDGER_TABLE} a
"""


def test_two_supervisors_with_four_pools_never_exceed_the_perform_limit(db, start) -> None:
    """perform_limit=2 on one key; 2 supervisors x 4 pools x 3 threads claim the jobs at once.
    Every job records its start and end (database clock) in a ledger table."""
    from tests.waiting import wait_for

    db.execute(f"DROP TABLE IF EXISTS {J.LEDGER_TABLE}")
    db.execute(J.LEDGER_DDL)
    n = 16
    with gj.bulk():
        for i in range(n):
            J.Ledgered.perform_later(f"job-{i}", 0.3)
    pools = "*:3;*:3;*:3;*:3"
    sups = [
        start("--app", "tests.jobs_for_concurrency", f"--queues={pools}", name=f"sup{i}")
        for i in range(2)
    ]
    for sup in sups:
        sup.wait_ready(pools=4)
    done = "SELECT count(*) FROM good_jobs WHERE finished_at IS NOT NULL AND error IS NULL"
    assert wait_for(lambda: db.execute(done).fetchone()[0] == n, timeout=180), [
        s.output()[-2000:] for s in sups
    ]
    ran = db.execute(
        f"SELECT tag, count(*), count(ended_at) FROM {J.LEDGER_TABLE} GROUP BY tag"
    ).fetchall()
    assert sorted(ran) == sorted((f"job-{i}", 1, 1) for i in range(n))  # each exactly once
    assert db.execute(OVERLAP).fetchone()[0] <= 2
    pids = db.execute(f"SELECT count(DISTINCT pid) FROM {J.LEDGER_TABLE}").fetchone()[0]
    refused = db.execute(
        "SELECT count(*) FROM good_job_executions WHERE error = %s", (policy.CONCURRENCY_ERROR,)
    ).fetchone()[0]
    print(f"ledger: {n} jobs ran in {pids} processes; {refused} refused attempts")


# --- compatibility: the rows GoodJob wrote (tests/fixtures/goodjob-reference) ---------------------


def _captured() -> dict[str, dict]:
    import json

    from tests.reference import REFERENCE_DIR

    path = REFERENCE_DIR / "good_jobs_concurrency.jsonl"
    return {step["step"]: step for step in map(json.loads, path.read_text().splitlines())}


class AccountSync(gj.Job):
    """RubyPerformLimitedJob's config, in Python."""

    concurrency = gj.Concurrency(perform_limit=1, key=lambda account_id: f"acct-{account_id}")

    def perform(self, account_id: int) -> None:
        pass


def _row(db, table: str, where: str, value) -> dict:
    return db.execute(
        f"SELECT row_to_json(t)::jsonb FROM {table} t WHERE {where} = %s", (value,)
    ).fetchone()[0]


def test_enqueue_rows_match_goodjob(db) -> None:
    ruby = _captured()
    (ruby_row,) = ruby["enqueue_with_key"]["jobs"]
    handle = AccountSync.perform_later(7)
    row = _row(db, "good_jobs", "id", handle.id)
    assert row["concurrency_key"] == ruby_row["concurrency_key"] == "acct-7"
    # No key of its own in the payload; the other keys are Active Job's (7.1 adds scheduled_at).
    assert set(row["serialized_params"]) - {"scheduled_at"} == set(ruby_row["serialized_params"])
    over = ruby["enqueue_over_limit"]
    assert over == {
        "step": "enqueue_over_limit",
        "first_enqueued": True,
        "second_returned": False,
        "rows": 1,
    }


def test_a_refused_perform_writes_the_rows_goodjob_writes(db) -> None:
    (ruby_job,) = _captured()["perform_over_limit"]["jobs"]
    (ruby_execution,) = _captured()["perform_over_limit"]["executions"]
    AccountSync.perform_later(7)
    AccountSync.perform_later(7)
    process = uuid.uuid4()
    first, second = _claim(db, process_id=process)
    assert features_check(first, AccountSync._concurrency) is None
    job_store.write_results(db, [perform(second, load_settings({}))], process)
    job = _row(db, "good_jobs", "id", second.id)
    execution = _row(db, "good_job_executions", "active_job_id", second.id)
    same = (
        "error",
        "error_event",
        "executions_count",
        "performed_at",
        "finished_at",
        "locked_by_id",
        "locked_at",
        "lock_type",
        "concurrency_key",
    )
    assert {k: job[k] for k in same} == {k: ruby_job[k] for k in same}
    for key in ("executions", "exception_executions"):
        assert job["serialized_params"][key] == ruby_job["serialized_params"][key]
    assert job["serialized_params"]["provider_job_id"] == job["id"]
    assert ruby_job["serialized_params"]["provider_job_id"] == ruby_job["id"]
    same = ("error", "error_event", "error_backtrace", "job_class", "queue_name")
    ruby_execution["job_class"] = job["job_class"]  # the class names differ, nothing else
    assert {k: execution[k] for k in same} == {k: ruby_execution[k] for k in same}
    assert execution["serialized_params"]["executions"] == 0  # the attempt's payload, as GoodJob
    assert ruby_execution["serialized_params"]["executions"] == 0


def test_the_perform_check_uses_the_stored_key(db) -> None:
    """The key is computed once at enqueue (a Rails app may have written it): the check reads
    the column, never recomputes it."""
    a, b = J.Sync.perform_later(1), J.Sync.perform_later(2)  # two keys: both could run
    db.execute("UPDATE good_jobs SET concurrency_key = 'written-by-rails'")
    first, second = _claim(db)
    assert features_check(first, J.Sync._concurrency) is None
    assert features_check(second, J.Sync._concurrency) == "limit"
    assert {first.id, second.id} == {a.id, b.id}
    db.execute("UPDATE good_jobs SET concurrency_key = NULL WHERE id = %s", (second.id,))
    assert features_check(second, J.Sync._concurrency) is None  # no key: no limit


def test_enqueues_without_enqueue_rules_stay_one_autocommit_statement() -> None:
    from goodjob_mp.db.job_store import NewJob
    from tests import jobs_for_tests as T

    def row(job_class: str) -> NewJob:
        now = job_store.utcnow()
        return NewJob(uuid.uuid4(), job_class, "default", 0, {"arguments": []}, now, now)

    assert not concurrency_io.needs_transaction([row(T.noop.job_class_name)])
    assert not concurrency_io.needs_transaction([row(J.Sync.job_class_name)])  # perform rule only
    assert concurrency_io.needs_transaction([row(J.report.job_class_name)])


def test_a_forked_child_opens_its_own_check_connection(db) -> None:
    """Nothing crosses a fork: the child drops the parent's check connection (unclosed) and
    its lock, and checks on a session of its own."""
    import os

    J.Sync.perform_later(11)
    (job,) = _claim(db)
    assert features_check(job, J.Sync._concurrency) is None
    parent_pid = concurrency_io._checks.run(lambda c: c.info.backend_pid)
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if it checked on another session
        ok = False
        try:
            child_pid = concurrency_io._checks.run(lambda c: c.info.backend_pid)
            ok = child_pid != parent_pid and features_check(job, J.Sync._concurrency) is None
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert concurrency_io._checks.run(lambda c: c.info.backend_pid) == parent_pid  # still alive
