"""Test database: each test run creates its own database on a real PostgreSQL and drops it.

The server is the one named by GOOD_JOB_TEST_SERVER_URL, else the machine's on 127.0.0.1:5432,
else the embedded one (goodjob_mp.db.embedded). GOOD_JOB_DATABASE_URL points at the new database
for the tests and every process they start.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import psycopg
import pytest

from goodjob_mp import config
from goodjob_mp.db import connection
from goodjob_mp.db.migrate import migrate

TABLES = "good_jobs, good_job_executions, good_job_processes, good_job_settings, good_job_batches"


def _server_url() -> str:
    explicit = os.environ.get("GOOD_JOB_TEST_SERVER_URL")
    if explicit:
        return explicit
    for user in ("postgres", "root"):
        url = f"postgresql://{user}@127.0.0.1:5432/postgres"
        try:
            psycopg.connect(url, connect_timeout=3).close()
            return url
        except psycopg.OperationalError:
            continue
    from goodjob_mp.db.embedded import ensure_embedded_server

    server = ensure_embedded_server(Path(__file__).resolve().parent.parent / ".goodjob-test")
    info = psycopg.conninfo.conninfo_to_dict(server.conninfo)
    info["dbname"] = "postgres"
    pytest._goodjob_embedded = server  # type: ignore[attr-defined]  # keep it alive
    return psycopg.conninfo.make_conninfo(**info)


def _with_db(url: str, dbname: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(url)
    info["dbname"] = dbname
    return psycopg.conninfo.make_conninfo(**info)


@pytest.fixture(scope="session", autouse=True)
def database_url() -> str:
    server = _server_url()
    dbname = f"goodjob_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    url = _with_db(server, dbname)
    os.environ["GOOD_JOB_DATABASE_URL"] = url
    connection.reset_database_url()
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn)
    yield url
    connection.close_thread_connection()
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


@pytest.fixture()
def db(database_url: str):
    """A clean set of tables and an autocommit connection to them."""
    with psycopg.connect(database_url, autocommit=True, options="-c timezone=UTC") as conn:
        conn.execute(f"TRUNCATE {TABLES}")
        yield conn


@pytest.fixture(autouse=True)
def _fresh_configuration():
    config.reset_configuration()
    yield
    config.reset_configuration()


@pytest.fixture()
def registry(db):
    """A supervisor's process row, registered (``Registry.open``) and deregistered after."""
    from goodjob_mp.supervisor.maintenance import Registry

    reg = Registry(uuid.uuid4(), lambda: {"pid": 0})
    reg.open()
    yield reg
    reg.deregister()
    connection.close_thread_connection()
