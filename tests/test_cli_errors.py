"""The command line at its edges: every bad input is one line naming the problem and the fix,
never a traceback; global options after the sub-command; --version; python -m goodjob_mp."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

import goodjob_mp as gj
from goodjob_mp.cli import supervisor_command
from goodjob_mp.db import connection
from goodjob_mp.db.migrate import SchemaOutdatedError

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, env: dict[str, str | None] | None = None, cwd: Path = ROOT):
    full = dict(os.environ)
    for name, value in (env or {}).items():
        if value is None:
            full.pop(name, None)
        else:
            full[name] = value
    full.setdefault("PYTHONPATH", str(ROOT))
    return subprocess.run(
        supervisor_command(*args), cwd=cwd, env=full, capture_output=True, text=True, timeout=120
    )


def one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


@pytest.fixture()
def empty_database_url(database_url):
    """A database with no tables at all (as before `goodjob-supervisor migrate`)."""
    name = f"goodjob_empty_{uuid.uuid4().hex[:8]}"
    info = psycopg.conninfo.conninfo_to_dict(database_url)
    admin = psycopg.conninfo.make_conninfo(**dict(info, dbname="postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield psycopg.conninfo.make_conninfo(**dict(info, dbname=name))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- cron entries are validated by --check and at start (issue 15.6) -------------------------

CRON_APP = """
import goodjob_mp as gj

@gj.job()
def cron_app_job() -> None:
    pass
"""

BAD_CRON = [
    ({"cron": "61 * * * *", "class": "cron_app.cron_app_job"}, "not a valid expression"),
    ({"cron": "* * * * *", "class": "NoSuchJob"}, "NoSuchJob"),
    (
        {"cron": "* * * * *", "class": "cron_app.cron_app_job", "timezone": "Mars/Base"},
        "not a known IANA timezone",
    ),
    ({"cron": "* * * * *", "class": "cron_app.cron_app_job", "every": 5}, "unknown key"),
]


@pytest.mark.parametrize(("entry", "problem"), BAD_CRON)
def test_check_and_start_refuse_a_bad_cron_entry_in_one_line(tmp_path, entry, problem):
    (tmp_path / "cron_app.py").write_text(CRON_APP)
    env = {
        "GOOD_JOB_CRON": json.dumps({"nightly": entry}),
        "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}",
    }
    proc = run("--check", "--enable-cron", "--app=cron_app", env=env)
    one_line_error(proc, "'nightly'", problem)
    proc = run("--enable-cron", "--app=cron_app", "--queues=cron_app_q", env=env)
    one_line_error(proc, "'nightly'", problem)
    assert "forked child" not in proc.stderr


def test_check_counts_good_cron_entries(tmp_path):
    (tmp_path / "cron_app.py").write_text(CRON_APP)
    entry = {"cron": "*/5 * * * *", "class": "cron_app.cron_app_job", "timezone": "Europe/Paris"}
    env = {
        "GOOD_JOB_CRON": json.dumps({"nightly": entry}),
        "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}",
    }
    proc = run("--check", "--enable-cron", "--app=cron_app", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "1 cron entry" in proc.stdout


# --- database errors (issue 15.7) ------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["nonsense", "postgres://a b@host/db", "postgresql://u@h/db?sslmode=bogus&x"]
)
@pytest.mark.parametrize("command", [("migrate",), ("--queues=a",), ("cron", "list")])
def test_a_malformed_database_url_is_one_line(url, command):
    proc = run(*command, env={"GOOD_JOB_DATABASE_URL": url})
    one_line_error(proc, "GOOD_JOB_DATABASE_URL", "postgresql://")


def test_a_malformed_database_url_variable_is_named():
    proc = run("migrate", env={"GOOD_JOB_DATABASE_URL": None, "DATABASE_URL": "nonsense"})
    one_line_error(proc, "DATABASE_URL is invalid")


def test_an_unreachable_database_is_one_line():
    proc = run("migrate", env={"GOOD_JOB_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x"})
    one_line_error(proc, "cannot connect", "port=1")


def test_enqueue_before_migrate_says_run_migrate(empty_database_url, monkeypatch):
    @gj.job()
    def before_migrate() -> None: ...

    monkeypatch.setenv("GOOD_JOB_DATABASE_URL", empty_database_url)
    connection.reset_database_url()
    try:
        with pytest.raises(SchemaOutdatedError) as info:
            before_migrate.perform_later()
        assert "run `goodjob-supervisor migrate`" in str(info.value)
        with pytest.raises(SchemaOutdatedError), gj.bulk():
            before_migrate.perform_later()
    finally:
        monkeypatch.undo()
        connection.reset_database_url()


def test_a_supervisor_started_before_migrate_stops_in_one_line_before_forking(
    empty_database_url,
):
    proc = run("--queues=a;b", env={"GOOD_JOB_DATABASE_URL": empty_database_url})
    one_line_error(proc, "goodjob-supervisor migrate")
    assert "forked child" not in proc.stderr
    assert proc.returncode == 1


def test_migrate_check_on_an_empty_database_is_one_line(empty_database_url):
    proc = run("migrate", "--check", env={"GOOD_JOB_DATABASE_URL": empty_database_url})
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "run: goodjob-supervisor migrate" in proc.stderr


# --- no database URL: refuse, unless embedded is asked for (issue 16.7) ----------------------


@pytest.mark.parametrize("command", [("migrate",), ("--queues=a",), ("cleanup-preserved-jobs",)])
def test_without_a_database_url_commands_refuse_naming_the_variables(tmp_path, command):
    env = {"GOOD_JOB_DATABASE_URL": None, "DATABASE_URL": None, "GOOD_JOB_EMBEDDED": None}
    proc = run(*command, env=env, cwd=tmp_path)
    one_line_error(proc, "GOOD_JOB_DATABASE_URL", "DATABASE_URL", "--embedded")
    assert not (tmp_path / ".goodjob").exists()  # no embedded server was started


def test_library_enqueue_without_a_database_url_refuses(monkeypatch):
    monkeypatch.delenv("GOOD_JOB_DATABASE_URL")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    connection.reset_database_url()
    try:
        with pytest.raises(connection.DatabaseNotConfiguredError) as info:
            connection.database_url()
        assert "GOOD_JOB_EMBEDDED=1" in str(info.value)
    finally:
        monkeypatch.undo()
        connection.reset_database_url()


# --- the command line's shape (issue 16.7) ---------------------------------------------------


def test_version():
    proc = run("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"goodjob-supervisor, version {gj.__version__}"


def test_python_dash_m_goodjob_mp_runs_the_cli():
    proc = subprocess.run(
        [sys.executable, "-m", "goodjob_mp", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    assert proc.returncode == 0, proc.stderr
    assert "Usage: goodjob-supervisor" in proc.stdout


def test_cleanup_help_shows_the_real_defaults():
    proc = run("cleanup-preserved-jobs", "--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    assert "1209600 (14 days)" in text
    assert "-1 deletes nothing" in text


APP = """
import goodjob_mp as gj

