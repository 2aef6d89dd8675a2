"""What every ``goodjob-supervisor`` command shares: the options accepted before or after the
sub-command (``--app``, ``--log-level``, ``--embedded``), importing the app, loading the
settings, logging, opening a connection, and turning our errors into one line.

Imported by ``cli`` and ``cron_cli``; imports neither (so the two never import each other).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click
import psycopg

from goodjob_mp import config
from goodjob_mp.config import ConfigError, Settings, load_settings

F = TypeVar("F", bound=Callable[..., Any])

# Where the options given before and after the sub-command meet; a later one wins.
_META_KEY = "goodjob_mp.common_options"


def _remember(name: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def store(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value is not None:
            ctx.meta.setdefault(_META_KEY, {})[name] = value

    return store


def common_options(command: F) -> F:
    """``--app``, ``--log-level`` and ``--embedded``, valid on the group and every sub-command
    (``goodjob-supervisor cron list --app myapp`` and ``goodjob-supervisor --app myapp cron
    list`` mean the same)."""
    options = [
        click.option(
            "--app",
            expose_value=False,
            callback=_remember("app"),
            help="Module that defines the jobs (may call configure()); the supervisor imports it "
            "in each child after the fork (see --preload). Env: GOOD_JOB_APP.",
        ),
        click.option(
            "--log-level",
            expose_value=False,
            callback=_remember("log_level"),
            type=click.Choice(config.LOG_LEVELS, case_sensitive=False),
            help="Env: GOOD_JOB_LOG_LEVEL. [default: info]",
        ),
        click.option(
            "--embedded",
            is_flag=True,
            default=None,
            expose_value=False,
            callback=_remember("embedded"),
            help="With no database URL, start a private PostgreSQL in --state-dir (demos and "
            "experiments only). Env: GOOD_JOB_EMBEDDED=1.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def common(ctx: click.Context) -> dict[str, Any]:
    return dict(ctx.meta.get(_META_KEY, {}))


def import_app(app: str | None) -> None:
    app = app or os.environ.get("GOOD_JOB_APP")
    if not app:
        return
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        importlib.import_module(app)
    except ImportError as exc:
        raise click.ClickException(f"--app {app!r} could not be imported: {exc}") from None


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s [%(process)d %(name)s] %(message)s",
    )
    logging.getLogger("goodjob_mp").setLevel(level.upper())


def load(
    ctx: click.Context, flags: dict[str, Any] | None = None, *, with_app: bool = True
) -> Settings:
    """Import ``--app`` (unless ``with_app`` is false), merge the settings with the command
    line's ``flags``, set up logging, and install the settings for library code here."""
    options = common(ctx)
    if with_app:
        import_app(options.get("app"))
    cli = dict(flags or {})
    cli["app"] = options.get("app")
    cli["log_level"] = options.get("log_level")
    cli["embedded"] = options.get("embedded")
    try:
        settings = load_settings(cli)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    setup_logging(settings.log_level)
    config.set_current_settings(settings)
    return settings


@contextmanager
def connection() -> Iterator[psycopg.Connection]:
    """A connection for one command; an unreachable database is one line, not a traceback."""
    from goodjob_mp.db.connection import DatabaseUnavailableError, connect

    try:
        conn = connect()
    except DatabaseUnavailableError as exc:
        raise click.ClickException(str(exc)) from None
    with conn:
        yield conn


def _one_line_errors() -> tuple[type[BaseException], ...]:
    from goodjob_mp.cron import CronConfigError
    from goodjob_mp.db.connection import DatabaseUnavailableError
    from goodjob_mp.db.migrate import SchemaOutdatedError

    return (ConfigError, CronConfigError, DatabaseUnavailableError, SchemaOutdatedError)


class Group(click.Group):
    """A click group whose commands report our own errors as one ``Error: ...`` line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except _one_line_errors() as exc:
            raise click.ClickException(str(exc)) from None
