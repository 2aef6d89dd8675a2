"""A schema made by GoodJob's own migrations, and ours as GoodJob sees it (issue 15.10).

The GoodJob schema is tests/fixtures/goodjob-reference/schema.sql: pg_dump of the tables that
GoodJob v4.19.2's install migration created (see the README beside it). On it, goodjob_mp runs
jobs before `goodjob-supervisor migrate` has run (with a warning naming what migrate would add);
migrate then adds only goodjob_mp's own indexes, builds no duplicate of GoodJob's, and the result
still satisfies `GoodJob.migrated?`. goodjob_mp's own fresh schema satisfies it too.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from collections import Counter

import psycopg
import pytest

import goodjob_mp as gj
from goodjob_mp.cli import supervisor_command
from goodjob_mp.db import migrate as migrations
from tests import goodjob_ruby as harness
from tests import jobs_for_tests as J
from tests.goodjob_ruby import GoodJobRuby
from tests.reference import REFERENCE_DIR
from tests.supervising import *  # noqa: F403 - fixtures
from tests.waiting import wait_for

goodjob_ruby = harness.goodjob_ruby
goodjob_ruby_source = harness.goodjob_ruby_source

# What GoodJob.migrated? checks (lib/good_job.rb, app/models/good_job/job.rb in v4.19.2): both
# index names on good_jobs.
MIGRATED_INDEXES = (
    "index_good_jobs_for_candidate_dequeue_unlocked",
    "index_good_jobs_on_unfinished_or_errored",
)
# goodjob_mp's own indexes, which GoodJob does not have: all that migrate adds to its schema.
OUR_OWN_INDEXES = {
    "index_good_jobs_on_queue_name_for_dequeue_unlocked",
    "index_good_jobs_on_job_class_for_dequeue_unlocked",
    "index_good_jobs_on_performed_at_running",
    "index_good_job_executions_on_finished_at_brin",
    "index_good_job_batches_on_created_at_and_id",
    "index_good_jobs_on_batch_id_unfinished",
    "index_good_jobs_on_concurrency_key_running",
    "index_good_jobs_on_concurrency_key_unfinished",
    "index_good_jobs_on_concurrency_key_created_at",
}


@pytest.fixture()
def goodjob_made_url(database_url):
    """A new database holding only the tables GoodJob's migrations made (no goodjob_mp trace)."""
    info = psycopg.conninfo.conninfo_to_dict(database_url)
    name = f"goodjob_made_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    info["dbname"] = name
    url = psycopg.conninfo.make_conninfo(**info)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute((REFERENCE_DIR / "schema.sql").read_text())
    yield url
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def index_definitions(conn) -> dict[str, str]:
    """name -> definition without the name, for every index of the good_job tables."""
    rows = conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes"
        " WHERE schemaname = 'public' AND tablename LIKE 'good_job%'"
    ).fetchall()
    return {name: definition.replace(f" {name} ON ", " ON ") for name, definition in rows}


def reference_index_definition(name: str) -> str:
    schema = (REFERENCE_DIR / "schema.sql").read_text()
    match = re.search(rf"^CREATE (UNIQUE )?INDEX {name} ON (.*);$", schema, re.MULTILINE)
    assert match, name
    return f"CREATE {match[1] or ''}INDEX ON {match[2]}"


def migrated_like_goodjob(conn) -> bool:
    """GoodJob.migrated?, in SQL: Active Record's index_name_exists? on good_jobs."""
    found = conn.execute(
        "SELECT count(*) FROM pg_indexes WHERE tablename = 'good_jobs' AND indexname = ANY(%s)",
        (list(MIGRATED_INDEXES),),
    ).fetchone()[0]
    return found == len(MIGRATED_INDEXES)


def good_jobs_reloptions(conn) -> list[str] | None:
    row = conn.execute("SELECT reloptions FROM pg_class WHERE oid = 'good_jobs'::regclass")
    return row.fetchone()[0]


def test_fresh_schema_satisfies_goodjob_migrated(db):
    assert migrated_like_goodjob(db)
    # 0008: room on each page for the claim's and the finish's row versions
    assert good_jobs_reloptions(db) == ["fillfactor=50"]
    ours = index_definitions(db)
    for name in MIGRATED_INDEXES:
        # GoodJob's definition, not just its name (public. is how pg_dump spells the table)
        assert ours[name] == reference_index_definition(name), name