@gj.job()
def app_job() -> None:
    pass

gj.configure(cron={"app_entry": {"cron": "@daily", "class": app_job}})
"""


@pytest.mark.parametrize(
    "args",
    [
        ("cron", "list", "--app=after_app"),
        ("--app=after_app", "cron", "list"),
        ("cron", "--app=after_app", "list"),
    ],
)
def test_global_options_are_accepted_before_or_after_the_subcommand(db, tmp_path, args):
    (tmp_path / "after_app.py").write_text(APP)
    proc = run(*args, env={"PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"})
    assert proc.returncode == 0, proc.stderr
    assert "app_entry" in proc.stdout


def test_migrate_accepts_the_app_and_log_level_after_the_subcommand(db):
    proc = run("migrate", "--log-level=warning", "--app=goodjob_mp.demo")
    assert proc.returncode == 0, proc.stderr
    assert "database is up to date" in proc.stdout


def test_log_level_setting_is_applied(db):
    quiet = run("migrate", env={"GOOD_JOB_LOG_LEVEL": "warning", "GOOD_JOB_EMBEDDED": None})
    loud = run("migrate", "--log-level=debug", env={"GOOD_JOB_LOG_LEVEL": "warning"})
    assert quiet.returncode == 0 and loud.returncode == 0, quiet.stderr + loud.stderr
    assert " INFO " not in quiet.stderr and " DEBUG " not in quiet.stderr
    assert " DEBUG " in loud.stderr  # the flag beats the environment
    bad = run("migrate", env={"GOOD_JOB_LOG_LEVEL": "chatty"})
    one_line_error(bad, "GOOD_JOB_LOG_LEVEL")


def test_cli_and_cron_cli_do_not_import_each_other():
    code = (
        "import sys, goodjob_mp.cron_cli; "
        "assert 'goodjob_mp.cli' not in sys.modules, 'cron_cli imports cli'"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    assert proc.returncode == 0, proc.stderr
