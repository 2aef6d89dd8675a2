"""Prometheus ``/metrics`` scraped over real HTTP from a real supervisor running real jobs:
counts match the jobs run, also across a SIGKILLed child and its replacement; cron enqueues,
queue depth, threads per pool; and the pure pieces (queue-stats cache, the probe route)."""

from __future__ import annotations

import http.client
import re
import signal

import pytest

pytest.importorskip("prometheus_client")

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from goodjob_mp.metrics.queue_stats import CachedQueueStats, QueueStat  # noqa: E402
from goodjob_mp.supervisor.probe import ProbeServer, ProbeStatus  # noqa: E402
from tests import jobs_for_tests as J  # noqa: E402
from tests.supervising import *  # noqa: E402, F403 - the records and start fixtures
from tests.supervising import gone  # noqa: E402
from tests.test_probe import Loop  # noqa: E402
from tests.waiting import wait_for  # noqa: E402

NOOP = "tests.jobs_for_tests.noop"


def probe_port(sup) -> int:
    assert wait_for(lambda: "probe server listening on port" in sup.output()), sup.output()
    return int(re.search(r"probe server listening on port (\d+)", sup.output()).group(1))


def get(port: int, path: str) -> tuple[int, str, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read().decode()
    finally:
        conn.close()


def scrape(port: int) -> dict[tuple[str, frozenset], float]:
    status, content_type, body = get(port, "/metrics")
    assert status == 200, body
    assert content_type.startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def finished(samples, job_class: str, outcome: str) -> float:
    return value(
        samples, "goodjob_jobs_finished_total", queue="default", job_class=job_class,
        outcome=outcome,
    )  # fmt: skip


def unfinished(db) -> int:
    return db.execute("SELECT count(*) FROM good_jobs WHERE finished_at IS NULL").fetchone()[0]


def total(db) -> int:
    return db.execute("SELECT count(*) FROM good_jobs").fetchone()[0]


def test_job_counts_add_up_across_children_and_a_sigkilled_one(start, db, records) -> None:
    for _ in range(10):
        J.noop.perform_later()
    J.Flaky.perform_later("f", 1)  # retried once, then succeeds
    J.Discarder.perform_later(1)
    J.Discarder.perform_later(2)
    J.fan_out.perform_later(3)  # three more noops, enqueued inside the child
    sup = start("--queues", "*:3", "--probe-port", "0")
    port = probe_port(sup)
    (first,) = sup.wait_ready()
    assert wait_for(lambda: total(db) == 17 and unfinished(db) == 0, 60), sup.output()

    m = scrape(port)
    assert finished(m, NOOP, "succeeded") == 13
    assert finished(m, "tests.jobs_for_tests.Flaky", "retried") == 1
    assert finished(m, "tests.jobs_for_tests.Flaky", "succeeded") == 1
    assert finished(m, "tests.jobs_for_tests.Discarder", "discarded") == 2
    assert finished(m, "tests.jobs_for_tests.fan_out", "succeeded") == 1
    assert value(m, "goodjob_jobs_enqueued_total", queue="default", job_class=NOOP) == 3
    assert value(m, "goodjob_job_duration_seconds_count", queue="default", job_class=NOOP) == 13
    assert (
        value(m, "goodjob_pool_threads", pool="*:3", state="busy")
        + value(m, "goodjob_pool_threads", pool="*:3", state="idle")
        == 3
    )
    assert value(m, "goodjob_child_restarts_total", pool="*:3") == 0

    # A job running when its child is SIGKILLed: interrupted there, performed by the successor.
    J.sleepy.perform_later("k", 2.0)
    assert wait_for(lambda: J.lines(records, "started") == ["k"], 30), sup.output()
    J.os.kill(first, signal.SIGKILL)
    assert wait_for(lambda: gone([first]))
    assert wait_for(lambda: [p for p in sup.children() if p != first], 30), sup.output()
    assert wait_for(lambda: J.lines(records, "finished") == ["k"], 60), sup.output()
    for _ in range(5):
        J.noop.perform_later()
    assert wait_for(lambda: total(db) == 23 and unfinished(db) == 0, 60), sup.output()

    m = scrape(port)
    # The killed child's counts are still there (its file stays), none counted twice.
    assert finished(m, NOOP, "succeeded") == 18
    assert finished(m, "tests.jobs_for_tests.Flaky", "retried") == 1
    assert finished(m, "tests.jobs_for_tests.Discarder", "discarded") == 2
    assert finished(m, "tests.jobs_for_tests.sleepy", "interrupted") == 1
    assert finished(m, "tests.jobs_for_tests.sleepy", "succeeded") == 1
    assert value(m, "goodjob_jobs_enqueued_total", queue="default", job_class=NOOP) == 3
    assert value(m, "goodjob_child_restarts_total", pool="*:3") == 1
    sup.signal(signal.SIGTERM)
    assert sup.wait_exit() == 0, sup.output()
    metrics_dir = re.search(r"multiprocess files in (\S+)\)", sup.output()).group(1)
    assert not J.Path(metrics_dir).exists()  # ours: removed at exit


def test_cron_enqueues_queue_depth_and_async_coroutines(start, db, records) -> None:
    for _ in range(3):
        J.noop.set(queue="parked").perform_later()  # no pool serves it
    cron = '{"tick": {"cron": "* * * * * *", "class": "tests.jobs_for_tests.noop"}}'
    sup = start(
        "--queues", "default:2", "--probe-port", "0",
        env={"GOOD_JOB_ENABLE_CRON": "true", "GOOD_JOB_CRON": cron},
    )  # fmt: skip
    port = probe_port(sup)
    sup.wait_ready()

    def cron_rows() -> int:
        return db.execute("SELECT count(*) FROM good_jobs WHERE cron_key = 'tick'").fetchone()[0]

    def settled() -> bool:
        before = value(scrape(port), "goodjob_cron_enqueued_total", cron_key="tick")
        rows = cron_rows()
        after = scrape(port)
        return before >= 2 and before == rows == value(
            after, "goodjob_cron_enqueued_total", cron_key="tick"
        )

    assert wait_for(settled, 60), sup.output()
    m = scrape(port)
    assert value(m, "goodjob_queue_depth", queue="parked") == 3
    assert value(m, "goodjob_queue_oldest_job_age_seconds", queue="parked") >= 0
    assert value(m, "goodjob_queue_stats_ok") == 1

    J.AsyncGate.perform_later("a")
    J.AsyncGate.perform_later("b")
    assert wait_for(lambda: sorted(J.lines(records, "started")) == ["a", "b"], 30)
    assert wait_for(
        lambda: value(scrape(port), "goodjob_pool_coroutines", pool="default:2") == 2, 30
    )
    (records / "open").touch()
    assert wait_for(
        lambda: finished(scrape(port), "tests.jobs_for_tests.AsyncGate", "succeeded") == 2, 30
    )


def test_queue_stats_cache_reads_at_most_once_per_max_age() -> None:
    now = [100.0]
    calls = []

    def fetch():
        calls.append(now[0])
        return None if len(calls) == 2 else [QueueStat("q", len(calls), 1.0)]

    cache = CachedQueueStats(fetch, max_age=5.0, clock=lambda: now[0])
    assert cache.get()[0].depth == 1 and cache.ok
    now[0] = 104.9
    assert cache.get()[0].depth == 1 and len(calls) == 1
    now[0] = 105.0
    assert cache.get()[0].depth == 1 and not cache.ok  # database away: last answer kept
    now[0] = 110.0
    assert cache.get()[0].depth == 3 and cache.ok


def test_probe_metrics_route() -> None:
    probe = ProbeServer(0, status=lambda: ProbeStatus(True, True))
    with Loop(probe):
        status, _, body = get(probe.port, "/metrics")
        assert status == 404 and "goodjob-mp[metrics]" in body
        probe.metrics = lambda: ("text/plain; version=0.0.4", b"x 1\n")
        assert get(probe.port, "/metrics") == (200, "text/plain; version=0.0.4", "x 1\n")


def test_metrics_can_be_turned_off(start, db) -> None:
    sup = start("--queues", "*:1", "--probe-port", "0", env={"GOOD_JOB_ENABLE_METRICS": "false"})
    port = probe_port(sup)
    sup.wait_ready()
    status, _, body = get(port, "/metrics")
    assert status == 404 and "GOOD_JOB_ENABLE_METRICS" in body
    assert get(port, "/status")[0] == 200
    assert "multiprocess files" not in sup.output()
