"""``goodjob-supervisor``: the command line.

Owns option parsing and the sub-commands; each command is a thin shell over a module that does
the work (``supervisor``, ``db.migrate``, ``cleanup``, ``cron``). Settings are merged here:
defaults < ``configure()`` (in the ``--app`` module) < ``GOOD_JOB_*`` environment < flags.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import click

from goodjob_mp import config
from goodjob_mp.config import ConfigError, Settings, load_settings
from goodjob_mp.queues import parse_pools

QUEUES_HELP = """Queue pools: ';' separates pools (one child process each), ':N' sets a pool's
threads, ',' separates queues, '+' serves them in order, '-' means all except, '*' all.
Example: --queues='mail:2;+urgent,default:4;-mail,urgent:1' forks 3 children. [default: *]"""


def supervisor_command(*args: str) -> list[str]:
    """argv that runs ``goodjob-supervisor ARGS`` with this interpreter, whether or not the
    console script is on PATH (the demo, the benchmarks and the tests start it this way)."""
    return [sys.executable, "-c", "from goodjob_mp.cli import main; main()", *args]


def _import_app(app: str | None) -> None:
    from goodjob_mp.supervisor.appload import AppImportError, import_app

    app = app or os.environ.get("GOOD_JOB_APP")
    if not app:
        return
    try:
        import_app(app)
    except AppImportError as exc:
        raise click.ClickException(str(exc)) from None


def _settings(cli: dict[str, Any]) -> Settings:
    try:
        settings = load_settings(cli)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    config.set_current_settings(settings)
    return settings


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s [%(process)d %(name)s] %(message)s",
    )


@click.group(invoke_without_command=True, context_settings={"max_content_width": 100})
@click.option(
    "--app",
    help="Module that defines the jobs; imported in each child after the fork, so HUP loads new "
    "code (see --preload). Env: GOOD_JOB_APP.",
)
@click.option(
    "--preload",
    is_flag=True,
    default=None,
    help="Import --app once in the supervisor before forking: children share its memory "
    "copy-on-write, but HUP restarts them on the code loaded at start.",
)
@click.option("--queues", help=QUEUES_HELP)
@click.option("--max-threads", type=int, help="Threads per pool without ':N'. [default: 5]")
@click.option(
    "--poll-interval", type=float, help="Seconds between polls; -1 disables. [default: 10]"
)
@click.option(
    "--max-cache", type=int, help="Future scheduled jobs cached per pool. [default: 10000]"
)
@click.option(
    "--shutdown-timeout",
    type=float,
    help="Seconds running jobs get on TERM/INT before SIGKILL; -1 waits forever, 0 none. "
    "[default: 25]",
)
@click.option("--enable-cron/--disable-cron", default=None, help="Run cron entries (leader only).")
@click.option(
    "--enable-listen-notify/--disable-listen-notify",
    default=None,
    help="Wake on LISTEN/NOTIFY (polling stays as the safety net). [default: enabled]",
)
@click.option(
    "--child-timeout",
    type=float,
    help="Kill and replace a worker child whose status reports stop for N seconds (it hangs); "
    "its running jobs run again as interrupted. -1 disables. [default: 10]",
)
@click.option("--idle-timeout", type=float, help="Exit cleanly after N seconds with no job run.")
@click.option("--daemonize", is_flag=True, default=None, help="Detach into the background.")
@click.option("--pidfile", help="Write the supervisor's pid here (atomically).")
@click.option("--log-file", help="With --daemonize: append output here instead of /dev/null.")
@click.option(
    "--probe-port", type=int, help="Serve /, /status, /status/started, /status/connected."
)
@click.option(
    "--probe-bind",
    help="Address the probe listens on; 0.0.0.0 or :: for every interface. [default: 127.0.0.1]",
)
@click.option("--queue-select-limit", type=int, help="Most jobs one claim may take.")
@click.option(
    "--max-memory",
    help="Per child, e.g. 512M or 2G: over it, a child stops claiming, gets 5 s (at most "
    "--shutdown-timeout) to finish its jobs, is killed after that, and is replaced.",
)
@click.option(
    "--check",
    is_flag=True,
    help="Validate the configuration and exit, without touching the database.",
)
@click.option("--log-level", default="info", show_default=True, help="debug, info, warning, error.")
@click.pass_context
def main(ctx: click.Context, app: str | None, check: bool, log_level: str, **flags: Any) -> None:
    """Run background jobs: fork one child process per queue pool and supervise them.

    \b
    goodjob-supervisor --app myapp.jobs --queues='mail:2;billing:1;*'
    goodjob-supervisor migrate            # create or update the tables
    goodjob-supervisor cleanup-preserved-jobs --before-seconds-ago=86400

    Signals: TERM/INT drain and stop, QUIT stops now, HUP restarts the children one pool at a
    time, USR1 reopens --log-file; USR2, TTIN and TTOU are ignored. Every option is also a
    GOOD_JOB_<OPTION> environment variable.
    """
    ctx.ensure_object(dict)
    ctx.obj["app"] = app
    ctx.obj["log_level"] = log_level
    if ctx.invoked_subcommand is not None:
        return
    _setup_logging(log_level)
    preload = flags.get("preload")
    if preload is None:
        preload = os.environ.get("GOOD_JOB_PRELOAD", "").strip().lower() in ("1", "true", "yes")
    if check or preload:
        _import_app(app)  # else each child imports it after the fork (HUP loads new code)
    if flags.get("max_memory") is not None:
        try:
            flags["max_memory"] = config._parse_memory(flags["max_memory"])
        except ValueError as exc:
            raise click.BadParameter(
                f"{flags['max_memory']!r}: {exc}; use megabytes or e.g. 512M, 2G",
                param_hint="'--max-memory'",
            ) from None
    flags["app"] = app
    cli_flags = dict(flags)  # the children merge them again over the app's configure()
    settings = _settings(flags)
    pools = parse_pools(settings.queues)
    if check:
        click.echo(
            f"configuration OK: {len(pools)} pool(s): "
            + "; ".join(
                f"{p.selector} ({p.thread_count(settings.max_threads)} threads)" for p in pools
            )
        )
        return
    from goodjob_mp.supervisor.arbiter import run_supervisor

    sys.exit(run_supervisor(settings, cli_flags=cli_flags))


@main.command()
@click.option("--check", is_flag=True, help="Exit 1 if the database is behind; change nothing.")
@click.option(
    "--goodjob-indexes",
    is_flag=True,
    help="Also create GoodJob's full index set (when a Rails GoodJob shares the database).",
)
@click.pass_context
def migrate(ctx: click.Context, check: bool, goodjob_indexes: bool) -> None:
    """Create or update the good_job tables (idempotent, one transaction, locked)."""
    from goodjob_mp.db import migrate as migrations
    from goodjob_mp.db.connection import DatabaseUnavailableError, connect

    _setup_logging(ctx.obj["log_level"])
    _import_app(ctx.obj["app"])
    _settings({})
    try:
        conn = connect()
    except DatabaseUnavailableError as exc:
        raise click.ClickException(str(exc)) from None
    with conn:
        if check:
            missing = migrations.pending_migrations(conn)
            if missing:
                click.echo(f"database is behind: pending {', '.join(missing)}", err=True)
                click.echo("run: goodjob-supervisor migrate", err=True)
                sys.exit(1)
            click.echo("database is up to date")
            return
        done = migrations.migrate(conn, goodjob_indexes=goodjob_indexes)
    click.echo(f"applied {', '.join(done)}" if done else "database is up to date")


@main.command("cleanup-preserved-jobs")
@click.option(
    "--before-seconds-ago",
    type=float,
    help=(
        "Delete finished jobs older than this. [default: cleanup_preserved_jobs_before_seconds_ago]"
    ),
)
@click.option("--keep-discarded", is_flag=True, help="Keep jobs that finished with an error.")
@click.pass_context
def cleanup_preserved_jobs(
    ctx: click.Context, before_seconds_ago: float | None, keep_discarded: bool
) -> None:
    """Delete preserved job records (and their executions) older than a cut-off."""
    from goodjob_mp.cleanup import cleanup_preserved_jobs as run_cleanup
    from goodjob_mp.db.connection import DatabaseUnavailableError, connect

    _setup_logging(ctx.obj["log_level"])
    _import_app(ctx.obj["app"])
    settings = _settings({})
    try:
        conn = connect()
    except DatabaseUnavailableError as exc:
        raise click.ClickException(str(exc)) from None
    with conn:
        deleted = run_cleanup(
            conn,
            settings,
            before_seconds_ago=before_seconds_ago,
            include_discarded=False if keep_discarded else None,
        )
    click.echo(f"deleted {deleted} job(s)")


def _register_optional_commands() -> None:
    try:
        from goodjob_mp.cron_cli import cron
    except ImportError:
        return
    main.add_command(cron)


_register_optional_commands()
