"""Versioned SQL migrations: apply, check, refuse to run on an old schema.

Owns ``goodjob_mp_schema_migrations`` (which versions ran) and the files in ``migrations/``.
All pending files run in one transaction under an advisory lock, so two deploys that migrate at
once serialise instead of racing; running it again is a no-op. Tables that GoodJob's own Rails
migrations created are adopted: every statement is ``IF NOT EXISTS``, and every index that GoodJob
also has carries GoodJob's name and definition, so ``migrate`` adds only what GoodJob lacks.

``migrate(concurrently=True)`` (``goodjob-supervisor migrate --concurrently``) is for a large live
``good_jobs`` (a Rails app adopting goodjob_mp): each pending migration runs its tables and
columns in a transaction, then builds each of its indexes (and the ``--goodjob-indexes`` set)
with ``CREATE INDEX CONCURRENTLY IF NOT EXISTS``, one at a time outside a transaction, so
enqueues, claims and finishes go on while they build. Each version is recorded once all its
statements are done, and every statement is ``IF NOT EXISTS``, so an interrupted run resumes
where it stopped. Either way, an INVALID index of the same name (left by a failed or cancelled
concurrent build, which ``IF NOT EXISTS`` would otherwise skip forever) is dropped and built
again.

Workers refuse a schema that lacks a table, column or unique index they need. A pending migration
that only builds plain indexes or sets a fillfactor does not stop them (it makes queries faster,
not possible), nor does a pending one whose tables, columns and unique indexes are all there
already. So a schema that GoodJob's own migrations made is usable at once, before
``goodjob-supervisor migrate`` has run: a warning names what migrate would still add.
"""

from __future__ import annotations

import logging
import re
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
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [(f.name.removesuffix(".sql"), f.read_text()) for f in files]


def goodjob_index_sql() -> str:
    return (resources.files("goodjob_mp.db") / "goodjob_indexes.sql").read_text()


def pending_migrations(conn: psycopg.Connection) -> list[str]:
    exists = conn.execute(TABLE_EXISTS, ("goodjob_mp_schema_migrations",)).fetchone()
    applied = {row[0] for row in conn.execute(APPLIED_VERSIONS)} if exists and exists[0] else set()
    return [version for version, _ in available_migrations() if version not in applied]


def migrate(
    conn: psycopg.Connection, *, goodjob_indexes: bool = False, concurrently: bool = False
) -> list[str]:
    """Apply pending migrations in one transaction; return the versions applied.

    ``concurrently``: build the migrations' indexes with ``CREATE INDEX CONCURRENTLY`` instead,
    outside a transaction (see the module docstring); ``conn`` must then not be inside a
    transaction."""
    if concurrently:
        return _migrate_concurrently(conn, goodjob_indexes)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK_KEY,))
        applied = _start(conn)
        done = []
        for version, sql in available_migrations():
            if version in applied:
                continue
            _apply(conn, version, sql)
            done.append(version)
        if goodjob_indexes:
            _drop_invalid(conn, goodjob_index_sql(), concurrently=False)
            conn.execute(goodjob_index_sql())
            log.info("created GoodJob's full index set (where missing)")
    return done


def _start(conn: psycopg.Connection) -> set[str]:
    """The migrations table (made if missing) and the versions it records."""
    found = conn.execute(TABLE_EXISTS, ("good_jobs",)).fetchone()
    adopted = bool(found and found[0])
    conn.execute(CREATE_MIGRATIONS_TABLE)
    applied = {row[0] for row in conn.execute(APPLIED_VERSIONS)}
    log.debug("migrate: versions already applied: %s", ", ".join(sorted(applied)) or "none")
    if adopted and not applied:
        log.info("adopting good_job tables that already exist (created by GoodJob?)")
    return applied


def _apply(conn: psycopg.Connection, version: str, sql: str) -> None:
    """One migration and its record, in the caller's transaction."""
    _drop_invalid(conn, sql, concurrently=False)
    conn.execute(sql)
    conn.execute(RECORD_VERSION, (version,))
    log.info("applied migration %s", version)


