"""Rows written by the real GoodJob (tests/fixtures/goodjob-reference) are performed
correctly, and a schema created by GoodJob's own migrations is adopted by ``migrate``."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import uuid

import psycopg
import pytest

import goodjob_mp as gj
from goodjob_mp.cli import supervisor_command
from tests.reference import REFERENCE_DIR

COLUMNS = [
    "id",
    "queue_name",
    "priority",
    "serialized_params",
    "scheduled_at",
    "created_at",
    "updated_at",
    "active_job_id",
    "job_class",
    "labels",
]

calls: list[tuple[str, tuple, dict]] = []


class KwargsJob(gj.Job):
    job_class_name = "KwargsJob"

    def perform(self, *args, **kwargs):
        calls.append(("KwargsJob", args, kwargs))


class ArgsJob(gj.Job):
    job_class_name = "ArgsJob"

    def perform(self, *args, **kwargs):
        calls.append(("ArgsJob", args, kwargs))


class SerializedArgsJob(gj.Job):
    job_class_name = "SerializedArgsJob"

    def perform(self, *args, **kwargs):
        calls.append(("SerializedArgsJob", args, kwargs))


def reference_rows() -> list[dict]:
    text = (REFERENCE_DIR / "good_jobs.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


def insert_reference(db, row: dict) -> None:
    values = [row[c] for c in COLUMNS]
    values[3] = json.dumps(values[3])
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    values[4] = now  # due now
    db.execute(
        f"INSERT INTO good_jobs ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))})",
        values,
    )


def test_goodjob_rows_are_performed_with_the_right_arguments(db):
    calls.clear()
    wanted = {"KwargsJob", "ArgsJob", "SerializedArgsJob"}
    for row in reference_rows():
        if row["job_class"] in wanted and row["finished_at"] is None:
            insert_reference(db, row)
    ran = gj.perform_inline()
    assert ran == 5
    by_class: dict[str, list] = {}
    for name, args, kwargs in calls:
        by_class.setdefault(name, []).append((args, kwargs))
    assert by_class["KwargsJob"] == [((7,), {"name": "x", "flag": True, "tags": ["t1", "t2"]})]
    args_calls = [a for a, _ in by_class["ArgsJob"]]
    assert args_calls[0][:6] == ('hello "world"\n héllo ✓', 42, 3.14, True, False, None)
    assert args_calls[0][7]["n"] == 9007199254740993
    assert args_calls[1] == ({"plain": 2, "nested": {"deep": "value"}, "account_id": 1},)
    (serialized,) = by_class["SerializedArgsJob"]
    values = serialized[0]
    assert values[0] == dt.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=dt.timezone.utc)
    assert values[1].utcoffset() == dt.timedelta(hours=-8)
    assert values[4] == dt.date(2024, 12, 31)
    assert values[5] == "12.34" and values[6] == "pending"
    assert values[7] == dt.timedelta(hours=1, minutes=30)
    errors = db.execute("SELECT count(*) FROM good_jobs WHERE error IS NOT NULL").fetchone()[0]
    assert errors == 0


def test_migrate_adopts_tables_created_by_goodjob(database_url):
    info = psycopg.conninfo.conninfo_to_dict(database_url)
    name = f"goodjob_adopt_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    info["dbname"] = name
    url = psycopg.conninfo.make_conninfo(**info)
    try:
        schema = (REFERENCE_DIR / "schema.sql").read_text()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(schema)
            conn.execute("SET search_path TO public")
        env = {"GOOD_JOB_DATABASE_URL": url, "PATH": "/usr/bin:/bin"}
        cli = supervisor_command()
        check = subprocess.run(
            [*cli, "migrate", "--check"], env=env, capture_output=True, text=True
        )
        assert check.returncode == 1 and "goodjob-supervisor migrate" in check.stderr
        done = subprocess.run([*cli, "migrate"], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        again = subprocess.run([*cli, "migrate"], env=env, capture_output=True, text=True)
        assert "up to date" in again.stdout
        check = subprocess.run(
            [*cli, "migrate", "--check"], env=env, capture_output=True, text=True
        )
        assert check.returncode == 0
        with psycopg.connect(url, autocommit=True) as conn:
            # GoodJob's 27 indexes are all still there; nothing was dropped or broken.
            count = conn.execute(
                "SELECT count(*) FROM pg_indexes WHERE tablename LIKE 'good_job%'"
            ).fetchone()[0]
            # 27 indexes + 5 primary keys + ours: 2 (0002), 2 (0004), 2 (0005), 3 (0007)
            assert count == 41
    finally:
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_lean_schema_matches_goodjob_columns(db):
    schema = (REFERENCE_DIR / "schema.sql").read_text()
    for table in (
        "good_jobs",
        "good_job_executions",
        "good_job_processes",
        "good_job_settings",
        "good_job_batches",
    ):
        block = schema.split(f"CREATE TABLE public.{table} (")[1].split(");")[0]
        expected = [line.strip().rstrip(",") for line in block.strip().splitlines()]
        rows = db.execute(
            "SELECT column_name, format_type(a.atttypid, a.atttypmod), a.attnotnull,"
            " pg_get_expr(d.adbin, d.adrelid)"
            " FROM information_schema.columns c"
            " JOIN pg_attribute a ON a.attrelid = %s::regclass AND a.attname = c.column_name"
            " LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
            " WHERE c.table_name = %s ORDER BY c.ordinal_position",
            (table, table),
        ).fetchall()
        actual = []
        for name, typ, notnull, default in rows:
            text = f"{name} {typ}"
            if default:
                text += f" DEFAULT {default}"
            if notnull:
                text += " NOT NULL"
            actual.append(text)
        assert actual == expected, table


@pytest.mark.parametrize("opt_in", [True])
def test_goodjob_full_index_set_is_opt_in(database_url, opt_in):
    from goodjob_mp.db.migrate import migrate

    with psycopg.connect(database_url, autocommit=True) as conn:
        before = conn.execute(
            "SELECT count(*) FROM pg_indexes WHERE tablename LIKE 'good_job%'"
        ).fetchone()[0]
        # 5 primary keys + 2 unique + 4 lean + 2 claim (0002) + 4 (0004) + 4 (0005) + 1 GoodJob's
        # (0006) + 3 (0007)
        assert before == 25
        migrate(conn, goodjob_indexes=opt_in)
        after = conn.execute(
            "SELECT count(*) FROM pg_indexes WHERE tablename LIKE 'good_job%'"
        ).fetchone()[0]
        # GoodJob's 27 + 5 primary keys + ours: 2 (0002), 2 (0004), 2 (0005), 3 (0007)
        assert after == 41
        for (name,) in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename LIKE 'good_job%' AND indexname"
            " NOT LIKE '%%pkey' AND indexname NOT IN ("
            "'index_good_job_settings_on_key', 'index_good_jobs_on_cron_key_and_cron_at_cond',"
            "'index_good_jobs_for_candidate_dequeue_unlocked', 'index_good_jobs_on_locked_by_id',"
            "'index_good_jobs_jobs_on_finished_at_only',"
            "'index_good_jobs_on_queue_name_for_dequeue_unlocked',"
            "'index_good_jobs_on_job_class_for_dequeue_unlocked',"
            "'index_good_jobs_on_created_at', 'index_good_jobs_on_scheduled_at',"
            "'index_good_jobs_on_performed_at_running',"
            "'index_good_jobs_on_concurrency_key_running',"
            "'index_good_jobs_on_concurrency_key_unfinished',"
            "'index_good_jobs_on_concurrency_key_created_at',"
            "'index_good_job_executions_on_finished_at_brin',"
            "'index_good_job_executions_on_active_job_id_and_created_at',"
            "'index_good_jobs_on_unfinished_or_errored')"
        ).fetchall():
            conn.execute(f"DROP INDEX {name}")
