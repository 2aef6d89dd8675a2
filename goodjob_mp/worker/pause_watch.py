"""Which claim statement a worker runs: with the pause filter only while something is paused.

The filter (the claim condition ``features.pauses.PAUSED``) reads the ``pauses`` row inside
the claim, so while it is on, every pause and unpause takes effect at the next claim. It costs
each claim about 0.1 ms of planning and execution, so while nothing is paused the worker runs
the plain statement. It learns that something was paused:

- at once, from the NOTIFY that ``gj.pause`` / ``goodjob-supervisor pause`` send
  (payload ``{"pauses": "changed"}``);
- at its next poll, when a Rails GoodJob paused (``GoodJob::Setting.pause`` sends no NOTIFY).

Jobs claimed before a pause and still waiting in the worker's buffer are handed back when the
worker learns of it (``paused_among``): a pause stops every job that has not started.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import psycopg

from goodjob_mp.db import settings_store
from goodjob_mp.features import pauses as pause_policy

# Of these claimed jobs, the ones a claim would now skip (the claim's own condition, negated).
PAUSED_AMONG = (
    "SELECT id FROM good_jobs WHERE id = ANY(%(ids)s) AND NOT " + pause_policy.CLAIM_CONDITION
)


class PauseWatch:
    def __init__(self) -> None:
        # Until the first read, assume pauses: never claim a paused job at start-up.
        self.active = True
        self.stale = True

    def refresh(self, conn: psycopg.Connection) -> None:
        """Re-read the setting (on every poll, and before a claim after a pause NOTIFY)."""
        self.stale = False  # before reading: a NOTIFY that lands during the read counts
        try:
            self.active = bool(settings_store.read_pauses(conn))
        except psycopg.OperationalError:
            self.active = self.stale = True  # cannot tell: filter, and read again next time

    @staticmethod
    def paused_among(conn: psycopg.Connection, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        """The ids whose queue, class or label is paused now (one indexed statement)."""
        if not ids:
            return set()
        return {row[0] for row in conn.execute(PAUSED_AMONG, {"ids": list(ids)})}

    def on_notify(self, data: Any) -> bool:
        """True when the payload announces a pause change (then refresh before the next claim)."""
        if isinstance(data, dict) and settings_store.PAUSES_CHANGED_KEY in data:
            self.stale = True
            return True
        return False
