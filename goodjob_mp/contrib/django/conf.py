"""``settings.GOOD_JOB`` and ``DATABASES`` → goodjob_mp's settings (pure: no Django import).

``GOOD_JOB`` maps goodjob_mp setting names (those of ``goodjob_mp.Settings``: ``queues``,
``max_threads``, ``execution_mode``, ...) to values, as ``goodjob_mp.configure()`` takes them,
plus the Django-only keys of ``DJANGO_DEFAULTS``. Without ``database_url`` the database is the
one of ``DATABASES[database]``. ``GOOD_JOB_*`` environment variables still win, as everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import psycopg

from goodjob_mp.config import ConfigError, Settings

DJANGO_DEFAULTS: dict[str, Any] = {
    # As GoodJob's enqueue_after_transaction_commit: a perform_later inside atomic() is written
    # when the transaction commits (never if it rolls back). False writes it in the transaction
    # itself, on Django's connection (psycopg 3 only).
    "enqueue_after_transaction_commit": True,
    # The DATABASES alias whose database and transactions goodjob_mp follows.
    "database": "default",
    # The module imported from every installed app so its jobs are registered (None: none).
    "autodiscover": "jobs",
}

# DATABASES[...]["OPTIONS"] keys that are Django's, not libpq connection parameters.
_DJANGO_ONLY_OPTIONS = frozenset(
    {"isolation_level", "server_side_binding", "pool", "assume_role", "cursor_factory", "context"}
)
_SETTINGS = frozenset(f.name for f in fields(Settings))


@dataclass(frozen=True)
class DjangoOptions:
    """What the app does with ``GOOD_JOB``: ``goodjob`` goes to ``configure()``."""

    goodjob: dict[str, Any]
    enqueue_after_transaction_commit: bool
    database: str
    autodiscover: str | None
    database_from_django: bool  # the URL was derived from DATABASES (so it follows test DBs)


def is_postgres(database: Mapping[str, Any]) -> bool:
    engine = str(database.get("ENGINE", ""))
    return "postgresql" in engine or "postgis" in engine


def database_url(database: Mapping[str, Any], *, alias: str = "default") -> str:
    """The libpq conninfo of one ``DATABASES`` entry."""
    if not is_postgres(database):
        raise ConfigError(
            f"DATABASES[{alias!r}] uses ENGINE {database.get('ENGINE')!r}; goodjob_mp needs "
            "PostgreSQL (django.db.backends.postgresql): point GOOD_JOB['database'] at a "
            "PostgreSQL alias or set GOOD_JOB['database_url']"
        )
    params: dict[str, Any] = {
        "dbname": database.get("NAME"),
        "user": database.get("USER"),
        "password": database.get("PASSWORD"),
        "host": database.get("HOST"),
        "port": database.get("PORT"),
    }
    for key, value in (database.get("OPTIONS") or {}).items():
        if key not in _DJANGO_ONLY_OPTIONS:
            params[key] = value
    return psycopg.conninfo.make_conninfo(
        **{k: str(v) for k, v in params.items() if v not in (None, "")}
    )


def django_options(
    good_job: Mapping[str, Any] | None, databases: Mapping[str, Mapping[str, Any]]
) -> DjangoOptions:
    """Split ``GOOD_JOB`` into goodjob_mp settings and the app's own; unknown keys fail with
    the list of known ones."""
    good_job = dict(good_job or {})
    unknown = sorted(set(good_job) - _SETTINGS - set(DJANGO_DEFAULTS))
    if unknown:
        raise ConfigError(
            f"settings.GOOD_JOB has unknown key(s) {', '.join(unknown)}; use goodjob_mp setting "
            f"names ({', '.join(sorted(_SETTINGS))}) or {', '.join(DJANGO_DEFAULTS)}"
        )
    own = {k: good_job.pop(k, default) for k, default in DJANGO_DEFAULTS.items()}
    alias = own["database"]
    from_django = good_job.get("database_url") is None
    if from_django:
        if alias not in databases:
            raise ConfigError(
                f"settings.GOOD_JOB['database'] = {alias!r} is not in DATABASES "
                f"({', '.join(databases) or 'none'})"
            )
        good_job["database_url"] = database_url(databases[alias], alias=alias)
    if not isinstance(own["enqueue_after_transaction_commit"], bool):
        raise ConfigError("settings.GOOD_JOB['enqueue_after_transaction_commit']: use True/False")
    return DjangoOptions(
        goodjob=good_job,
        enqueue_after_transaction_commit=own["enqueue_after_transaction_commit"],
        database=alias,
        autodiscover=own["autodiscover"] or None,
        database_from_django=from_django,
    )
