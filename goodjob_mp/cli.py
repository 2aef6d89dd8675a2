"""``goodjob-supervisor``: the command line.

Owns option parsing and the sub-commands; each command is a thin shell over a module that does
the work (``supervisor``, ``db.migrate``, ``cleanup``, ``cron``). Settings are merged here:
defaults < ``configure()`` (in the ``--app`` module) < ``GOOD_JOB_*`` environment < flags.
"""

from __future__ import annotations

import logging
import math
import sys
from typing import Any

import click

import goodjob_mp
from goodjob_mp import config
from goodjob_mp.cli_common import Group, common, common_options, connection, load
from goodjob_mp.config import Settings
from goodjob_mp.cron_cli import cron
from goodjob_mp.queues import parse_pools

log = logging.getLogger("goodjob_mp.cli")

QUEUES_HELP = """Queue pools: ';' separates pools (one child process each), ':N' sets a pool's
threads, ',' separates queues, '+' serves them in order, '-' means all except, '*' all.
Example: --queues='mail:2;+urgent,default:4;-mail,urgent:1' forks 3 children. [default: *]"""

_DEFAULTS = Settings()


def supervisor_command(*args: str) -> list[str]:
    """argv that runs ``goodjob-supervisor ARGS`` with this interpreter, whether or not the
    console script is on PATH (the demo, the benchmarks and the tests start it this way)."""
    return [sys.executable, "-m", "goodjob_mp", *args]


def _check_cron(settings: Settings) -> int:
    """Validate the cron entries (after --app is imported, so classes resolve); a bad entry
    raises CronConfigError naming the entry and the problem."""
    if not settings.cron:
        return 0
    from goodjob_mp.cron import validate_cron_entries

    return len(validate_cron_entries(settings))


def _check_schema_before_forking() -> None:
    """Refuse to start on a schema that is behind, once, before any child is forked (instead
    of every child failing at boot). An unreachable database is left to the supervisor, which
    retries; the connection is closed before the fork."""
    from goodjob_mp.db.connection import DatabaseUnavailableError, connect
    from goodjob_mp.db.migrate import ensure_current

    try:
        conn = connect()
    except DatabaseUnavailableError:
        return
    with conn:
        ensure_current(conn)


@click.group(
    cls=Group,
    invoke_without_command=True,
    context_settings={"max_content_width": 100},
)
@click.version_option(goodjob_mp.__version__, prog_name="goodjob-supervisor")
@common_options
@click.option(
    "--preload",
    is_flag=True,
    default=None,
    help="Import --app once in the supervisor before forking: children share its memory "
    "copy-on-write, but HUP restarts them on the code loaded at start. Without it each child "
    "imports --app after the fork, so HUP loads new code. Env: GOOD_JOB_PRELOAD.",
)
@click.option("--queues", help=QUEUES_HELP)
@click.option(
    "--max-threads", type=int, help="Threads per pool without ':N' (1-1000). [default: 5]"
)
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
    "--probe-port",
    type=int,
    help="Serve /, /status, /status/started, /status/connected, and /metrics (Prometheus, with "
    "the metrics extra; GOOD_JOB_ENABLE_METRICS=false turns it off).",
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
@click.option("--state-dir", help="Folder for the embedded database. [default: .goodjob]")
@click.option(
    "--check",
    is_flag=True,
    help="Validate the configuration (cron entries included) and exit, without touching the "
    "database.",
)
@click.pass_context
def main(ctx: click.Context, check: bool, **flags: Any) -> None:
    """Run background jobs: fork one child process per queue pool and supervise them.

    \b
    goodjob-supervisor --app myapp.jobs --queues='mail:2;billing:1;*'
    goodjob-supervisor migrate            # create or update the tables
    goodjob-supervisor cleanup-preserved-jobs --before-seconds-ago=86400

    Signals: TERM/INT drain and stop, QUIT stops now, HUP restarts the children one pool at a
    time, USR1 reopens --log-file; USR2, TTIN and TTOU are ignored. Every option is also a
    GOOD_JOB_<OPTION> environment variable (docs/settings.md).
    """
    if ctx.invoked_subcommand is not None:
        return
    if flags.get("max_memory") is not None:
        try:
            flags["max_memory"] = config._parse_memory(flags["max_memory"])
        except (ValueError, OverflowError) as exc:
            raise click.BadParameter(
                f"{flags['max_memory']!r}: {exc}; use megabytes or e.g. 512M, 2G",
                param_hint="'--max-memory'",
            ) from None
    # Without --preload each child imports --app after the fork, so HUP loads new code. --check
    # and cron read the app's configure() (cron entries) here; the children still drop those
    # modules and import them afresh (supervisor/appload.forget_app_modules). Whether to import
    # is read from the merged settings (flags over GOOD_JOB_* env), then they are merged again.
    settings = load(ctx, flags, with_app=check)
    if not check and (settings.preload or settings.enable_cron):
        settings = load(ctx, flags)
    options = common(ctx)
    # The children merge these again over the app's configure().
    cli_flags = {**flags, **{k: options.get(k) for k in ("app", "log_level", "embedded")}}
    pools = parse_pools(settings.queues)
    entries = _check_cron(settings) if (check or settings.enable_cron) else 0
    if check:
        click.echo(
            f"configuration OK: {len(pools)} pool(s): "
            + "; ".join(
                f"{p.selector} ({p.thread_count(settings.max_threads)} threads)" for p in pools
            )
            + (f"; {entries} cron entr{'y' if entries == 1 else 'ies'}" if entries else "")
        )
        return
    if settings.execution_mode != "external":
        # The supervisor's children are the workers: a job enqueuing there must not start
        # in-process workers of its own (async) or run jobs on the spot (inline).
        log.info(
            "execution_mode %s applies to library use; the supervisor runs as external",
            settings.execution_mode,
        )
        settings = settings.replace(execution_mode="external")
        config.set_current_settings(settings)
    _check_schema_before_forking()
    from goodjob_mp.supervisor.arbiter import run_supervisor

    sys.exit(run_supervisor(settings, cli_flags=cli_flags))


