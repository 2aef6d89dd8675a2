"""Settings: the four layers, every validation and the errors a person sees (no database)."""

from __future__ import annotations

import psycopg
import pytest
from click.testing import CliRunner

from goodjob_mp import config
from goodjob_mp.cli import main
from goodjob_mp.config import ConfigError, Settings, configure, load_settings
from goodjob_mp.db import connection

# --- precedence -------------------------------------------------------------------------------


def test_defaults_when_nothing_is_set():
    settings = load_settings(environ={})
    assert settings == Settings()
    assert settings.max_threads == 5
    assert settings.queues == "*"
    assert settings.poll_interval == 10.0
    assert settings.execution_mode == "external"
    assert settings.preserve_job_records is True


def test_configure_beats_defaults():
    configure(max_threads=7, queues="mail:2;*")
    settings = load_settings(environ={})
    assert settings.max_threads == 7
    assert settings.queues == "mail:2;*"
    assert settings.poll_interval == 10.0  # untouched settings keep their default


def test_environment_beats_configure():
    configure(max_threads=7, poll_interval=3.0)
    settings = load_settings(environ={"GOOD_JOB_MAX_THREADS": "9"})
    assert settings.max_threads == 9
    assert settings.poll_interval == 3.0  # configure() still wins where the environment is silent


def test_cli_beats_environment_and_configure():
    configure(max_threads=7)
    settings = load_settings({"max_threads": 11}, environ={"GOOD_JOB_MAX_THREADS": "9"})
    assert settings.max_threads == 11


def test_cli_none_means_not_given():
    configure(max_threads=7)
    settings = load_settings(
        {"max_threads": None, "queues": None}, environ={"GOOD_JOB_QUEUES": "mail"}
    )
    assert settings.max_threads == 7
    assert settings.queues == "mail"


def test_cli_overrides_an_invalid_lower_layer_before_validation():
    # The merged value is what is checked: a bad configure() value replaced by a good flag is fine.
    configure(queues="mail:0")
    assert load_settings({"queues": "*"}, environ={}).queues == "*"


@pytest.mark.parametrize(
    ("layer", "where"),
    [
        ("configure", "configure()"),
        ("environ", "GOOD_JOB_MAX_THREADS"),
        ("cli", "command line"),
    ],
)
def test_error_names_the_layer_the_value_came_from(layer, where):
    cli, environ = {}, {}
    if layer == "configure":
        configure(max_threads=-1)
    elif layer == "environ":
        environ["GOOD_JOB_MAX_THREADS"] = "-1"
    else:
        cli["max_threads"] = -1
    with pytest.raises(ConfigError) as info:
        load_settings(cli, environ=environ)
    message = str(info.value)
    assert "max_threads" in message
    assert "-1" in message
    assert f"(from {where})" in message


def test_configure_unknown_name_fails_and_changes_nothing():
    with pytest.raises(ConfigError) as info:
        configure(max_threads=3, max_thread=4)
    assert "max_thread" in str(info.value)
    assert "max_threads" in str(info.value)  # the list of known settings helps spot the typo
    assert load_settings(environ={}).max_threads == 5


def test_cli_unknown_name_fails():
    with pytest.raises(ConfigError, match="bogus"):
        load_settings({"bogus": 1}, environ={})


def test_reset_configuration_forgets_configure():
    configure(max_threads=8)
    config.reset_configuration()
    assert load_settings(environ={}).max_threads == 5


def test_current_settings_sees_later_configure(monkeypatch):
    monkeypatch.delenv("GOOD_JOB_MAX_THREADS", raising=False)
    configure(max_threads=2)
    assert config.current_settings().max_threads == 2
    configure(max_threads=3)
    assert config.current_settings().max_threads == 3


def test_unrelated_environment_variables_are_ignored():
    settings = load_settings(environ={"GOOD_JOB_NOT_A_SETTING": "x", "MAX_THREADS": "99"})
    assert settings == Settings()


