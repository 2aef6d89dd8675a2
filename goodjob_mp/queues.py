"""Queue-pool strings (GoodJob's ``--queues`` syntax): parse them into pool specs.

Owns: the grammar below, its canonical text form, and which queue names a pool serves.
Never: touches the database, the environment, processes or threads; it is pure, so the
supervisor, the config layer and the worker can all call it freely.

Grammar (whitespace around every part is ignored)::

    pools     := pool (";" pool)*
    pool      := selector [":" threads]
    threads   := a whole number 1..1000   (omitted: the --max-threads default)
    selector  := "*"                      all queues
               | ["+"] names             these queues; "+" = serve them strictly in this order
               | "-" names                all queues except these
    names     := name ("," name)*         no duplicates within one pool
    name      := text without whitespace or any of ; : , * and not starting with + or -

Examples: ``mail:2;billing:1;*``  ``+high,low:3``  ``-slow``  ``*:5;*:5``.
The same queue may appear in several pools (GoodJob allows it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "MAX_POOL_THREADS",
    "PoolSpec",
    "QueueSelector",
    "QueueStringError",
    "parse_pools",
    "parse_queue_selector",
]

# A sanity bound, not a tuning limit: each thread holds a database connection, so a
# count like 5000 is almost always a typo (an extra 0) that would exhaust Postgres.
MAX_POOL_THREADS = 1000

_INTEGER = re.compile(r"[+-]?[0-9]+")
_FORBIDDEN_IN_NAME = ";:*"


class QueueStringError(ValueError):
    """A queue-pool string or selector that cannot be parsed; the message names the part and why."""


@dataclass(frozen=True)
class QueueSelector:
    """Which queues one pool serves."""

    kind: Literal["all", "include", "exclude"]
    names: tuple[str, ...]
    ordered: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("all", "include", "exclude"):
            raise ValueError(
                f"QueueSelector kind {self.kind!r} is unknown; use 'all', 'include' or 'exclude'"
            )
        if not isinstance(self.names, tuple):
            raise ValueError(f"QueueSelector names must be a tuple, got {self.names!r}")
        if (self.kind == "all") != (not self.names):
            raise ValueError(
                f"QueueSelector kind {self.kind!r} with names {self.names!r}: "
                "'all' takes no names, 'include' and 'exclude' need at least one"
            )
        if self.ordered and self.kind != "include":
            raise ValueError(f"QueueSelector kind {self.kind!r} cannot be ordered; only 'include'")

    def matches(self, queue_name: str) -> bool:
        if self.kind == "all":
            return True
        if self.kind == "include":
            return queue_name in self.names
        return queue_name not in self.names

    def __str__(self) -> str:
        if self.kind == "all":
            return "*"
        prefix = "+" if self.ordered else "-" if self.kind == "exclude" else ""
        return prefix + ",".join(self.names)


@dataclass(frozen=True)
class PoolSpec:
    """One pool of the queue-pool string: which queues, and how many threads (None = default)."""

    selector: QueueSelector
    threads: int | None
    text: str

    def thread_count(self, default: int) -> int:
        if self.threads is not None:
            return self.threads
        if isinstance(default, bool) or not isinstance(default, int) or default < 1:
            raise ValueError(
                f"default thread count {default!r} for pool {self.text!r} is invalid; "
                "use a whole number >= 1 (--max-threads)"
            )
        return default


def parse_queue_selector(text: str) -> QueueSelector:
    """Parse one pool's queue selection (no ``:N``), e.g. ``"+high,low"`` or ``"-slow"``."""
    try:
        return _selector(text)
    except _Problem as problem:
        raise QueueStringError(f"invalid queue selector {text!r}: it {problem}") from None


def parse_pools(text: str, *, setting: str = "--queues") -> list[PoolSpec]:
    """Parse a whole queue-pool string into one PoolSpec per ``;``-separated pool.

    ``setting`` names where the string came from (e.g. ``GOOD_JOB_QUEUES``) so that the
    error message points the person at the place to fix it.
    """

    def fail(reason: str) -> QueueStringError:
        return QueueStringError(f"invalid {setting} {text!r}: {reason}")

    if not text.strip():
        raise fail("it is empty; give at least one pool, e.g. '*' for all queues")
    raw_pools = text.split(";")
    pools = []
    for number, raw in enumerate(raw_pools, start=1):
        pool = raw.strip()
        if not pool:
            if number == 1:
                where = "a stray ';' at the start"
            elif number == len(raw_pools):
                where = "a stray ';' at the end"
            else:
                where = "two ';' in a row"
            raise fail(f"pool {number} is empty ({where}); remove the extra ';'")
        try:
            pools.append(_pool(pool))
        except _Problem as problem:
            raise fail(f"pool {number} {pool!r} {problem}") from None
    return pools


