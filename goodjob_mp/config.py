"""Settings: defaults < ``configure()`` < ``GOOD_JOB_*`` environment < CLI flags.

Owns the one table of every option (name, default, how to read it from text, what is valid) and
the merge of the four layers. Every bad value fails here, at start-up, with a message naming the
setting, where it came from and the value. Never opens a connection or reads the database.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Union, get_args, get_origin, get_type_hints

from goodjob_mp.queues import MAX_POOL_THREADS, QueueStringError, parse_pools

EXECUTION_MODES = ("inline", "async", "external")
PRESERVE_MODES = ("on_unhandled_error",)
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


class ConfigError(ValueError):
    """A setting has a value that cannot work; the message names the setting and the value."""


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    execution_mode: str = "external"
    queues: str = "*"
    max_threads: int = 5
    poll_interval: float = 10.0
    max_cache: int = 10000
    shutdown_timeout: float = 25.0
    enable_listen_notify: bool = True
    enable_cron: bool = False
    cron: Mapping[str, Any] = field(default_factory=dict)
    cron_graceful_restart_period: float | None = None
    preserve_job_records: Any = True
    retry_on_unhandled_error: bool = False
    on_thread_error: Callable[[BaseException], None] | None = None
    cleanup_preserved_jobs_before_seconds_ago: float = 14 * 24 * 3600.0
    # As GoodJob: False disables, -1 cleans up after every batch of results, 0 is an error.
    cleanup_interval_jobs: int | bool = 1000
    cleanup_interval_seconds: float | bool = 600.0
    cleanup_discarded_jobs: bool = True
    idle_timeout: float | None = None
    queue_select_limit: int | None = None
    max_memory: int | None = None
    probe_port: int | None = None
    # The probe's address: loopback by default (GoodJob's advice for health checks behind a
    # proxy); 0.0.0.0 (or ::) where a load balancer or kubelet on another address must reach it.
    probe_bind: str = "127.0.0.1"
    # /metrics on the probe server (needs prometheus_client: the ``metrics`` extra).
    enable_metrics: bool = True
    daemonize: bool = False
    pidfile: str | None = None
    log_file: str | None = None
    app: str | None = None
    # Import --app once in the supervisor before forking (copy-on-write sharing; HUP then
    # restarts children on the old code) instead of in each child after the fork.
    preload: bool = False
    state_dir: str = ".goodjob"
    # A job whose process died this many times while performing it is discarded, not run again.
    max_interrupts: int = 3
    # A process whose heartbeat is older than this (and whose advisory lock is gone) is dead.
    # 20 s: with the 5 s heartbeat and sweep, a vanished host's jobs run again within ~30 s.
    dead_process_timeout: float = 20.0
    heartbeat_interval: float = 5.0
    # Seconds between the supervisor's checks for unfinished rows with a NULL scheduled_at (rows
    # no claim takes; supervisor/stuck_rows.py); -1 disables the check.
    null_scheduled_check_interval: float = 60.0
    # A worker child whose status reports stop for this long is killed and replaced (as
    # gunicorn's --timeout); -1 disables. Children report every second.
    child_timeout: float = 10.0
    # Upper bound on jobs claimed ahead of free threads when jobs are short.
    claim_buffer: int = 400
    # Most ``async def`` jobs one pool runs at once on its event loop (see docs/asyncio.md).
    async_concurrency: int = 100
    # Python's young-generation GC threshold in each worker child, which also freezes what its
    # start-up allocated (supervisor/gc_tuning.py); 0 leaves Python's collector as it is.
    worker_gc_threshold: int = 10_000
    goodjob_indexes: bool = False
    # Writing arguments (goodjob_mp.serialization.WritePolicy): what a naive datetime means,
    # how a Decimal is written, and whether values only goodjob_mp reads are refused.
    naive_datetimes: str = "refuse"
    decimal_format: str = "big_decimal"
    active_job_compatible: bool = False
    # Packages (besides the --app module's) whose modules a stored job_class may import.
    job_packages: tuple[str, ...] = ()
    # Level of the goodjob_mp loggers (the CLI also sends them to stderr).
    log_level: str = "info"
    # With no database URL: start a private PostgreSQL in state_dir (demos only) instead of
    # refusing to start.
    embedded: bool = False
    # Most connections enqueue keeps open per process (threads share them; one write each).
    enqueue_pool_size: int = 5
    # A job whose class this process cannot resolve: "skip" leaves it (unclaimed) to a process
    # that can; "discard" claims and discards it with UnknownJobClassError.
    on_unknown_job_class: str = "skip"
    # Hold GoodJob's per-job advisory lock while a job is claimed (so a Rails GoodJob sharing the
    # database never runs it too): "auto" when a GoodJob process row is seen, "always", "never".
    advisory_locks: str = "auto"

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


# --- text parsers for environment variables and CLI flags ------------------------------------


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected true/false")


def _parse_optional_float(text: str) -> float | None:
    return None if text.strip().lower() in ("", "none", "null") else float(text)


def _parse_optional_int(text: str) -> int | None:
    return None if text.strip().lower() in ("", "none", "null") else int(text)


def _parse_interval(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def read(text: str) -> Any:
        if text.strip().lower() in ("false", "off", "no"):
            return False
        return parse(text)

    return read


def _parse_preserve(text: str) -> Any:
    lowered = text.strip().lower()
    return lowered if lowered in PRESERVE_MODES else _parse_bool(text)


def _parse_memory(text: str) -> int | None:
    """Megabytes, or a number with a K/M/G suffix (``512M``, ``2G``)."""
    stripped = text.strip().upper().removesuffix("B")
    if stripped in ("", "NONE", "NULL"):
        return None
    units = {"K": 1 / 1024, "M": 1, "G": 1024}
    if stripped[-1:] in units:
        # Rounded up: '512K' is a limit of 1 MB, never 0 (which would read as "no memory").
        return max(math.ceil(float(stripped[:-1]) * units[stripped[-1]]), 1)
    return int(stripped)


_TEXT_PARSERS: dict[str, Callable[[str], Any]] = {
    "database_url": str,
    "execution_mode": lambda t: t.strip().lower(),
    "queues": str,
    "max_threads": int,
    "poll_interval": float,
    "max_cache": int,
    "shutdown_timeout": float,
    "enable_listen_notify": _parse_bool,
    "enable_cron": _parse_bool,
    "cron": json.loads,
    "cron_graceful_restart_period": _parse_optional_float,
    "preserve_job_records": _parse_preserve,
    "retry_on_unhandled_error": _parse_bool,
    "cleanup_preserved_jobs_before_seconds_ago": float,
    "cleanup_interval_jobs": _parse_interval(int),
    "cleanup_interval_seconds": _parse_interval(float),
    "cleanup_discarded_jobs": _parse_bool,
    "idle_timeout": _parse_optional_float,
    "queue_select_limit": _parse_optional_int,
    "max_memory": _parse_memory,
    "probe_port": _parse_optional_int,
    "probe_bind": str,
    "enable_metrics": _parse_bool,
    "daemonize": _parse_bool,
    "pidfile": str,
    "log_file": str,
    "app": str,
    "preload": _parse_bool,
    "state_dir": str,
    "max_interrupts": int,
    "dead_process_timeout": float,
    "heartbeat_interval": float,
    "null_scheduled_check_interval": float,
    "child_timeout": float,
    "claim_buffer": int,
    "async_concurrency": int,
    "worker_gc_threshold": int,
    "goodjob_indexes": _parse_bool,
    "naive_datetimes": lambda t: t.strip().lower(),
    "decimal_format": lambda t: t.strip().lower(),
    "active_job_compatible": _parse_bool,
    "job_packages": lambda t: tuple(p.strip() for p in t.split(",") if p.strip()),
    "log_level": lambda t: t.strip().lower(),
    "embedded": _parse_bool,
    "enqueue_pool_size": int,
    "on_unknown_job_class": lambda t: t.strip().lower(),
    "advisory_locks": lambda t: t.strip().lower(),
}

ENV_PREFIX = "GOOD_JOB_"


def env_name(setting: str) -> str:
    return ENV_PREFIX + setting.upper()


# --- validation -------------------------------------------------------------------------------


_UNIONS = (Union, types.UnionType)


def _describe(hint: Any) -> str:
    names = {bool: "true/false", int: "a whole number", float: "a number", str: "a string"}
    if hint in names:
        return names[hint]
    origin = get_origin(hint)
    if origin in _UNIONS:
        return " or ".join("None" if a is type(None) else _describe(a) for a in get_args(hint))
    if origin is Mapping or hint is Mapping:
        return "a mapping"
    if origin is Callable or hint is Callable:
        return "a callable"
    return str(hint)


def _matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` has the type the Settings field declares. bool is not a number here,
    and a number is never NaN or infinite (a timeout of NaN never expires)."""
    if hint is Any:
        return True
    origin = get_origin(hint)
    if origin in _UNIONS:
        return any(_matches(value, arg) for arg in get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return (
            isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        )
    if hint is str:
        return isinstance(value, str)
    if origin is Mapping or hint is Mapping:
        return isinstance(value, Mapping)
    if origin is Callable or hint is Callable:
        return callable(value)
    return True


def type_problem(name: str, value: Any) -> str | None:
    """Why ``value`` cannot be setting ``name`` by its type alone, or None."""
    hint = _HINTS[name]
    if _matches(value, hint):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN and infinity are refused: use a finite number"
    return f"expected {_describe(hint)}, got {type(value).__name__}"


def database_url_problem(url: str) -> str | None:
    """Why ``url`` is not a usable conninfo or postgresql:// URL, or None (nothing connects)."""
    import psycopg

    try:
        psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        return (
            f"not a PostgreSQL URL ({str(exc).strip()}); use "
            "postgresql://user:password@host:5432/dbname (percent-encode special characters)"
        )
    return None


# How a queue-string error names the place to fix it, by the layer the string came from.
_QUEUES_WHERE = {"command line": "--queues", "configure()": "configure(queues=...)"}


def _check(settings: Settings, sources: Mapping[str, str]) -> None:
    def fail(name: str, why: str) -> None:
        value = getattr(settings, name)
        where = sources.get(name, "default")
        raise ConfigError(f"setting {name} = {value!r} (from {where}) is invalid: {why}")

    for name in _FIELDS:
        problem = type_problem(name, getattr(settings, name))
        if problem is not None:
            fail(name, problem)
    if settings.execution_mode not in EXECUTION_MODES:
        fail("execution_mode", f"use one of {', '.join(EXECUTION_MODES)}")
    if not 1 <= settings.max_threads <= MAX_POOL_THREADS:
        fail("max_threads", f"use 1 to {MAX_POOL_THREADS} threads (the limit of ':N' in queues)")
    if settings.poll_interval != -1 and settings.poll_interval <= 0:
        fail("poll_interval", "use seconds > 0, or -1 to disable polling")
    if settings.max_cache < 0:
        fail("max_cache", "use 0 (no cache) or more")
    if settings.shutdown_timeout < 0 and settings.shutdown_timeout != -1:
        fail("shutdown_timeout", "use -1 (wait forever), 0 (immediately) or seconds")
    if settings.log_level.lower() not in LOG_LEVELS:
        fail("log_level", f"use one of {', '.join(LOG_LEVELS)}")
    if settings.database_url is not None:
        problem = database_url_problem(settings.database_url)
        if problem:
            fail("database_url", problem)
    if not settings.enable_listen_notify and settings.poll_interval == -1:
        fail("poll_interval", "polling is disabled and LISTEN/NOTIFY is off: no job would ever run")
    if settings.max_cache == 0 and settings.poll_interval == -1:
        fail(
            "max_cache",
            "with polling disabled (poll_interval -1) scheduled jobs and retries start only from "
            "the cache; use max_cache >= 1 or enable polling",
        )
    try:
        parse_pools(
            settings.queues,
            setting=_QUEUES_WHERE.get(sources.get("queues", ""), env_name("queues")),
        )
    except QueueStringError as exc:
        fail("queues", str(exc))
    pjr = settings.preserve_job_records
    if not (isinstance(pjr, bool) or pjr in PRESERVE_MODES or callable(pjr)):
        fail("preserve_job_records", "use True, False, 'on_unhandled_error' or a callable")
    for name in (
        "cleanup_preserved_jobs_before_seconds_ago",
        "dead_process_timeout",
        "heartbeat_interval",
        "null_scheduled_check_interval",
    ):
        if getattr(settings, name) <= 0 and getattr(settings, name) != -1:
            fail(name, "use seconds > 0 (or -1 to disable)")
    for name in ("cleanup_interval_jobs", "cleanup_interval_seconds"):
        value = getattr(settings, name)
        if value is True or (value is not False and value <= 0 and value != -1):
            fail(name, "use a number > 0, -1 to clean up every time, or false to disable")
    if settings.child_timeout != -1 and not settings.child_timeout >= 2:
        fail("child_timeout", "use seconds >= 2 (children report every second), or -1 to disable")
    if settings.idle_timeout is not None and settings.idle_timeout <= 0:
        fail("idle_timeout", "use seconds > 0")
    if settings.queue_select_limit is not None and settings.queue_select_limit < 1:
        fail("queue_select_limit", "use a count >= 1")
    if settings.max_memory is not None and settings.max_memory < 1:
        fail("max_memory", "use megabytes >= 1")
    if settings.probe_port is not None and not 0 <= settings.probe_port <= 65535:
        fail("probe_port", "use a TCP port 0-65535")
    if not isinstance(settings.probe_bind, str) or not settings.probe_bind.strip():
        fail("probe_bind", "use an address such as 127.0.0.1, 0.0.0.0 or ::")
    if settings.max_interrupts < 1:
        fail("max_interrupts", "use a count >= 1")
    if settings.enqueue_pool_size < 1:
        fail("enqueue_pool_size", "use a count >= 1")
    if settings.claim_buffer < 1:
        fail("claim_buffer", "use a count >= 1")
    if settings.async_concurrency < 1:
        fail("async_concurrency", "use a count >= 1")
    if settings.worker_gc_threshold < 0:
        fail("worker_gc_threshold", "use a count of allocations >= 1, or 0 for Python's own")
    if settings.on_thread_error is not None and not callable(settings.on_thread_error):
        fail("on_thread_error", "use a callable taking the exception")
    if settings.on_unknown_job_class not in ("skip", "discard"):
        fail(
            "on_unknown_job_class", "use 'skip' (leave it to a process that knows it) or 'discard'"
        )
    if settings.advisory_locks not in ("auto", "always", "never"):
        fail("advisory_locks", "use 'auto' (when a GoodJob process is seen), 'always' or 'never'")
    if not isinstance(settings.cron, Mapping):
        fail("cron", "use a mapping of cron key -> entry")
    if settings.naive_datetimes not in ("refuse", "utc", "keep"):
        fail("naive_datetimes", "use 'refuse', 'utc' or 'keep'")
    packages = settings.job_packages
    if isinstance(packages, str) or not all(isinstance(p, str) and p for p in packages):
        fail("job_packages", "use a list of package names, e.g. ('myapp', 'billing')")
    if settings.decimal_format not in ("big_decimal", "string"):
        fail("decimal_format", "use 'big_decimal' (Rails 7.1+) or 'string' (Active Job 6.1/7.0)")


# --- the layers -------------------------------------------------------------------------------

_code_settings: dict[str, Any] = {}
_FIELDS = {f.name for f in dataclasses.fields(Settings)}
_HINTS = get_type_hints(Settings)


def configure(**options: Any) -> None:
    """Set options in code (the second layer). Unknown names and values of the wrong type
    fail at once, and change nothing; the rest is checked when the settings are loaded."""
    unknown = sorted(set(options) - _FIELDS)
    if unknown:
        raise ConfigError(
            f"unknown setting(s) {', '.join(unknown)}; known settings: {', '.join(sorted(_FIELDS))}"
        )
    for name, value in options.items():
        problem = type_problem(name, value)
        if problem is not None:
            raise ConfigError(f"configure({name}={value!r}) is invalid: {problem}")
    _code_settings.update(options)
    global _cached
    _cached = None


def reset_configuration() -> None:
    """Forget everything set with ``configure()`` (for tests)."""
    global _cached
    _code_settings.clear()
    _cached = None


def load_settings(
    cli: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Merge the four layers and validate. CLI values are already typed (click converts them)."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, value in _code_settings.items():
        values[name], sources[name] = value, "configure()"
    for name, parse in _TEXT_PARSERS.items():
        text = environ.get(env_name(name))
        if text is None:
            continue
        try:
            values[name] = parse(text)
        except (ValueError, TypeError, OverflowError) as exc:
            raise ConfigError(
                f"environment variable {env_name(name)}={text!r} is invalid for {name}: {exc}"
            ) from None
        sources[name] = env_name(name)
    for name, value in (cli or {}).items():
        if value is None:
            continue
        if name not in _FIELDS:
            raise ConfigError(f"unknown setting {name}")
        values[name], sources[name] = value, "command line"
    settings = Settings(**values)
    _check(settings, sources)
    return settings


_cached: Settings | None = None


def current_settings() -> Settings:
    """The settings of this process without CLI flags (library use: enqueue, async mode)."""
    global _cached
    if _cached is None:
        _cached = load_settings()
    return _cached


def set_current_settings(settings: Settings) -> None:
    """The CLI installs its merged settings here so library code in this process sees them."""
    global _cached
    _cached = settings