@main.command()
@common_options
@click.option("--check", is_flag=True, help="Exit 1 if the database is behind; change nothing.")
@click.option(
    "--goodjob-indexes",
    is_flag=True,
    default=None,
    help="Also create GoodJob's full index set (when a Rails GoodJob shares the database). "
    "Env: GOOD_JOB_GOODJOB_INDEXES.",
)
@click.option(
    "--concurrently",
    is_flag=True,
    help="Build the indexes of index-only migrations (and --goodjob-indexes) with CREATE INDEX "
    "CONCURRENTLY, outside a transaction, so writes to a large live good_jobs go on; an INVALID "
    "index left by a failed build is rebuilt.",
)
@click.pass_context
def migrate(
    ctx: click.Context, check: bool, goodjob_indexes: bool | None, concurrently: bool
) -> None:
    """Create or update the good_job tables (idempotent, one transaction, locked; see
    --concurrently for a large live table)."""
    from goodjob_mp.db import migrate as migrations

    settings = load(ctx, {"goodjob_indexes": goodjob_indexes})
    with connection() as conn:
        if check:
            missing = migrations.pending_migrations(conn)
            if missing:
                usable = not migrations.blocking_migrations(conn, missing)
                click.echo(
                    f"database is behind: pending {', '.join(missing)}"
                    + (" (indexes only: workers run without them, slower)" if usable else "")
                    + "; run: goodjob-supervisor migrate",
                    err=True,
                )
                sys.exit(1)
            click.echo("database is up to date")
            return
        done = migrations.migrate(
            conn, goodjob_indexes=settings.goodjob_indexes, concurrently=concurrently
        )
    click.echo(f"applied {', '.join(done)}" if done else "database is up to date")


@main.command("cleanup-preserved-jobs")
@common_options
@click.option(
    "--before-seconds-ago",
    type=float,
    help="Delete finished jobs older than this many seconds; -1 deletes nothing. [default: "
    "cleanup_preserved_jobs_before_seconds_ago, "
    f"{_DEFAULTS.cleanup_preserved_jobs_before_seconds_ago:.0f} "
    f"({_DEFAULTS.cleanup_preserved_jobs_before_seconds_ago / 86400:g} days) unless set]",
)
@click.option(
    "--keep-discarded",
    is_flag=True,
    help="Keep jobs that finished with an error. [default: cleanup_discarded_jobs, "
    f"{'delete' if _DEFAULTS.cleanup_discarded_jobs else 'keep'} them unless set]",
)
@click.pass_context
def cleanup_preserved_jobs(
    ctx: click.Context, before_seconds_ago: float | None, keep_discarded: bool
) -> None:
    """Delete preserved job records (and their executions) and finished batches older than a
    cut-off."""
    from goodjob_mp.cleanup import cleanup_preserved as run_cleanup

    settings = load(ctx)
    seconds = (
        settings.cleanup_preserved_jobs_before_seconds_ago
        if before_seconds_ago is None
        else before_seconds_ago
    )
    if seconds == -1:
        click.echo("cleanup is disabled (before-seconds-ago = -1): deleted 0 job(s)")
        return
    if not math.isfinite(seconds) or seconds < 0:
        raise click.BadParameter(
            f"{seconds!r}: use seconds >= 0, or -1 to disable", param_hint="'--before-seconds-ago'"
        )
    with connection() as conn:
        deleted, batches_deleted = run_cleanup(
            conn,
            settings,
            before_seconds_ago=before_seconds_ago,
            include_discarded=False if keep_discarded else None,
        )
    click.echo(f"deleted {deleted} job(s) and {batches_deleted} batch(es)")


main.add_command(cron)

from goodjob_mp.dashboard_cli import register as _register_dashboard  # noqa: E402

_register_dashboard(main)
from goodjob_mp import pauses_cli  # noqa: E402  (pause, unpause, pauses)

pauses_cli.register(main)
from goodjob_mp import batches_cli  # noqa: E402  (batches)

batches_cli.register(main)
