"""Reading json/jsonb columns so that one unreadable value cannot stop a worker.

psycopg decodes a jsonb value while it builds the row, inside ``fetchall()``. Python's decoder
raises ``RecursionError`` on a value nested deeper than its recursion limit (jsonb itself stores
thousands of levels, and any writer, such as a foreign app or hand-written SQL, may put one
there). Raised there, it fails the whole claim statement after the rows were already locked, and
the worker's fetcher dies with it. Every connection goodjob_mp opens decodes with ``loads``
below instead: a value too deep to decode becomes an ``UnreadableJSON`` that the caller
recognises (the worker discards such a job as unreadable), and the other rows read normally.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.types.json import set_json_loads


class UnreadableJSON:
    """Stands in for a json/jsonb value that could not be decoded; ``reason`` says why."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __repr__(self) -> str:
        return f"<unreadable JSON: {self.reason}>"


# The C scanner behind json.loads, called directly: json.loads adds two regex matches (leading
# and trailing whitespace) and a Python frame or two, which cost more than scanning a job's
# serialized_params itself (~2 us of ~4 per claimed job). Postgres prints json values with no
# surrounding whitespace; anything else (whitespace, an error) goes through json.loads, so
# values and errors are exactly json.loads's.
_Scan = Callable[[str, int], tuple[Any, int]]
_scan_once: _Scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def loads(data: str | bytes) -> Any:
    """``json.loads``, except that a value nested too deeply to decode is an ``UnreadableJSON``
    rather than a ``RecursionError`` escaping from the middle of a fetch."""
    try:
        try:
            text = data if isinstance(data, str) else bytes(data).decode()
            value, end = _scan_once(text, 0)
            if end == len(text):
                return value
        except (ValueError, StopIteration):  # JSONDecodeError, UnicodeDecodeError included
            pass
        return json.loads(data)
    except RecursionError as exc:
        return UnreadableJSON(
            f"it is nested too deeply for Python's JSON decoder ({len(data)} bytes; "
            f"RecursionError: {exc})"
        )


def use_safe_loads(conn: psycopg.Connection[Any]) -> None:
    """Decode this connection's json and jsonb values with ``loads``."""
    set_json_loads(loads, conn)