def _migrate_concurrently(conn: psycopg.Connection, goodjob_indexes: bool) -> list[str]:
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise RuntimeError("migrate(concurrently=True) needs a connection outside a transaction")
    autocommit = conn.autocommit
    conn.autocommit = True
    # A session lock: the concurrent builds cannot run inside the transaction an xact lock needs.
    conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATE_LOCK_KEY,))
    try:
        with conn.transaction():
            applied = _start(conn)
        done = []
        for version, sql in available_migrations():
            if version in applied:
                continue
            # Tables and columns first, in a transaction; then each index on its own.
            others = [st for st in statements(sql) if not _INDEX.match(st)]
            if others:
                with conn.transaction():
                    for statement in others:
                        conn.execute(statement)
            _build_concurrently(conn, sql)
            conn.execute(RECORD_VERSION, (version,))
            log.info("applied migration %s (indexes built concurrently)", version)
            done.append(version)
        if goodjob_indexes:
            _build_concurrently(conn, goodjob_index_sql())
            log.info("created GoodJob's full index set (where missing, concurrently)")
        return done
    finally:
        try:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATE_LOCK_KEY,))
            conn.autocommit = autocommit
        except psycopg.Error:
            pass  # a broken connection: the session, and its lock, end with it


# --- indexes built concurrently, and INVALID leftovers ------------------------------------------

# Every index a migration builds: group 1 is "UNIQUE " or None, group 2 the index's name.
_INDEX = re.compile(r"CREATE\s+(UNIQUE\s+)?INDEX\s+IF\s+NOT\s+EXISTS\s+(\w+)\s+ON\s", re.IGNORECASE)
# Only an index that exists and is not valid: indisvalid false (a concurrent build that failed,
# was cancelled or is still running elsewhere; the migrate lock rules out a build of ours).
INVALID_INDEX = "SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)"


def _indexes(sql: str) -> list[tuple[str, str]]:
    """(statement, index name) for every ``CREATE [UNIQUE] INDEX IF NOT EXISTS``."""
    return [(st, m[2]) for st in statements(sql) if (m := _INDEX.match(st))]


def _is_invalid(conn: psycopg.Connection, name: str) -> bool:
    row = conn.execute(INVALID_INDEX, (name,)).fetchone()
    return bool(row and row[0])


def _drop_invalid(conn: psycopg.Connection, sql: str, *, concurrently: bool) -> None:
    for _, name in _indexes(sql):
        if _is_invalid(conn, name):
            log.warning("index %s is INVALID (a failed concurrent build?): building it again", name)
            how = "CONCURRENTLY " if concurrently else ""
            conn.execute(f"DROP INDEX {how}IF EXISTS {name}")


def _build_concurrently(conn: psycopg.Connection, sql: str) -> None:
    """Each index of ``sql`` with ``CREATE INDEX CONCURRENTLY IF NOT EXISTS`` (autocommit).
    A build that fails leaves an INVALID index: it is dropped at once when possible (else by
    the next run), and the error is raised."""
    for statement, name in _indexes(sql):
        _drop_invalid(conn, statement, concurrently=True)
        concurrent = re.sub(r"INDEX\s+IF", "INDEX CONCURRENTLY IF", statement, count=1)
        try:
            conn.execute(concurrent)
        except psycopg.Error:
            try:
                if not conn.closed and _is_invalid(conn, name):
                    conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            except psycopg.Error as cleanup_error:
                log.warning("could not drop the INVALID index %s: %s", name, cleanup_error)
            raise


# --- what a pending migration means for a worker -------------------------------------------------

_COMMENT = re.compile(r"--[^\n]*")
_CREATE_TABLE = re.compile(
    r"CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\s+(\w+)\s*\((.*)\)$", re.IGNORECASE | re.DOTALL
)
_ALTER_TABLE = re.compile(r"ALTER\s+TABLE\s+(\w+)\s+ADD\s+COLUMN\s", re.IGNORECASE)
# A storage parameter (0008's fillfactor): like a plain index, it changes speed, not what works.
_STORAGE = re.compile(r"ALTER\s+TABLE\s+\w+\s+SET\s*\(\s*fillfactor\s*=\s*\d+\s*\)$", re.IGNORECASE)
_ADD_COLUMN = re.compile(r"ADD\s+COLUMN\s+IF\s+NOT\s+EXISTS\s+(\w+)", re.IGNORECASE)