# --- environment parsing ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "text", "name", "expected"),
    [
        ("GOOD_JOB_MAX_THREADS", "12", "max_threads", 12),
        ("GOOD_JOB_POLL_INTERVAL", "-1", "poll_interval", -1.0),
        ("GOOD_JOB_POLL_INTERVAL", "0.5", "poll_interval", 0.5),
        ("GOOD_JOB_ENABLE_CRON", "yes", "enable_cron", True),
        ("GOOD_JOB_ENABLE_CRON", "TRUE", "enable_cron", True),
        ("GOOD_JOB_ENABLE_CRON", "0", "enable_cron", False),
        ("GOOD_JOB_ENABLE_CRON", "off", "enable_cron", False),
        ("GOOD_JOB_EXECUTION_MODE", " Async ", "execution_mode", "async"),
        ("GOOD_JOB_IDLE_TIMEOUT", "none", "idle_timeout", None),
        ("GOOD_JOB_IDLE_TIMEOUT", "30", "idle_timeout", 30.0),
        ("GOOD_JOB_QUEUE_SELECT_LIMIT", "", "queue_select_limit", None),
        ("GOOD_JOB_QUEUE_SELECT_LIMIT", "50", "queue_select_limit", 50),
        ("GOOD_JOB_PROBE_PORT", "8080", "probe_port", 8080),
        ("GOOD_JOB_MAX_MEMORY", "2G", "max_memory", 2048),
        ("GOOD_JOB_MAX_MEMORY", "512mb", "max_memory", 512),
        (
            "GOOD_JOB_CRON",
            '{"tick": {"cron": "* * * * *"}}',
            "cron",
            {"tick": {"cron": "* * * * *"}},
        ),
        ("GOOD_JOB_PRESERVE_JOB_RECORDS", "false", "preserve_job_records", False),
        ("GOOD_JOB_PRESERVE_JOB_RECORDS", "1", "preserve_job_records", True),
        (
            "GOOD_JOB_PRESERVE_JOB_RECORDS",
            "on_unhandled_error",
            "preserve_job_records",
            "on_unhandled_error",
        ),
        (
            "GOOD_JOB_PRESERVE_JOB_RECORDS",
            "ON_UNHANDLED_ERROR",
            "preserve_job_records",
            "on_unhandled_error",
        ),
    ],
)
def test_environment_values_are_parsed(variable, text, name, expected):
    settings = load_settings(environ={variable: text})
    value = getattr(settings, name)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("variable", "text", "name"),
    [
        ("GOOD_JOB_MAX_THREADS", "abc", "max_threads"),
        ("GOOD_JOB_MAX_THREADS", "2.5", "max_threads"),
        ("GOOD_JOB_ENABLE_CRON", "maybe", "enable_cron"),
        ("GOOD_JOB_ENABLE_LISTEN_NOTIFY", "sometimes", "enable_listen_notify"),
        ("GOOD_JOB_POLL_INTERVAL", "soon", "poll_interval"),
        ("GOOD_JOB_CRON", "{not json", "cron"),
        ("GOOD_JOB_PRESERVE_JOB_RECORDS", "sometimes", "preserve_job_records"),
        ("GOOD_JOB_MAX_MEMORY", "lots", "max_memory"),
        ("GOOD_JOB_PROBE_PORT", "http", "probe_port"),
    ],
)
def test_unparsable_environment_value_names_the_variable(variable, text, name):
    with pytest.raises(ConfigError) as info:
        load_settings(environ={variable: text})
    message = str(info.value)
    assert f"environment variable {variable}={text!r}" in message
    assert name in message


def test_environment_value_that_parses_but_is_invalid_names_the_variable():
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"GOOD_JOB_QUEUES": "a;;b"})
    message = str(info.value)
    assert "setting queues = 'a;;b' (from GOOD_JOB_QUEUES)" in message
    assert "two ';' in a row" in message


