"""Prometheus metrics (the optional ``metrics`` extra: ``pip install goodjob-mp[metrics]``).

The supervisor serves ``/metrics`` on its probe server (``--probe-port``) by itself; see
docs/metrics.md. In any other process (a web app that enqueues, ``start_async()``), call
``install()`` once to count that process's enqueues and performs into ``prometheus_client``'s
default registry, and export it the way the app already exports its metrics.
"""

from __future__ import annotations

from goodjob_mp.metrics.job_metrics import install, installed

__all__ = ["install", "installed"]
