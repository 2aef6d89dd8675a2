"""The supervisor's ``/metrics``: its children's job metrics summed, and what only it knows.

Owns the multiprocess directory's life (created before the first fork, removed at exit when it
was ours), the registry behind ``/metrics`` and the supervisor-side families: threads busy and
idle per pool, coroutines running, child restarts and the queue stats. Everything runs on the
supervisor's one thread, at scrape time; never starts a thread.

Why the files add up: every process (the supervisor for cron, each child for its jobs) writes
its counters to ``<kind>_<pid>.db`` in the directory through ``prometheus_client``'s mmap
values, and each scrape sums all files. A child killed with SIGKILL leaves its file (its writes
are in the page cache already), so its counts stay; its successor has another pid, so nothing is
counted twice.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from goodjob_mp.metrics.queue_stats import CachedQueueStats, QueueStat

log = logging.getLogger("goodjob_mp.metrics")

ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def available() -> bool:
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return False
    return True


class SupervisorMetrics:
    """Set up before the first fork with ``start()``; ``render()`` per scrape; ``close()``."""

    def __init__(
        self,
        pools: Callable[[], Sequence[dict[str, Any]]],
        queue_stats: Callable[[], list[QueueStat] | None],
    ) -> None:
        self._pools = pools
        self._stats = CachedQueueStats(queue_stats)
        self._owned_dir: str | None = None
        self._pid = os.getpid()
        self.path = ""
        self._registry: Any = None

    def start(self) -> None:
        from goodjob_mp.metrics import job_metrics

        path = os.environ.get(ENV) or os.environ.get(ENV.lower())
        if not path:
            path = self._owned_dir = tempfile.mkdtemp(prefix="goodjob-metrics-")
            os.environ[ENV] = path  # the children inherit it at fork
        os.makedirs(path, exist_ok=True)
        self.path = path
        from prometheus_client import CollectorRegistry
        from prometheus_client.multiprocess import MultiProcessCollector

        # The job metrics' own registry is not what we serve: the files are.
        job_metrics.install(registry=CollectorRegistry())
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=path)
        registry.register(_SupervisorCollector(self._pools, self._stats))
        self._registry = registry
        log.info("metrics: /metrics on the probe server (multiprocess files in %s)", path)

    def render(self) -> tuple[str, bytes]:
        from prometheus_client import generate_latest

        return CONTENT_TYPE, generate_latest(self._registry)

    def close(self) -> None:
        if self._owned_dir is not None and os.getpid() == self._pid:
            shutil.rmtree(self._owned_dir, ignore_errors=True)
            self._owned_dir = None


class _SupervisorCollector:
    def __init__(
        self, pools: Callable[[], Sequence[dict[str, Any]]], stats: CachedQueueStats
    ) -> None:
        self._pools = pools
        self._stats = stats

    def describe(self) -> list[Any]:
        return []  # collect() at scrape time only, never at registration

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        threads = GaugeMetricFamily(
            "goodjob_pool_threads",
            "Executor threads per pool, busy or idle",
            labels=("pool", "state"),
        )
        coroutines = GaugeMetricFamily(
            "goodjob_pool_coroutines",
            "async def jobs running on the pool's event loop",
            labels=("pool",),
        )
        restarts = CounterMetricFamily(
            "goodjob_child_restarts",
            "Worker children started to replace an earlier one (crash, kill, HUP, memory)",
            labels=("pool",),
        )
        for pool in self._pools():
            busy = min(pool["busy"], pool["threads"])
            threads.add_metric((pool["pool"], "busy"), busy)
            threads.add_metric((pool["pool"], "idle"), pool["threads"] - busy)
            coroutines.add_metric((pool["pool"],), pool["coroutines"])
            restarts.add_metric((pool["pool"],), pool["restarts"])
        yield threads
        yield coroutines
        yield restarts
        stats = self._stats.get()
        depth = GaugeMetricFamily(
            "goodjob_queue_depth", "Jobs due and waiting to be claimed", labels=("queue",)
        )
        age = GaugeMetricFamily(
            "goodjob_queue_oldest_job_age_seconds",
            "Seconds since the oldest waiting job was due",
            labels=("queue",),
        )
        for stat in stats:
            depth.add_metric((stat.queue,), stat.depth)
            age.add_metric((stat.queue,), stat.oldest_age)
        yield depth
        yield age
        yield GaugeMetricFamily(
            "goodjob_queue_stats_ok",
            "1 when the last queue-stats query answered, 0 when the database was away",
            value=1 if self._stats.ok else 0,
        )
