"""Pauses: which jobs are not to be claimed, in GoodJob v4's format (pure policy, no I/O).

GoodJob keeps them in one ``good_job_settings`` row, key ``pauses``, value
``{"queues": [...], "job_classes": [...], "labels": [...]}``. A job is paused when its queue or
its class is listed, or when one of its labels is. ``GoodJob::Setting.pause`` appends a name once
(as a string) and ``unpause`` removes it; this module does the same to the value, so a row written
here reads the same in Rails and the reverse.

``CLAIM_CONDITION`` is what the claim statement adds. It reads the row inside the statement (an
InitPlan: one index lookup per claimed *batch*, not per job), so a pause set by any process on
any side takes effect at the very next claim, without a cache to refresh.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from psycopg import sql

from goodjob_mp.features import ClaimCondition

SETTING_KEY = "pauses"
KINDS = ("queues", "job_classes", "labels")
# The CLI's and the API's words for each kind, as GoodJob's `pause(queue:, job_class:, label:)`.
KIND_BY_OPTION = {"queue": "queues", "job_class": "job_classes", "label": "labels"}


class PauseError(ValueError):
    """A pause or unpause call that names nothing, or more than one thing."""


@dataclass(frozen=True)
class Pauses:
    queues: tuple[str, ...] = ()
    job_classes: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()

    @classmethod
    def from_value(cls, value: Any) -> Pauses:
        """Read a stored value; missing or malformed parts count as empty (as GoodJob reads)."""
        if not isinstance(value, Mapping):
            return cls()
        return cls(*(tuple(_names(value.get(kind))) for kind in KINDS))

    def __bool__(self) -> bool:
        return bool(self.queues or self.job_classes or self.labels)

    def as_dict(self) -> dict[str, list[str]]:
        return {kind: list(getattr(self, kind)) for kind in KINDS}

    def is_paused(
        self, queue_name: str | None, job_class: str | None, labels: Iterable[str] | None = ()
    ) -> bool:
        return (
            queue_name in self.queues
            or job_class in self.job_classes
            or any(label in self.labels for label in labels or ())
        )


def _names(items: Any) -> list[str]:
    if not isinstance(items, list):
        return []
    return [str(item) for item in items]


def pause_target(
    queue: str | None = None, job_class: str | None = None, label: str | None = None
) -> tuple[str, str]:
    """(kind, name) for exactly one of the three, as GoodJob insists; else PauseError."""
    given = [
        (KIND_BY_OPTION[option], str(name))
        for option, name in (("queue", queue), ("job_class", job_class), ("label", label))
        if name is not None and str(name).strip() != ""
    ]
    if len(given) != 1:
        raise PauseError(
            "name exactly one of queue, job_class or label "
            "(e.g. --queue=mail, --job-class=SendInvoice or --label=billing)"
        )
    return given[0]


def with_pause(value: Any, kind: str, name: str) -> dict[str, Any]:
    """The stored value after ``GoodJob::Setting.pause(kind => name)``: the name appended once.
    Other keys in the value are kept, as Rails keeps them."""
    new = dict(value) if isinstance(value, Mapping) else {k: [] for k in KINDS}
    items = list(new.get(kind) or []) if isinstance(new.get(kind), list) else []
    if name not in items:
        items.append(name)
    new[kind] = items
    return new


def without_pause(value: Any, kind: str, name: str) -> dict[str, Any] | None:
    """The stored value after ``unpause``, or None when there was nothing to remove (GoodJob then
    writes nothing)."""
    if not isinstance(value, Mapping):
        return None
    items = value.get(kind)
    if not isinstance(items, list) or name not in items:
        return None
    new = dict(value)
    new[kind] = [item for item in items if item != name]
    return new


# Each list is read once per statement (an InitPlan on the unique key index), and only if it is an
# array: a hand-edited row with another shape pauses nothing rather than something unexpected.
# jsonb's ``?`` tests whether the array holds a string, ``?|`` whether it holds any of the labels.
# A NULL queue, class or labels, or no row at all, gives NULL: COALESCE makes that "not paused".
def _paused(kind: str) -> str:
    return (
        f"(SELECT CASE WHEN jsonb_typeof(s.value->'{kind}') = 'array' THEN s.value->'{kind}' END"
        f" FROM good_job_settings s WHERE s.key = '{SETTING_KEY}')"
    )


CLAIM_CONDITION = (
    f"NOT COALESCE({_paused('queues')} ? queue_name"
    f" OR {_paused('job_classes')} ? job_class"
    f" OR {_paused('labels')} ?| labels, false)"
)


# The claim seam's form (goodjob_mp.features.ClaimCondition): the worker adds it to its claim
# statement only while something is paused (worker/pause_watch.py).
PAUSED = ClaimCondition("pauses", sql.SQL(CLAIM_CONDITION))