def test_env_name():
    assert config.env_name("max_threads") == "GOOD_JOB_MAX_THREADS"


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "name", "value", "why"),
    [
        ({"execution_mode": "threads"}, "execution_mode", "threads", "inline, async, external"),
        ({"max_threads": -1}, "max_threads", -1, "use 1 to 1000"),
        ({"max_threads": 0}, "max_threads", 0, "use 1 to 1000"),
        ({"max_threads": 100000}, "max_threads", 100000, "the limit of ':N' in queues"),
        ({"poll_interval": 0.0}, "poll_interval", 0.0, "-1 to disable"),
        ({"poll_interval": -2.0}, "poll_interval", -2.0, "-1 to disable"),
        ({"max_cache": -1}, "max_cache", -1, "0 (no cache)"),
        ({"shutdown_timeout": -2.0}, "shutdown_timeout", -2.0, "wait forever"),
        (
            {"enable_listen_notify": False, "poll_interval": -1.0},
            "poll_interval",
            -1.0,
            "no job would ever run",
        ),
        ({"queues": "mail:0"}, "queues", "mail:0", "thread count 0"),
        ({"queues": "a;;b"}, "queues", "a;;b", "two ';' in a row"),
        ({"queues": ""}, "queues", "", "empty"),
        ({"queues": "mail:x"}, "queues", "mail:x", "not a whole number"),
        ({"queues": "-*"}, "queues", "-*", "excluding every queue"),
        ({"preserve_job_records": "sometimes"}, "preserve_job_records", "sometimes", "callable"),
        ({"preserve_job_records": 2}, "preserve_job_records", 2, "callable"),
        (
            {"cleanup_preserved_jobs_before_seconds_ago": 0.0},
            "cleanup_preserved_jobs_before_seconds_ago",
            0.0,
            "seconds > 0",
        ),
        ({"cleanup_interval_seconds": -5.0}, "cleanup_interval_seconds", -5.0, "number > 0"),
        ({"dead_process_timeout": 0.0}, "dead_process_timeout", 0.0, "seconds > 0"),
        ({"heartbeat_interval": 0.0}, "heartbeat_interval", 0.0, "seconds > 0"),
        ({"cleanup_interval_jobs": 0}, "cleanup_interval_jobs", 0, "false to disable"),
        ({"idle_timeout": 0.0}, "idle_timeout", 0.0, "seconds > 0"),
        ({"queue_select_limit": 0}, "queue_select_limit", 0, "count >= 1"),
        ({"max_memory": 0}, "max_memory", 0, "megabytes >= 1"),
        ({"probe_port": 70000}, "probe_port", 70000, "0-65535"),
        ({"probe_port": -1}, "probe_port", -1, "0-65535"),
        ({"max_interrupts": 0}, "max_interrupts", 0, "count >= 1"),
        ({"claim_buffer": 0}, "claim_buffer", 0, "count >= 1"),
        ({"on_thread_error": "print"}, "on_thread_error", "print", "callable"),
        ({"cron": ["tick"]}, "cron", ["tick"], "mapping"),
    ],
)
def test_every_validation_names_setting_value_and_source(changes, name, value, why):
    with pytest.raises(ConfigError) as info:
        load_settings(changes, environ={})
    message = str(info.value)
    assert f"setting {name} = {value!r} (from command line) is invalid" in message
    assert why in message


def test_none_from_configure_is_a_value_not_an_absence():
    # On the command line None means "flag not given"; in code it is a real (bad) value.
    configure(preserve_job_records=None)
    with pytest.raises(ConfigError) as info:
        load_settings(environ={})
    assert "setting preserve_job_records = None (from configure()) is invalid" in str(info.value)


def test_cross_setting_check_names_where_each_layer_put_its_value():
    # LISTEN/NOTIFY switched off in code, polling switched off in the environment: the error
    # blames poll_interval and points at the environment variable that set it.
    configure(enable_listen_notify=False)
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"GOOD_JOB_POLL_INTERVAL": "-1"})
    assert "setting poll_interval = -1.0 (from GOOD_JOB_POLL_INTERVAL)" in str(info.value)


@pytest.mark.parametrize(
    "changes",
    [
        {"poll_interval": -1.0},  # polling off, LISTEN/NOTIFY on
        {"shutdown_timeout": -1.0},
        {"shutdown_timeout": 0.0},
        {"max_cache": 0},  # with polling on
        {"cleanup_interval_jobs": -1},  # every time, as in GoodJob
        {"cleanup_interval_seconds": -1.0},
        {"cleanup_interval_jobs": False},  # off
        {"cleanup_interval_seconds": False},
        {"cleanup_preserved_jobs_before_seconds_ago": -1.0},
        {"probe_port": 0},
        {"probe_port": 65535},
        {"preserve_job_records": False},
        {"preserve_job_records": "on_unhandled_error"},
        {"preserve_job_records": lambda job: True},
        {"on_thread_error": print},
        {"queues": "mail:2;+urgent,default:4;-mail,urgent:1"},
        {"execution_mode": "inline"},
        {"execution_mode": "async"},
        {"max_memory": 1},
        {"idle_timeout": 0.1},
    ],
)
def test_boundary_values_are_accepted(changes):
    settings = load_settings(changes, environ={})
    for name, value in changes.items():
        assert getattr(settings, name) == value


def test_settings_are_frozen_and_replace_returns_a_copy():
    settings = load_settings(environ={})
    with pytest.raises(AttributeError):
        settings.max_threads = 3  # type: ignore[misc]
    changed = settings.replace(max_threads=3)
    assert changed.max_threads == 3
    assert settings.max_threads == 5


