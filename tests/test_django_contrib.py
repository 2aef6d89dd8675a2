"""goodjob_mp.contrib.django: the settings mapping (pure), and the example project under
examples/django run for real: Django's test runner, ``manage.py migrate`` and
``manage.py goodjob_supervisor`` running a job enqueued from Django, against real PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from importlib.util import find_spec
from pathlib import Path

import psycopg
import pytest

from goodjob_mp.config import ConfigError
from goodjob_mp.contrib.django.conf import database_url, django_options
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "django"
needs_django = pytest.mark.skipif(find_spec("django") is None, reason="Django is not installed")

PG = {"ENGINE": "django.db.backends.postgresql", "NAME": "shop", "USER": "app", "HOST": "db"}


def test_good_job_settings_and_databases_become_goodjob_settings():
    options = django_options({"queues": "mail:2;*", "max_threads": 3}, {"default": PG})
    assert options.goodjob == {
        "queues": "mail:2;*",
        "max_threads": 3,
        "database_url": "dbname=shop user=app host=db",
    }
    assert options.enqueue_after_transaction_commit and options.database_from_django
    assert options.autodiscover == "jobs" and options.database == "default"

    explicit = django_options(
        {"database_url": "postgresql://x@h/d", "enqueue_after_transaction_commit": False},
        {"default": {"ENGINE": "django.db.backends.sqlite3"}},
    )
    assert explicit.goodjob == {"database_url": "postgresql://x@h/d"}
    assert not explicit.database_from_django and not explicit.enqueue_after_transaction_commit


def test_database_url_keeps_libpq_options_and_drops_djangos():
    entry = {
        **PG,
        "PASSWORD": "p w",
        "PORT": 6432,
        "OPTIONS": {"sslmode": "require", "server_side_binding": True, "pool": True},
    }
    info = psycopg.conninfo.conninfo_to_dict(database_url(entry))
    assert info == {
        "dbname": "shop",
        "user": "app",
        "password": "p w",
        "host": "db",
        "port": "6432",
        "sslmode": "require",
    }
    postgis = {"ENGINE": "django.contrib.gis.db.backends.postgis", "NAME": "geo"}
    assert database_url(postgis) == "dbname=geo"


def test_bad_good_job_settings_name_the_problem():
    with pytest.raises(ConfigError, match="unknown key.*QUEUES.*queues"):
        django_options({"QUEUES": "*"}, {"default": PG})
    with pytest.raises(ConfigError, match=r"DATABASES\['default'\].*sqlite3.*PostgreSQL"):
        django_options({}, {"default": {"ENGINE": "django.db.backends.sqlite3"}})
    with pytest.raises(ConfigError, match="'jobs' is not in DATABASES"):
        django_options({"database": "jobs"}, {"default": PG})


@pytest.fixture()
def django_db_url(database_url):
    """A fresh, empty database for the example project (its own tables and goodjob_mp's)."""
    name = f"goodjob_django_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    info = psycopg.conninfo.conninfo_to_dict(database_url)
    info["dbname"] = name
    yield psycopg.conninfo.make_conninfo(**info)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def example_env(db_url: str) -> dict[str, str]:
    # No GOOD_JOB_DATABASE_URL: goodjob_mp must take the database from Django's DATABASES.
    env = {
        k: v for k, v in os.environ.items() if k not in ("GOOD_JOB_DATABASE_URL", "DATABASE_URL")
    }
    env["EXAMPLE_DATABASE_URL"] = db_url
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(EXAMPLE)])
    return env


def manage(db_url: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=EXAMPLE,
        env=example_env(db_url),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@needs_django
def test_example_project_passes_djangos_test_runner(django_db_url):
    # Rollback (no job), commit (job), same-transaction mode, bulk, the ORM in a job: on the
    # test database that Django creates, migrates (goodjob_mp's tables too) and drops.
    done = manage(django_db_url, "test", "shop", "--noinput", "-v", "2", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Ran 11 tests" in done.stderr and "OK" in done.stderr


@needs_django
def test_manage_py_goodjob_supervisor_offers_every_option_and_command(django_db_url):
    from goodjob_mp.cli import main

    done = manage(django_db_url, "goodjob_supervisor", "--help")
    assert done.returncode == 0, done.stderr
    assert "Usage: manage.py goodjob_supervisor" in done.stdout
    for param in main.params:
        for opt in param.opts:
            assert opt in done.stdout, opt
    for command in main.commands:
        assert command in done.stdout, command
    same = manage(django_db_url, "help", "goodjob_supervisor")
    assert same.stdout == done.stdout


@needs_django
def test_migrate_then_supervisor_runs_a_job_enqueued_in_a_django_transaction(
    django_db_url, tmp_path
):
    migrated = manage(django_db_url, "migrate", "--noinput")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    check = manage(django_db_url, "goodjob_supervisor", "migrate", "--check")
    assert check.returncode == 0 and "up to date" in check.stdout, check.stdout + check.stderr
    made = manage(
        django_db_url,
        "shell",
        "-c",
        "from django.test import Client; import json; "
        "r = Client().post('/orders', json.dumps({'email': 'x@example.com'}), "
        "content_type='application/json'); print(r.json()['order'])",
    )
    assert made.returncode == 0, made.stderr
    order_id = int(made.stdout.strip().splitlines()[-1])

    log = open(tmp_path / "sup.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "goodjob_supervisor",
            "--queues=receipts:1",
            "--settings",
            "exampleproject.settings",
        ],
        cwd=EXAMPLE,
        env=example_env(django_db_url),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        with psycopg.connect(django_db_url, autocommit=True) as conn:

            def sent() -> bool:
                row = conn.execute(
                    "SELECT receipt_sent FROM shop_order WHERE id = %s", (order_id,)
                ).fetchone()
                return bool(row and row[0])

            def finished() -> bool:
                return conn.execute(
                    "SELECT finished_at IS NOT NULL AND error IS NULL FROM good_jobs"
                ).fetchone()[0]

            assert wait_for(sent, timeout=60), (tmp_path / "sup.log").read_text()
            assert wait_for(finished, timeout=60), (tmp_path / "sup.log").read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        log.close()
    assert code == 0, (tmp_path / "sup.log").read_text()
