"""Claim only jobs whose class this process can run (issue 15.5).

A supervisor sharing a database with a Rails app, or started without ``--app``, would otherwise
claim jobs it cannot resolve and discard them, destroying another app's work. By default
(``on_unknown_job_class = "skip"``) the claim carries ``job_class = ANY(<registered names>)``,
so such rows are never touched and stay for a process that knows them. Each unknown class is
logged once per process. ``"discard"`` restores the old behaviour: claim everything, discard
what cannot be resolved (with ``UnknownJobClassError``).

Pure policy: the store composes and runs the SQL.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

from psycopg import sql

from goodjob_mp import jobs

if TYPE_CHECKING:
    from goodjob_mp.config import Settings
    from goodjob_mp.features import ClaimCondition
    from goodjob_mp.queues import QueueSelector

log = logging.getLogger("goodjob_mp.worker")

SKIP, DISCARD = "skip", "discard"
MODES = (SKIP, DISCARD)

CONDITION = sql.SQL("job_class = ANY(%(known_classes)s)")


def _params() -> dict[str, list[str]]:
    return {"known_classes": jobs.registered_names()}


def claim_condition(settings: Settings, selector: QueueSelector) -> ClaimCondition | None:
    from goodjob_mp.features import ClaimCondition

    if getattr(settings, "on_unknown_job_class", SKIP) == DISCARD:
        return None
    return ClaimCondition("known_classes", CONDITION, _params)


class UnknownClassLog:
    """Says once per class that its jobs are left alone; tries to resolve each name first (a
    dotted path whose module is importable registers itself and is claimed from then on)."""

    def __init__(self) -> None:
        self._seen: set[str | None] = set()
        self._lock = threading.Lock()

    def saw(self, names: Iterable[str | None], pool: str) -> list[str]:
        """Report classes found waiting that the claim skips; returns those now resolved."""
        resolved = []
        for name in names:
            if name is not None:
                try:
                    jobs.lookup(name)
                except jobs.UnknownJobClassError:
                    pass
                else:
                    resolved.append(name)
                    continue
            with self._lock:
                if name in self._seen:
                    continue
                self._seen.add(name)
            log.warning(
                "%s: leaving jobs of unknown class %r to a process that knows it (this one "
                "cannot resolve it: import its module with --app, or set "
                "on_unknown_job_class=discard to discard such jobs)",
                pool,
                name,
            )
        return resolved
