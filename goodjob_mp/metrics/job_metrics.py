"""What goodjob_mp counts about jobs, from the instrumentation hooks (``goodjob_mp.events``).

Owns the job metric families and their subscribers. Runs in every process that enqueues or
performs: in the supervisor's children the values land in ``prometheus_client``'s multiprocess
files (the supervisor sets ``PROMETHEUS_MULTIPROC_DIR`` before it forks and sums them), so a
killed child's counts stay on disk and are never counted twice (each pid has its own file).
"""

from __future__ import annotations

import threading
from typing import Any

from goodjob_mp import events

# Seconds; from a no-op job (~1 ms) to a long batch job.
DURATION_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    float("inf"),
)
# perform_finish outcomes counted from that event; discards and interrupts have their own
# events (a poison discard or an interrupt found at claim time never reaches perform_finish).
_FINISH_OUTCOMES = frozenset({"succeeded", "retried", "handled", "failed", "retry_stopped"})

_lock = threading.Lock()
_installed: dict[str, Any] = {}
# (family, *label values) -> its child: ``labels()`` costs more than the write itself.
_children: dict[tuple[str, ...], Any] = {}


def _child(family: str, *labels: str) -> Any:
    key = (family, *labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = _installed[family].labels(*labels)
    return child


def installed() -> bool:
    return bool(_installed)


def install(registry: Any = None) -> None:
    """Subscribe the job metrics to the events of this process (once; later calls do nothing).

    ``registry``: a ``prometheus_client.CollectorRegistry`` (default: the global ``REGISTRY``).
    Raises ``ImportError`` naming the extra when prometheus_client is not installed.
    """
    with _lock:
        if _installed:
            return
        try:
            import prometheus_client as prom
            from prometheus_client import values
        except ImportError as exc:
            raise ImportError(
                "goodjob_mp metrics need prometheus_client: pip install 'goodjob-mp[metrics]'"
            ) from exc
        if _multiprocess_wanted() and not getattr(values.ValueClass, "_multiprocess", False):
            # prometheus_client was imported before PROMETHEUS_MULTIPROC_DIR was set (an --app
            # import): our metrics must still go to the files the supervisor sums.
            values.ValueClass = values.get_value_class()
        reg = prom.REGISTRY if registry is None else registry
        labels = ("queue", "job_class")
        _installed.update(
            enqueued=prom.Counter(
                "goodjob_jobs_enqueued",
                "Jobs enqueued (committed) by this process tree",
                labels,
                registry=reg,
            ),
            finished=prom.Counter(
                "goodjob_jobs_finished",
                "Perform attempts by outcome: succeeded, retried, discarded, interrupted, "
                "failed, handled, retry_stopped",
                (*labels, "outcome"),
                registry=reg,
            ),
            duration=prom.Histogram(
                "goodjob_job_duration_seconds",
                "Time a perform attempt took",
                labels,
                buckets=DURATION_BUCKETS,
                registry=reg,
            ),
            cron=prom.Counter(
                "goodjob_cron_enqueued",
                "Cron runs enqueued by this process tree's cron leader",
                ("cron_key",),
                registry=reg,
            ),
        )
        events.subscribe("enqueue", _on_enqueue)
        events.subscribe("perform_finish", _on_finish)
        events.subscribe("discard", _on_discard)
        events.subscribe("interrupt", _on_interrupt)
        events.subscribe("cron_enqueue", _on_cron)


def _multiprocess_wanted() -> bool:
    import os

    return "PROMETHEUS_MULTIPROC_DIR" in os.environ or "prometheus_multiproc_dir" in os.environ


def _label(value: Any) -> str:
    return "" if value is None else str(value)


def _on_enqueue(*, job_class: Any, queue_name: Any, **_: Any) -> None:
    _child("enqueued", _label(queue_name), _label(job_class)).inc()


def _on_finish(*, job_class: Any, queue_name: Any, duration: float, outcome: str, **_: Any) -> None:
    queue, cls = _label(queue_name), _label(job_class)
    _child("duration", queue, cls).observe(duration)
    if outcome in _FINISH_OUTCOMES:
        _child("finished", queue, cls, outcome).inc()


def _on_discard(*, job_class: Any, queue_name: Any = None, **_: Any) -> None:
    _child("finished", _label(queue_name), _label(job_class), "discarded").inc()


def _on_interrupt(*, job_class: Any, queue_name: Any = None, **_: Any) -> None:
    _child("finished", _label(queue_name), _label(job_class), "interrupted").inc()


def _on_cron(*, cron_key: str, **_: Any) -> None:
    _child("cron", cron_key).inc()