EXISTING_COLUMNS = """
SELECT table_name, column_name FROM information_schema.columns
WHERE table_schema = current_schema() AND table_name = ANY(%s)
"""
EXISTING_INDEXES = """
SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND indexname = ANY(%s)
"""


def statements(sql: str) -> list[str]:
    """A migration file's statements, comments dropped (our files quote no ``--`` or ``;``)."""
    return [part.strip() for part in _COMMENT.sub("", sql).split(";") if part.strip()]


def _tunes(statement: str) -> bool:
    index = _INDEX.match(statement)
    return bool((index and not index[1]) or _STORAGE.match(statement))


def only_builds_indexes(sql: str) -> bool:
    """True for a migration made only of plain (not unique) ``CREATE INDEX`` and storage
    parameters (``ALTER TABLE ... SET (fillfactor = N)``): it speeds queries up, and a schema
    without it works."""
    return all(_tunes(s) for s in statements(sql))


def objects_created(sql: str) -> tuple[dict[str, set[str]], set[str]] | None:
    """The columns (by table) and unique indexes a migration creates, or None when it does
    anything else (then only having run it says that its effect is in place)."""
    columns: dict[str, set[str]] = {}
    unique: set[str] = set()
    for statement in statements(sql):
        if table := _CREATE_TABLE.match(statement):
            # one column per line, as our files write them
            names = [line.split()[0] for line in table[2].splitlines() if line.strip()]
            columns.setdefault(table[1], set()).update(names)
        elif alter := _ALTER_TABLE.match(statement):
            columns.setdefault(alter[1], set()).update(_ADD_COLUMN.findall(statement))
        elif (index := _INDEX.match(statement)) and index[1]:
            unique.add(index[2])
        elif not _tunes(statement):
            return None
    return columns, unique


def already_in_place(conn: psycopg.Connection, sql: str) -> bool:
    """Whether every table, column and unique index the migration creates exists (e.g. made by
    GoodJob's own Rails migrations), so a worker can run without it having been recorded."""
    created = objects_created(sql)
    if created is None:
        return False
    columns, unique = created
    found: dict[str, set[str]] = {}
    for table, column in conn.execute(EXISTING_COLUMNS, (list(columns),)):
        found.setdefault(table, set()).add(column)
    if any(not wanted <= found.get(table, set()) for table, wanted in columns.items()):
        return False
    indexes = {row[0] for row in conn.execute(EXISTING_INDEXES, (list(unique),))}
    return unique <= indexes


def blocking_migrations(conn: psycopg.Connection, pending: list[str]) -> list[str]:
    """The pending migrations without which goodjob_mp cannot work on this schema."""
    sql_of = dict(available_migrations())
    return [
        version
        for version in pending
        if not (only_builds_indexes(sql_of[version]) or already_in_place(conn, sql_of[version]))
    ]


_warned: set[tuple[str, ...]] = set()  # inherited across a fork: children do not repeat it


def ensure_current(conn: psycopg.Connection) -> list[str]:
    """Refuse to work on a schema that lacks what goodjob_mp needs, naming the command that fixes
    it. Returns the pending migrations it can work without (warned about once per process)."""
    missing = pending_migrations(conn)
    if not missing:
        return []
    if blocking_migrations(conn, missing):
        raise SchemaOutdatedError(
            f"the database schema is behind: {len(missing)} migration(s) not applied "
            f"({', '.join(missing)}). Run `goodjob-supervisor migrate` first."
        )
    if tuple(missing) not in _warned:
        _warned.add(tuple(missing))
        log.warning(
            "the good_job tables have every column goodjob_mp needs (made by GoodJob's own "
            "migrations?), but migration(s) %s are not applied; all they would still add is "
            "indexes and storage settings (claims and the dashboard may be slower): "
            "run `goodjob-supervisor migrate`",
            ", ".join(missing),
        )
    return missing
