"""``perform_later`` inside ``transaction.atomic()``: a write router (``goodjob_mp.enqueue``).

Outside an atomic block a job is written at once on goodjob_mp's own connections, as anywhere.
Inside one, by ``GOOD_JOB['enqueue_after_transaction_commit']``:

- True (the default, GoodJob's ``enqueue_after_transaction_commit``): the row is built now (so a
  bad argument fails at the call, and the handle has its id) and written by
  ``transaction.on_commit``; a rollback drops it.
- False: the row is written now on Django's own connection, inside its transaction (and its
  savepoint), so it commits or rolls back with the rest. Needs Django's psycopg 3 backend.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, transaction

Write = Callable[[psycopg.Connection | None], None]


class TransactionRouter:
    def __init__(self, alias: str, after_commit: bool) -> None:
        self.alias = alias
        self.after_commit = after_commit

    def __call__(self, write: Write) -> bool:
        django_conn = connections[self.alias]
        if not django_conn.in_atomic_block:
            return False
        if self.after_commit:
            transaction.on_commit(lambda: write(None), using=self.alias)
            return True
        write(psycopg_connection(self.alias))
        return True


def psycopg_connection(alias: str) -> psycopg.Connection:
    """The psycopg 3 connection under Django's ``connections[alias]``, with its transaction
    begun (a bulk write's ``conn.transaction()`` on an idle connection would BEGIN and COMMIT on
    its own, ending Django's transaction early)."""
    django_conn = connections[alias]
    django_conn.ensure_connection()
    raw = django_conn.connection
    if not isinstance(raw, psycopg.Connection):
        raise ImproperlyConfigured(
            "GOOD_JOB['enqueue_after_transaction_commit'] = False writes jobs on Django's "
            f"connection, which needs psycopg 3 (this one is {type(raw).__module__}); install "
            "'psycopg' or leave enqueue_after_transaction_commit on"
        )
    if raw.info.transaction_status == psycopg.pq.TransactionStatus.IDLE and not raw.autocommit:
        raw.execute("SELECT 1")
    return raw