class _Problem(Exception):
    """Why one pool or selector is wrong; the public functions add where it is."""


def _pool(pool: str) -> PoolSpec:
    selector_text, colon, count_text = pool.partition(":")
    if ":" in count_text:
        raise _Problem("has more than one ':'; give one thread count per pool, e.g. 'mail:2'")
    if not selector_text.strip():
        raise _Problem("names no queues before ':'; write e.g. '*:2' for all queues")
    selector = _selector(selector_text)
    threads = _threads(count_text.strip()) if colon else None
    text = str(selector) if threads is None else f"{selector}:{threads}"
    return PoolSpec(selector=selector, threads=threads, text=text)


def _threads(count: str) -> int:
    if not count:
        raise _Problem("has ':' but no thread count after it; write e.g. 'mail:2' or drop the ':'")
    if not _INTEGER.fullmatch(count):
        raise _Problem(
            f"has thread count {count!r}, which is not a whole number; use a whole number >= 1"
        )
    threads = int(count)
    if threads < 1:
        raise _Problem(f"has thread count {threads}; use a whole number >= 1")
    if threads > MAX_POOL_THREADS:
        raise _Problem(
            f"has thread count {threads}, above the sanity bound of {MAX_POOL_THREADS} threads "
            "per pool (each thread holds a database connection; an extra 0 is the usual cause); "
            f"use 1..{MAX_POOL_THREADS}, or split the queues over more pools"
        )
    return threads


def _selector(text: str) -> QueueSelector:
    body = text.strip()
    if not body:
        raise _Problem("is empty; write '*' for all queues or name the queues, e.g. 'mail,sms'")
    prefix = body[0] if body[0] in "+-" else ""
    body = body[len(prefix) :].strip()
    if prefix and body[:1] in ("+", "-"):
        if body[0] == prefix:
            raise _Problem(f"repeats {prefix!r}; write it once before the first queue name")
        raise _Problem(
            "combines '+' and '-'; use '+' (these queues, in order) or '-' (all queues except "
            "these), not both"
        )
    if prefix and not body:
        example = "'+high,low'" if prefix == "+" else "'-slow'"
        raise _Problem(f"has {prefix!r} with no queue names after it; write e.g. {example}")

    names = [name.strip() for name in body.split(",")]
    if "*" in names:
        if prefix == "+":
            raise _Problem(
                "puts '+' before '*'; '*' (all queues) has no order, so write '*' alone "
                "or list the queues to order, e.g. '+high,low'"
            )
        if prefix == "-":
            raise _Problem(
                "puts '-' before '*'; excluding every queue leaves nothing to run, so write "
                "'*' alone or list the queues to skip, e.g. '-slow'"
            )
        if len(names) > 1:
            raise _Problem(
                "mixes '*' with queue names; '*' already means all queues, so write '*' alone"
            )
        return QueueSelector(kind="all", names=())

    seen: set[str] = set()
    for position, name in enumerate(names, start=1):
        _check_name(name, position, len(names))
        if name in seen:
            raise _Problem(f"lists queue {name!r} twice; name each queue once per pool")
        seen.add(name)
    if prefix == "-":
        return QueueSelector(kind="exclude", names=tuple(names))
    return QueueSelector(kind="include", names=tuple(names), ordered=prefix == "+")


def _check_name(name: str, position: int, count: int) -> None:
    if not name:
        where = "a trailing ','" if position == count else "two ',' in a row"
        if position == 1:
            where = "a leading ','"
        raise _Problem(
            f"has an empty queue name at position {position} ({where}); remove the extra ','"
        )
    if any(char.isspace() for char in name):
        raise _Problem(
            f"has queue name {name!r} with whitespace inside; queue names cannot contain "
            "whitespace (separate queues with ',')"
        )
    for char in _FORBIDDEN_IN_NAME:
        if char in name:
            raise _Problem(f"has queue name {name!r} containing {char!r}; {_SEPARATOR_USE[char]}")
    if name[0] in "+-":
        raise _Problem(
            f"has {name[0]!r} in front of queue name {position} {name!r}; '+' and '-' apply to "
            "the whole pool and go once, before the first name"
        )


_SEPARATOR_USE = {
    ";": "';' separates pools, so it cannot be part of a queue name",
    ":": "':' separates a pool's thread count, so it cannot be part of a queue name",
    "*": "wildcards are not supported; '*' alone means all queues",
}
