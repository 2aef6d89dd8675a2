"""``migrate --concurrently``: index-only migrations are built with CREATE INDEX CONCURRENTLY on a
live good_jobs (writes go on while they build), end valid, and an INVALID index left by a failed
concurrent build is dropped and built again (with or without --concurrently). Each test has its
own database: it drops indexes that the session's shared database needs."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import uuid

import psycopg
import pytest

from goodjob_mp.cli import supervisor_command
from goodjob_mp.db import migrate as migrations
from tests.test_goodjob_schema import OUR_OWN_INDEXES, goodjob_made_url
from tests.waiting import wait_for

__all__ = ["goodjob_made_url"]  # the fixture: a schema GoodJob's own migrations made

pytestmark = pytest.mark.timeout(180)

# Two index-only migrations, undone below as if this database predated them.
UNDONE = ("0004_dashboard_indexes", "0006_goodjob_migrated")
GOODJOB_MIGRATED_INDEX = "index_good_jobs_on_unfinished_or_errored"
INSERT_JOB = (
    "INSERT INTO good_jobs (id, active_job_id, queue_name, job_class, serialized_params,"
    " scheduled_at, created_at, updated_at)"
    " SELECT gen_random_uuid(), gen_random_uuid(), 'q', 'LiveJob', '{}', now(), now(), now()"
    " FROM generate_series(1, %s)"
)


def index_names(sql: str) -> list[str]:
    return re.findall(r"CREATE (?:UNIQUE )?INDEX IF NOT EXISTS (\w+)", sql)


@pytest.fixture()
def own_url(database_url):
    """A database of its own, migrated, with UNDONE's indexes dropped and versions forgotten,
    and some rows in good_jobs."""
    name = f"goodjob_concurrently_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    info = psycopg.conninfo.conninfo_to_dict(database_url)
    info["dbname"] = name
    url = psycopg.conninfo.make_conninfo(**info)
    with psycopg.connect(url, autocommit=True) as conn:
        migrations.migrate(conn)
        FULL[url] = indexes(conn)
        for version, sql in migrations.available_migrations():
            if version in UNDONE:
                for index in index_names(sql):
                    conn.execute(f"DROP INDEX {index}")
        conn.execute(
            "DELETE FROM goodjob_mp_schema_migrations WHERE version = ANY(%s)", (list(UNDONE),)
        )
        conn.execute(INSERT_JOB, (2000,))
    yield url
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def indexes(conn) -> dict[str, tuple[str, bool]]:
    """name -> (definition, valid) for every index of the good_job tables."""
    rows = conn.execute(
        "SELECT c.relname, pg_get_indexdef(i.indexrelid), i.indisvalid FROM pg_index i"
        " JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid"
        " WHERE t.relname LIKE 'good_job%'"
    ).fetchall()
    return {name: (definition, valid) for name, definition, valid in rows}


FULL: dict[str, dict[str, tuple[str, bool]]] = {}  # own_url -> its indexes after a plain migrate


def expected_indexes(url) -> dict[str, tuple[str, bool]]:
    """What a plain migrate made on ``url`` (own_url) before the fixture undid UNDONE."""
    return FULL[url]


def _waiting_on_a_lock(observer, pid: int) -> bool:
    row = observer.execute(
        "SELECT count(*) FROM pg_locks WHERE pid = %s AND NOT granted", (pid,)
    ).fetchone()
    return row[0] > 0


def _migrate_behind_an_open_write(url, *, concurrently: bool):
    """Start migrate in a thread while another transaction has written to good_jobs and stays
    open; return (writer, thread, result, migrate's pid) once migrate waits for that writer."""
    writer = psycopg.connect(url)
    writer.execute(INSERT_JOB, (1,))  # open transaction holding ROW EXCLUSIVE on good_jobs
    conn = psycopg.connect(url, autocommit=True)
    pid = conn.info.backend_pid
    result: dict[str, object] = {}

    def run() -> None:
        try:
            result["done"] = migrations.migrate(conn, concurrently=concurrently)
        except Exception as exc:  # reported by the test
            result["error"] = exc
        finally:
            conn.close()

    thread = threading.Thread(target=run)
    thread.start()
    with psycopg.connect(url, autocommit=True) as observer:
        assert wait_for(lambda: _waiting_on_a_lock(observer, pid), 60), result
    return writer, thread, result


def _insert_with_lock_timeout(url, timeout: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"SET lock_timeout = '{timeout}'")
        conn.execute(INSERT_JOB, (1,))


def test_concurrently_builds_valid_indexes_while_writes_go_on(own_url):
    writer, thread, result = _migrate_behind_an_open_write(own_url, concurrently=True)
    try:
        # migrate waits for the open writer, but holds nothing that stops a new one.
        _insert_with_lock_timeout(own_url, "30s")
    finally:
        writer.commit()
        writer.close()
        thread.join(120)
    assert result == {"done": list(UNDONE)}
    with psycopg.connect(own_url, autocommit=True) as conn:
        built = indexes(conn)
        assert built == expected_indexes(own_url)  # every index, valid, as a plain migrate
        assert all(valid for _, valid in built.values())
        assert migrations.pending_migrations(conn) == []
        assert conn.execute("SELECT count(*) FROM good_jobs").fetchone()[0] == 2002


def test_without_concurrently_a_waiting_migrate_blocks_writes(own_url):
    # The control: a plain CREATE INDEX queues for SHARE on good_jobs, and every new write
    # queues behind it until the open writer ends (here: refused by lock_timeout).
    writer, thread, result = _migrate_behind_an_open_write(own_url, concurrently=False)
    try:
        with pytest.raises(psycopg.errors.LockNotAvailable):
            _insert_with_lock_timeout(own_url, "500ms")
    finally:
        writer.commit()
        writer.close()
        thread.join(120)
    assert result == {"done": list(UNDONE)}


def _invalid_leftover(url) -> None:
    """What a failed concurrent build leaves: an INVALID index under the migration's name."""
    with psycopg.connect(url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                f"CREATE UNIQUE INDEX CONCURRENTLY {GOODJOB_MIGRATED_INDEX}"
                " ON good_jobs (queue_name)"
            )
        assert indexes(conn)[GOODJOB_MIGRATED_INDEX][1] is False


@pytest.mark.parametrize("concurrently", [True, False])
def test_an_invalid_leftover_is_built_again(own_url, concurrently):
    _invalid_leftover(own_url)
    with psycopg.connect(own_url, autocommit=True) as conn:
        options = {"concurrently": True} if concurrently else {}
        assert migrations.migrate(conn, **options) == list(UNDONE)
        built = indexes(conn)
    assert built[GOODJOB_MIGRATED_INDEX] == expected_indexes(own_url)[GOODJOB_MIGRATED_INDEX]
    assert all(valid for _, valid in built.values())


def test_a_build_that_fails_is_not_recorded_and_the_next_run_rebuilds_it(own_url):
    # The build times out waiting for an open writer: its half-made index is INVALID, and its
    # cleanup times out behind the same writer; the version stays pending.
    writer = psycopg.connect(own_url)
    writer.execute(INSERT_JOB, (1,))
    try:
        with psycopg.connect(own_url, autocommit=True) as conn:
            conn.execute("SET lock_timeout = '300ms'")
            with pytest.raises(psycopg.errors.LockNotAvailable):
                migrations.migrate(conn, concurrently=True)
            assert conn.autocommit is True
            left = indexes(conn)
            assert any(not valid for _, valid in left.values()), left
            assert migrations.pending_migrations(conn) == list(UNDONE)
    finally:
        writer.commit()
        writer.close()
    env = {**os.environ, "GOOD_JOB_DATABASE_URL": own_url}
    done = subprocess.run(
        supervisor_command("migrate", "--concurrently"), env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert f"applied {', '.join(UNDONE)}" in done.stdout
    with psycopg.connect(own_url, autocommit=True) as conn:
        assert indexes(conn) == expected_indexes(own_url)
        assert migrations.pending_migrations(conn) == []


def test_concurrently_on_a_fresh_database_and_with_goodjob_indexes(database_url):
    name = f"goodjob_concurrently_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    info = psycopg.conninfo.conninfo_to_dict(database_url)
    url = psycopg.conninfo.make_conninfo(**{**info, "dbname": name})
    try:
        with psycopg.connect(url) as conn:  # not autocommit: migrate switches it and back
            done = migrations.migrate(conn, concurrently=True, goodjob_indexes=True)
            assert done == [v for v, _ in migrations.available_migrations()]
            assert conn.autocommit is False
            built = indexes(conn)
            assert all(valid for _, valid in built.values())
            ours = {i for _, sql in migrations.available_migrations() for i in index_names(sql)}
            assert ours <= set(built)
            goodjob_set = set(index_names(migrations.goodjob_index_sql()))
            assert goodjob_set <= set(built)
            conn.execute("SELECT 1")  # psycopg opens a transaction
            with pytest.raises(RuntimeError, match="outside a transaction"):
                migrations.migrate(conn, concurrently=True)
    finally:
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_concurrently_on_a_schema_goodjob_made_adds_only_ours_valid(goodjob_made_url):
    # A Rails app adopting goodjob_mp: tables, columns and GoodJob's indexes are there already.
    with psycopg.connect(goodjob_made_url, autocommit=True) as conn:
        before = indexes(conn)
        done = migrations.migrate(conn, concurrently=True)
        assert done == [v for v, _ in migrations.available_migrations()]
        after = indexes(conn)
    assert {n: d for n, d in after.items() if n in before} == before
    assert set(after) - set(before) == OUR_OWN_INDEXES
    assert all(valid for _, valid in after.values())
