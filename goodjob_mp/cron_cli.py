"""``goodjob-supervisor cron ...``: list entries, switch them on or off, run one now.

A thin shell over ``goodjob_mp.cron``: reads the entries from the settings (after importing
``--app``), reads and writes ``good_job_settings`` and ``good_jobs``. Never schedules anything
itself; the running leader picks up a switch at its next due run.
"""

from __future__ import annotations

import datetime as dt

import click

from goodjob_mp import cron as cron_mod
from goodjob_mp.cli_common import common_options, connection, load
from goodjob_mp.cron import CronConfigError, CronEntry

UTC = dt.timezone.utc


def _entries(ctx: click.Context) -> dict[str, CronEntry]:
    settings = load(ctx)
    try:
        return cron_mod.validate_cron_entries(settings)
    except CronConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _entry(ctx: click.Context, key: str) -> CronEntry:
    entries = _entries(ctx)
    if key not in entries:
        known = ", ".join(sorted(entries)) or "none are configured"
        raise click.ClickException(f"no cron entry {key!r}; known keys: {known}")
    return entries[key]


def _fmt(moment: dt.datetime | None, tz_name: str) -> str:
    if moment is None:
        return "-"
    local = moment.astimezone(cron_mod.ZoneInfo(tz_name))
    utc = moment.astimezone(UTC)
    if tz_name == "UTC":
        return utc.strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{local.strftime('%Y-%m-%d %H:%M:%S %Z')} ({utc.strftime('%H:%M:%S UTC')})"


@click.group()
@common_options
def cron() -> None:
    """Cron entries: list them, enable or disable one for every supervisor, run one now."""


@cron.command("list")
@common_options
@click.pass_context
def list_entries(ctx: click.Context) -> None:
    """Key, schedule, next run (local and UTC), last run and outcome, enabled."""
    entries = _entries(ctx)
    if not entries:
        click.echo("no cron entries configured (configure(cron={...}) or GOOD_JOB_CRON)")
        return
    with connection() as conn:
        enabled, disabled = cron_mod.read_switches(conn)
        runs = cron_mod.last_runs(conn, list(entries))
    now = dt.datetime.now(UTC)
    for key, entry in entries.items():
        on = cron_mod.is_enabled(entry, enabled, disabled)
        try:
            next_at = entry.next_after(now) if on else None
        except Exception as exc:  # a user's schedule callable
            next_at, note = None, f" (schedule failed: {exc})"
        else:
            note = ""
        last = runs.get(key)
        click.echo(f"{key}  [{'enabled' if on else 'disabled'}]")
        click.echo(f"  schedule:  {entry.schedule.describe()}  ({entry.timezone})")
        click.echo(f"  class:     {entry.job_class.job_class_name}")
        if entry.description:
            click.echo(f"  about:     {entry.description}")
        click.echo(f"  next run:  {_fmt(next_at, entry.timezone) if on else '-'}{note}")
        if last is None:
            click.echo("  last run:  never")
        else:
            when = last.cron_at or last.created_at
            manual = "" if last.cron_at else " (run now)"
            click.echo(f"  last run:  {_fmt(when, entry.timezone)}{manual}: {last.outcome}")


@cron.command()
@click.argument("key")
@common_options
@click.pass_context
def enable(ctx: click.Context, key: str) -> None:
    """Enable KEY on every supervisor (stored in good_job_settings)."""
    _switch(ctx, key, True)


@cron.command()
@click.argument("key")
@common_options
@click.pass_context
def disable(ctx: click.Context, key: str) -> None:
    """Disable KEY on every supervisor (stored in good_job_settings)."""
    _switch(ctx, key, False)


def _switch(ctx: click.Context, key: str, enabled: bool) -> None:
    _entry(ctx, key)  # an unknown key fails here, before anything is written
    with connection() as conn:
        cron_mod.set_enabled(conn, key, enabled)
    click.echo(f"cron entry {key} {'enabled' if enabled else 'disabled'}")


@cron.command()
@click.argument("key")
@common_options
@click.pass_context
def run(ctx: click.Context, key: str) -> None:
    """Enqueue KEY now, outside its schedule (even when disabled), as GoodJob does."""
    entry = _entry(ctx, key)
    with connection() as conn:
        cron_mod.enqueue_run(conn, entry, None)
    click.echo(f"cron entry {key} enqueued")