# --- _parse_memory ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "megabytes"),
    [
        ("512M", 512),
        ("512m", 512),
        ("512MB", 512),
        ("2G", 2048),
        ("1.5G", 1536),
        (" 2g ", 2048),
        ("1024", 1024),
        ("2048K", 2),
        ("512K", 1),  # rounded up: a limit is never 0
        ("1536K", 2),
        ("", None),
        ("none", None),
    ],
)
def test_parse_memory(text, megabytes):
    assert config._parse_memory(text) == megabytes


@pytest.mark.parametrize("text", ["lots", "M", "12X", "1.2.3G"])
def test_parse_memory_rejects_garbage(text):
    with pytest.raises(ValueError):
        config._parse_memory(text)


def test_zero_memory_limit_is_refused_at_load():
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"GOOD_JOB_MAX_MEMORY": "0"})
    assert "max_memory" in str(info.value)
    assert "GOOD_JOB_MAX_MEMORY" in str(info.value)


# --- the command line -------------------------------------------------------------------------


@pytest.fixture()
def no_database(monkeypatch):
    """Fail loudly if anything tries to open a database connection."""

    def refuse(*args, **kwargs):
        raise AssertionError("--check must not connect to the database")

    monkeypatch.setattr(psycopg, "connect", refuse)
    monkeypatch.setattr(psycopg.Connection, "connect", refuse)
    monkeypatch.setattr(connection, "connect", refuse)


def _cli_env(**extra: str) -> dict[str, str | None]:
    # Keep the test process's own GOOD_JOB_* settings (other than the database) out of the way.
    env: dict[str, str | None] = {"GOOD_JOB_APP": None, "GOOD_JOB_QUEUES": None}
    env.update(extra)
    return env


def _invoke(args, **env):
    return CliRunner().invoke(main, args, env=_cli_env(**env))


def test_cli_check_reports_bad_thread_count(no_database):
    result = _invoke(["--check", "--queues=mail:0"])
    assert result.exit_code != 0
    assert not isinstance(result.exception, AssertionError)
    assert "queues" in result.output
    assert "'mail:0'" in result.output
    assert "thread count 0" in result.output
    assert "command line" in result.output


def test_cli_check_reports_empty_pool(no_database):
    result = _invoke(["--check", "--queues=a;;b"])
    assert result.exit_code != 0
    assert "two ';' in a row" in result.output


def test_cli_check_accepts_good_queue_string_without_database(no_database):
    result = _invoke(["--check", "--queues=mail:2;*"])
    assert result.exit_code == 0, result.output
    assert "configuration OK: 2 pool(s)" in result.output
    assert "mail (2 threads)" in result.output
    assert "* (5 threads)" in result.output


def test_cli_check_uses_max_threads_for_pools_without_count(no_database):
    result = _invoke(["--check", "--queues=mail;*:3", "--max-threads=4"])
    assert result.exit_code == 0, result.output
    assert "mail (4 threads); * (3 threads)" in result.output


def test_cli_check_reads_environment_and_flags_win(no_database):
    bad_env = _invoke(["--check"], GOOD_JOB_QUEUES="mail:0")
    assert bad_env.exit_code != 0
    assert "GOOD_JOB_QUEUES" in bad_env.output
    overridden = _invoke(["--check", "--queues=*"], GOOD_JOB_QUEUES="mail:0")
    assert overridden.exit_code == 0, overridden.output
    assert "1 pool(s)" in overridden.output


def test_cli_check_reports_unparsable_environment(no_database):
    result = _invoke(["--check"], GOOD_JOB_MAX_THREADS="abc")
    assert result.exit_code != 0
    assert "GOOD_JOB_MAX_THREADS='abc'" in result.output


def test_cli_check_parses_max_memory(no_database):
    good = _invoke(["--check", "--max-memory=2G"])
    assert good.exit_code == 0, good.output
    bad = _invoke(["--check", "--max-memory=lots"])
    assert bad.exit_code != 0
    assert not isinstance(bad.exception, ValueError)  # a usage error, not a traceback
    assert "--max-memory" in bad.output
    assert "lots" in bad.output


def test_cli_check_rejects_polling_off_without_listen_notify(no_database):
    result = _invoke(["--check", "--poll-interval=-1", "--disable-listen-notify"])
    assert result.exit_code != 0
    assert "no job would ever run" in result.output


def test_no_cache_with_polling_off_is_refused():
    # Scheduled jobs and retries would never start: only the cache wakes a worker at their time.
    with pytest.raises(ConfigError) as info:
        load_settings({"poll_interval": -1.0, "max_cache": 0})
    assert "max_cache = 0" in str(info.value)
    assert "poll_interval -1" in str(info.value)


