"""``goodjob-supervisor dashboard`` and ``goodjob-supervisor jobs ...``.

A thin shell: ``dashboard`` serves ``goodjob_mp.web.create_app()`` with uvicorn; ``jobs``
lists jobs and retries, discards, reschedules or destroys them through ``goodjob_mp.db.admin``,
the same functions the dashboard's buttons call. The web stack is imported only by
``dashboard``, so the rest of the CLI works without the ``web`` extra.
"""

from __future__ import annotations

import importlib
import ipaddress
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
import psycopg

from goodjob_mp import cli_common
from goodjob_mp.db import admin

DEFAULT_BIND = "127.0.0.1:8088"
USER_ENV = "GOOD_JOB_DASHBOARD_USER"
PASSWORD_ENV = "GOOD_JOB_DASHBOARD_PASSWORD"


def register(group: click.Group) -> None:
    """Add the commands to ``goodjob-supervisor`` (called from ``cli.py``)."""
    group.add_command(dashboard)
    group.add_command(jobs)


def parse_bind(text: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:8088`` for IPv6) -> (host, port); pure."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"--bind {text!r} must be host:port, e.g. {DEFAULT_BIND}")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"--bind {text!r}: port {port_text!r} is not a number") from None
    if not 0 < port < 65536:
        raise ValueError(f"--bind {text!r}: port {port} is outside 1-65535")
    return host, port


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _load_callable(spec: str) -> Any:
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise click.BadParameter(f"{spec!r} must be module:function", param_hint="'--auth'")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        value = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise click.BadParameter(f"{spec!r} cannot be loaded: {exc}", param_hint="'--auth'")
    if not callable(value):
        raise click.BadParameter(f"{spec!r} is not callable", param_hint="'--auth'")
    return value


@click.command()
@click.option(
    "--bind",
    default=DEFAULT_BIND,
    show_default=True,
    help="host:port to listen on. Only loopback by default: the pages steer jobs.",
)
@click.option("--read-only", is_flag=True, help="Show the pages, refuse every action.")
@click.option(
    "--auth",
    "auth_spec",
    metavar="MODULE:FUNCTION",
    help="Auth hook: FUNCTION(request) returns True to let a request in.",
)
@click.option(
    "--allow-unauthenticated",
    is_flag=True,
    help="Serve on a non-loopback address without auth (behind an authenticating proxy).",
)
@click.option("--root-path", default="", help="Path prefix when a proxy serves it below /.")
@click.pass_context
def dashboard(
    ctx: click.Context,
    bind: str,
    read_only: bool,
    auth_spec: str | None,
    allow_unauthenticated: bool,
    root_path: str,
) -> None:
    """Serve the web dashboard (jobs, cron, processes, batches, pauses, performance) with uvicorn.

    \b
    goodjob-supervisor --app myapp.jobs dashboard --bind 127.0.0.1:8088
    Basic auth: set GOOD_JOB_DASHBOARD_USER and GOOD_JOB_DASHBOARD_PASSWORD.
    Needs the web extra: pip install 'goodjob-mp[web]'.
    """

    try:
        host, port = parse_bind(bind)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--bind'") from None
    try:
        import uvicorn

        from goodjob_mp.web.app import create_app
        from goodjob_mp.web.security import BasicAuth
    except ImportError as exc:
        raise click.ClickException(
            f"the dashboard needs the 'web' extra ({exc}); install it with: "
            "pip install 'goodjob-mp[web]'"
        ) from None
    settings = cli_common.load(ctx)
    user, password = os.environ.get(USER_ENV), os.environ.get(PASSWORD_ENV)
    if bool(user) != bool(password):
        raise click.ClickException(f"basic auth needs both {USER_ENV} and {PASSWORD_ENV} set")
    auth: Any = None
    if auth_spec:
        auth = _load_callable(auth_spec)
    elif user and password:
        auth = BasicAuth(user, password)
    if auth is None and not is_loopback(host) and not allow_unauthenticated:
        raise click.ClickException(
            f"refusing to serve the dashboard on {host} without auth: anyone who reaches it "
            f"could discard or destroy jobs. Set {USER_ENV}/{PASSWORD_ENV}, pass --auth, "
            "--read-only with --allow-unauthenticated, or bind 127.0.0.1"
        )
    from goodjob_mp.cron import CronConfigError, validate_cron_entries

    try:
        entries = validate_cron_entries(settings)
    except CronConfigError as exc:
        raise click.ClickException(str(exc)) from None
    _check_database()
    app = create_app(auth=auth, read_only=read_only, cron_entries=entries)
    click.echo(
        f"goodjob_mp dashboard on http://{bind}{root_path}/"
        + (" (read-only)" if read_only else "")
        + (" (auth on)" if auth else "")
    )
    uvicorn.run(
        app,
        host=host,
        port=port,
        root_path=root_path,
        log_level=settings.log_level,
        proxy_headers=False,
        server_header=False,
    )


