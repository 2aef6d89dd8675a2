"""Versioned SQL migrations: apply, check, refuse to run on an old schema.

Owns ``goodjob_mp_schema_migrations`` (which versions ran) and the files in ``migrations/``.
All pending files run in one transaction under an advisory lock, so two deploys that migrate at
once serialise instead of racing; running it again is a no-op. Tables that GoodJob's own Rails
migrations created are adopted: every statement is ``IF NOT EXISTS``.
"""

from __future__ import annotations

import logging
from importlib import resources

import psycopg

log = logging.getLogger("goodjob_mp.migrate")

# hashtext('goodjob_mp:migrate') would do too; a constant keeps it visible in pg_locks.
MIGRATE_LOCK_KEY = 0x6A6F625F6D696772  # "job_migr"

CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS goodjob_mp_schema_migrations (
    version text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
APPLIED_VERSIONS = "SELECT version FROM goodjob_mp_schema_migrations"
RECORD_VERSION = "INSERT INTO goodjob_mp_schema_migrations (version) VALUES (%s)"
TABLE_EXISTS = "SELECT to_regclass(%s) IS NOT NULL"


class SchemaOutdatedError(RuntimeError):
    """The database schema is behind this version of goodjob_mp."""


def schema_missing_error(exc: BaseException) -> SchemaOutdatedError:
    """The error for a statement that found no good_job table: the fix is to migrate."""
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return SchemaOutdatedError(
        f"the good_job tables are missing in this database ({detail}); "
        "run `goodjob-supervisor migrate` first"
    )


def available_migrations() -> list[tuple[str, str]]:
    """(version, sql) for every migration file, in order. Version = the file name's stem."""
    folder = resources.files("goodjob_mp.db") / "migrations"
    files = sorted(f for f in folder.iterdir() if f.name.endswith(".sql"))
    return [(f.name.removesuffix(".sql"), f.read_text()) for f in files]


def goodjob_index_sql() -> str:
    return (resources.files("goodjob_mp.db") / "goodjob_indexes.sql").read_text()


def pending_migrations(conn: psycopg.Connection) -> list[str]:
    exists = conn.execute(TABLE_EXISTS, ("goodjob_mp_schema_migrations",)).fetchone()
    applied = {row[0] for row in conn.execute(APPLIED_VERSIONS)} if exists and exists[0] else set()
    return [version for version, _ in available_migrations() if version not in applied]


def migrate(conn: psycopg.Connection, *, goodjob_indexes: bool = False) -> list[str]:
    """Apply pending migrations in one transaction; return the versions applied."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK_KEY,))
        adopted = conn.execute(TABLE_EXISTS, ("good_jobs",)).fetchone()[0]
        conn.execute(CREATE_MIGRATIONS_TABLE)
        applied = {row[0] for row in conn.execute(APPLIED_VERSIONS)}
        log.debug("migrate: versions already applied: %s", ", ".join(sorted(applied)) or "none")
        done = []
        if adopted and not applied:
            log.info("adopting good_job tables that already exist (created by GoodJob?)")
        for version, sql in available_migrations():
            if version in applied:
                continue
            conn.execute(sql)
            conn.execute(RECORD_VERSION, (version,))
            log.info("applied migration %s", version)
            done.append(version)
        if goodjob_indexes:
            conn.execute(goodjob_index_sql())
            log.info("created GoodJob's full index set (where missing)")
    return done


def ensure_current(conn: psycopg.Connection) -> None:
    """Refuse to work on a schema that is behind, naming the command that fixes it."""
    missing = pending_migrations(conn)
    if missing:
        raise SchemaOutdatedError(
            f"the database schema is behind: {len(missing)} migration(s) not applied "
            f"({', '.join(missing)}). Run `goodjob-supervisor migrate` first."
        )
