"""SQL for ``good_job_settings`` pauses: read, pause, unpause, as GoodJob's Setting writes them.

GoodJob's ``Setting.pause`` is ``find_or_initialize_by(key: "pauses")``, append, ``save!``: a new
row gets ``created_at == updated_at``, an existing row gets a new ``updated_at``; ``unpause``
writes nothing when there is nothing to remove. The same happens here, in one transaction that
locks the row, so two pausers (either side) cannot lose each other's change. An unpause that
changed something sends NOTIFY in that transaction, so idle workers of both sides claim at once;
a pause sends one too, so goodjob_mp workers turn their pause filter on at once.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from goodjob_mp.db.job_store import NOTIFY, NOTIFY_CHANNEL, dumps, utcnow
from goodjob_mp.features.pauses import SETTING_KEY, Pauses, with_pause, without_pause

# NOTIFY payload of a pause or unpause that changed the row: workers re-read the setting.
PAUSES_CHANGED_KEY = "pauses"
_READ = "SELECT value FROM good_job_settings WHERE key = %s"
_READ_FOR_UPDATE = "SELECT id, value FROM good_job_settings WHERE key = %s FOR UPDATE"
_INSERT = """
INSERT INTO good_job_settings (id, created_at, updated_at, key, value)
VALUES (%(id)s, %(now)s, %(now)s, %(key)s, %(value)s)
ON CONFLICT (key) DO NOTHING
"""
_UPDATE = "UPDATE good_job_settings SET value = %(value)s, updated_at = %(now)s WHERE id = %(id)s"


def read_pauses(conn: psycopg.Connection) -> Pauses:
    row = conn.execute(_READ, (SETTING_KEY,)).fetchone()
    return Pauses.from_value(row[0] if row else None)


def pause(conn: psycopg.Connection, kind: str, name: str) -> bool:
    """Add ``name`` to the ``kind`` list (queues, job_classes, labels). True if it was not there."""
    while True:
        with conn.transaction():
            row = conn.execute(_READ_FOR_UPDATE, (SETTING_KEY,)).fetchone()
            if row is None:
                params = _params(id=uuid.uuid4(), value=with_pause(None, kind, name))
                if conn.execute(_INSERT, {**params, "key": SETTING_KEY}).rowcount == 1:
                    _notify_pause(conn)
                    return True
                continue  # another process created the row meanwhile: lock it and retry
            setting_id, value = row
            new = with_pause(value, kind, name)
            if new == value:
                return False
            conn.execute(_UPDATE, _params(id=setting_id, value=new))
            _notify_pause(conn)
            return True


def unpause(conn: psycopg.Connection, kind: str, name: str) -> bool:
    """Remove ``name`` from the ``kind`` list and wake the workers. True if it was there."""
    with conn.transaction():
        row = conn.execute(_READ_FOR_UPDATE, (SETTING_KEY,)).fetchone()
        if row is None:
            return False
        setting_id, value = row
        new = without_pause(value, kind, name)
        if new is None:
            return False
        conn.execute(_UPDATE, _params(id=setting_id, value=new))
        conn.execute(NOTIFY, (NOTIFY_CHANNEL, unpause_payload(kind, name)))
        return True


def _notify_pause(conn: psycopg.Connection) -> None:
    conn.execute(NOTIFY, (NOTIFY_CHANNEL, dumps({PAUSES_CHANGED_KEY: "changed"})))


def unpause_payload(kind: str, name: str) -> str:
    """An unpaused queue wakes the processes serving it, as an enqueue would; a class or label
    may be on any queue, so its payload names no queue and wakes every listener (both sides
    treat a payload without ``queue_name`` as "look now")."""
    payload: dict[str, str] = {PAUSES_CHANGED_KEY: "changed"}
    if kind == "queues":
        payload["queue_name"] = name
    return dumps(payload)


def _params(*, id: uuid.UUID, value: dict[str, Any]) -> dict[str, Any]:
    return {"id": id, "now": utcnow(), "value": Jsonb(value, dumps)}