def test_queue_errors_name_the_layer_to_fix():
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"GOOD_JOB_QUEUES": "a;;b"})
    assert "invalid GOOD_JOB_QUEUES 'a;;b'" in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_settings({"queues": "mail:0"})
    assert "invalid --queues 'mail:0'" in str(info.value)


def test_cleanup_interval_false_from_the_environment_disables():
    settings = load_settings(environ={"GOOD_JOB_CLEANUP_INTERVAL_JOBS": "false"})
    assert settings.cleanup_interval_jobs is False
    assert (
        load_settings(environ={"GOOD_JOB_CLEANUP_INTERVAL_SECONDS": "-1"}).cleanup_interval_seconds
        == -1
    )


# --- NaN, infinity, one thread limit, types (issues 16.6 and 15.12) ---------------------------

FLOAT_SETTINGS = [
    name
    for name, hint in config._HINTS.items()
    if "float" in str(hint) and name in config._TEXT_PARSERS
]


def test_every_float_setting_is_covered():
    assert {"shutdown_timeout", "poll_interval", "dead_process_timeout", "idle_timeout"} <= set(
        FLOAT_SETTINGS
    )


@pytest.mark.parametrize("name", FLOAT_SETTINGS)
@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-inf", "infinity"])
def test_nan_and_infinity_are_refused_from_the_environment(name, text):
    with pytest.raises(ConfigError) as info:
        load_settings(environ={config.env_name(name): text})
    assert config.env_name(name) in str(info.value)
    assert "finite" in str(info.value)


@pytest.mark.parametrize("name", FLOAT_SETTINGS)
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_nan_and_infinity_are_refused_from_configure_and_the_command_line(name, value):
    with pytest.raises(ConfigError):
        configure(**{name: value})
    with pytest.raises(ConfigError) as info:
        load_settings({name: value}, environ={})
    assert "finite" in str(info.value)


@pytest.mark.parametrize("text", ["infG", "nanM", "1e400M"])
def test_memory_nan_and_infinity_are_refused(text):
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"GOOD_JOB_MAX_MEMORY": text})
    assert "GOOD_JOB_MAX_MEMORY" in str(info.value)


def test_cli_check_refuses_shutdown_timeout_nan_in_one_line(no_database):
    result = _invoke(["--check"], GOOD_JOB_SHUTDOWN_TIMEOUT="nan")
    assert result.exit_code != 0
    assert "GOOD_JOB_SHUTDOWN_TIMEOUT" in result.output
    assert len(result.output.strip().splitlines()) == 1
    result = _invoke(["--check", "--shutdown-timeout=inf"])
    assert result.exit_code != 0
    assert "Traceback" not in result.output


def test_one_thread_limit_for_max_threads_and_pool_counts():
    from goodjob_mp.queues import MAX_POOL_THREADS

    load_settings({"max_threads": MAX_POOL_THREADS}, environ={})
    load_settings({"queues": f"mail:{MAX_POOL_THREADS}"}, environ={})
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"GOOD_JOB_MAX_THREADS": str(MAX_POOL_THREADS + 1)})
    assert str(MAX_POOL_THREADS) in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_settings({"queues": f"mail:{MAX_POOL_THREADS + 1}"}, environ={})
    assert str(MAX_POOL_THREADS) in str(info.value)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"max_threads": "5"}, "expected a whole number, got str"),
        ({"max_threads": 2.5}, "expected a whole number, got float"),
        ({"max_threads": True}, "expected a whole number, got bool"),
        ({"poll_interval": "10"}, "expected a number, got str"),
        ({"enable_cron": "yes"}, "expected true/false, got str"),
        ({"queues": ["mail"]}, "expected a string, got list"),
        ({"idle_timeout": "soon"}, "expected a number or None, got str"),
        ({"cron": "every minute"}, "expected a mapping"),
        ({"on_thread_error": 42}, "callable"),
        ({"cleanup_interval_jobs": 1.5}, "got float"),
    ],
)
def test_configure_type_checks_values_at_once(options, expected):
    with pytest.raises(ConfigError) as info:
        configure(**options)
    assert expected in str(info.value)
    assert f"configure({next(iter(options))}=" in str(info.value)
    assert config._code_settings == {}  # nothing was changed


def test_configure_accepts_ints_for_float_settings_and_bools_for_intervals():
    configure(poll_interval=3, cleanup_interval_jobs=False, cleanup_interval_seconds=60)
    settings = load_settings(environ={})
    assert settings.poll_interval == 3