def _check_database() -> None:
    """Fail at start with one clear line rather than on the first page view; warn when the
    schema lacks the dashboard's indexes (the pages work, slowly on big tables)."""
    from goodjob_mp.db.migrate import pending_migrations

    with _connection() as conn:
        missing = pending_migrations(conn)
    if missing:
        click.echo(
            f"warning: the database schema is behind ({', '.join(missing)}); pages may be slow "
            "on large tables. Run: goodjob-supervisor migrate",
            err=True,
        )


# --- jobs -------------------------------------------------------------------------------------


@contextmanager
def _connection() -> Iterator[psycopg.Connection]:
    cli_common.load(click.get_current_context())
    with cli_common.connection() as conn:
        yield conn


def _filter_options(fn: Any) -> Any:
    options = [
        click.option("--state", type=click.Choice(admin.STATE_NAMES), help="Job state."),
        click.option("--queue", help="Queue name."),
        click.option("--class", "job_class", help="Job class (job_class)."),
        click.option("--label", help="Has this label."),
        click.option("--priority", type=int, help="Priority."),
        click.option("--cron-key", help="Enqueued by this cron entry."),
        click.option("--search", help="Full-text search in arguments and errors."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _filter(options: dict[str, Any]) -> admin.JobFilter:
    return admin.JobFilter(
        state=options.get("state"),
        queue=options.get("queue"),
        job_class=options.get("job_class"),
        label=options.get("label"),
        priority=options.get("priority"),
        cron_key=options.get("cron_key"),
        search=options.get("search"),
    )


@click.group()
def jobs() -> None:
    """List jobs; retry, discard, reschedule or destroy them (as the dashboard does)."""


@jobs.command("list")
@_filter_options
@click.option("--limit", type=int, default=25, show_default=True, help="Rows to show.")
def list_command(limit: int, **options: Any) -> None:
    """Jobs in the dashboard's order for the state (newest first without one)."""
    flt = _filter(options)
    with _connection() as conn:
        page = admin.list_jobs(conn, flt, limit=limit)
    for row in page.rows:
        error = f"  {row['error']}" if row["error"] else ""
        click.echo(
            f"{row['id']}  {row['state']:<9}  {row['queue_name'] or '-':<12}  "
            f"{row['job_class'] or '?'}{error}"
        )
    if not page.rows:
        click.echo("no jobs match")
    elif page.next_cursor is not None:
        click.echo(f"(more: raise --limit, up to {admin.MAX_PAGE_SIZE})")


def _action_command(action: str, summary: str) -> click.Command:
    @click.argument("job_ids", nargs=-1)
    @_filter_options
    @click.option("--all", "all_matching", is_flag=True, help="Every job the filters match.")
    def command(job_ids: tuple[str, ...], all_matching: bool, **options: Any) -> None:
        flt = _filter(options)
        if job_ids and (all_matching or flt.params()):
            raise click.UsageError("give job ids, or --all with filters, not both")
        if not job_ids and not all_matching:
            raise click.UsageError(
                "give job ids, or --all (with --state/--queue/--class/... to narrow it)"
            )
        with _connection() as conn:
            if job_ids:
                try:
                    ids = admin.parse_ids(job_ids)
                except admin.FilterError as exc:
                    raise click.UsageError(str(exc)) from None
                changed = admin.apply_action(conn, action, ids)
                skipped = len(set(ids)) - len(changed)
            else:
                changed_n = admin.apply_action_to_filter(conn, action, flt)
                click.echo(f"{action}: {changed_n} job(s)")
                return
        click.echo(f"{action}: {len(changed)} job(s)")
        if skipped:
            states = ", ".join(sorted(admin.ACTION_STATES[action]))
            click.echo(
                f"{skipped} left as they were: {action} applies to {states} jobs that are not "
                "running (or the id is unknown)",
                err=True,
            )

    command.__doc__ = summary
    return click.command(action)(command)


for _action, _summary in (
    ("retry", "Run discarded jobs again (the same job, one more execution)."),
    ("discard", "Finish waiting jobs with a DiscardJobError, without running them."),
    ("reschedule", "Run waiting (scheduled, retried or queued) jobs now."),
    ("destroy", "Delete finished jobs and their executions."),
):
    jobs.add_command(_action_command(_action, _summary))