def test_real_goodjob_sees_the_fresh_schema_as_migrated(goodjob_ruby: GoodJobRuby, db):
    assert "migrated=true" in goodjob_ruby.run("migrated.rb").splitlines()


def test_migration_kinds():
    kinds = {v: migrations.only_builds_indexes(sql) for v, sql in migrations.available_migrations()}
    assert kinds.pop("0001_good_job_tables") is False
    assert all(kinds.values()), kinds
    columns, unique = migrations.objects_created(
        dict(migrations.available_migrations())["0001_good_job_tables"]
    )
    assert len(columns["good_jobs"]) == 25 and "lock_type" in columns["good_jobs"]
    assert unique == {
        "index_good_job_settings_on_key",
        "index_good_jobs_on_cron_key_and_cron_at_cond",
    }
    assert migrations.objects_created("UPDATE good_jobs SET error = NULL") is None
    # a storage parameter tunes, like a plain index; any other ALTER TABLE ... SET does not
    assert migrations.only_builds_indexes("ALTER TABLE good_jobs SET (fillfactor = 50);")
    assert not migrations.only_builds_indexes(
        "ALTER TABLE good_jobs SET (autovacuum_enabled = off)"
    )


def test_goodjob_made_schema_is_usable_before_migrate(goodjob_made_url, caplog):
    with psycopg.connect(goodjob_made_url, autocommit=True) as conn:
        assert migrated_like_goodjob(conn)
        migrations._warned.clear()  # once per process: this test wants to see it
        pending = migrations.ensure_current(conn)
        assert pending == [v for v, _ in migrations.available_migrations()]
        assert "all they would still add is indexes" in caplog.text
        # A GoodJob schema that lacks a column (an older GoodJob) is refused, naming the fix.
        conn.execute("ALTER TABLE good_job_executions DROP COLUMN duration")
        with pytest.raises(migrations.SchemaOutdatedError, match="goodjob-supervisor migrate"):
            migrations.ensure_current(conn)


def test_goodjob_made_schema_runs_jobs_then_migrate_adds_only_ours(
    goodjob_made_url, start, records
):
    env = {"GOOD_JOB_DATABASE_URL": goodjob_made_url}
    cli = supervisor_command()
    sup = start("--queues=*:2", env=env)
    sup.wait_ready()
    assert "all they would still add is indexes" in sup.output()
    with psycopg.connect(goodjob_made_url, autocommit=True) as conn:
        with gj.using_connection(conn):
            J.remember.perform_later("before-migrate")
        assert wait_for(lambda: J.lines(records, "remember") == ["before-migrate"], 30), (
            sup.output()
        )
        check = subprocess.run(
            [*cli, "migrate", "--check"], env={**os.environ, **env}, capture_output=True, text=True
        )
        assert check.returncode == 1 and "workers run without them" in check.stderr

        before = index_definitions(conn)
        done = subprocess.run(
            [*cli, "migrate"], env={**os.environ, **env}, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        assert good_jobs_reloptions(conn) == ["fillfactor=50"]
        after = index_definitions(conn)
        # GoodJob's indexes are all kept as they were; only ours were added ...
        assert {n: d for n, d in after.items() if n in before} == before
        assert set(after) - set(before) == OUR_OWN_INDEXES
        # ... and none of ours repeats one of GoodJob's under another name.
        repeated = [d for d, n in Counter(after.values()).items() if n > 1]
        assert repeated == []
        assert migrated_like_goodjob(conn)
        again = subprocess.run(
            [*cli, "migrate", "--check"], env={**os.environ, **env}, capture_output=True, text=True
        )
        assert again.returncode == 0, again.stderr

        with gj.using_connection(conn):
            J.remember.perform_later("after-migrate")
        assert wait_for(lambda: len(J.lines(records, "remember")) == 2, 30), sup.output()
        assert J.lines(records, "remember") == ["before-migrate", "after-migrate"]
        errors = conn.execute("SELECT count(*) FROM good_jobs WHERE error IS NOT NULL")
        assert errors.fetchone()[0] == 0


def test_real_goodjob_sees_the_adopted_schema_as_migrated(goodjob_ruby_source, goodjob_made_url):
    with psycopg.connect(goodjob_made_url, autocommit=True) as conn:
        migrations.migrate(conn)
    source, description = goodjob_ruby_source
    ruby = GoodJobRuby(source, description, goodjob_made_url)
    assert "migrated=true" in ruby.run("migrated.rb").splitlines()
