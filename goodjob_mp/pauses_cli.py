"""``goodjob-supervisor pause | unpause | pauses``: GoodJob's pauses from the command line.

A thin shell over ``goodjob_mp.db.settings_store``. The running workers of both sides (Python and
a Rails GoodJob with ``enable_pauses``) read the ``pauses`` setting at every claim, so a pause
holds from the next claim on; ``unpause`` also wakes idle workers through NOTIFY.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from goodjob_mp.features.pauses import PauseError, pause_target

_TARGETS = (
    click.option("--queue", help="A queue name, e.g. mail."),
    click.option("--job-class", help="A stored job class name, e.g. SendInvoiceJob."),
    click.option("--label", help="A job label, e.g. billing."),
)


def _target_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_TARGETS):
        func = option(func)
    return func


def _target(queue: str | None, job_class: str | None, label: str | None) -> tuple[str, str]:
    try:
        return pause_target(queue, job_class, label)
    except PauseError as exc:
        raise click.UsageError(str(exc)) from None


def _connection(ctx: click.Context):
    from goodjob_mp import cli_common
    from goodjob_mp.db.connection import DatabaseUnavailableError, connect

    cli_common.load(ctx)
    try:
        return connect()
    except DatabaseUnavailableError as exc:
        raise click.ClickException(str(exc)) from None


_WORDS = {"queues": "queue", "job_classes": "job class", "labels": "label"}


@click.command()
@_target_options
@click.pass_context
def pause(ctx: click.Context, queue: str | None, job_class: str | None, label: str | None) -> None:
    """Stop claiming the jobs of one queue, job class or label; running jobs finish.

    \b
    goodjob-supervisor pause --queue=mail
    goodjob-supervisor pause --job-class=SendInvoiceJob
    goodjob-supervisor pause --label=billing
    """
    from goodjob_mp.db import settings_store

    kind, name = _target(queue, job_class, label)
    with _connection(ctx) as conn:
        changed = settings_store.pause(conn, kind, name)
    click.echo(f"paused {_WORDS[kind]} {name!r}" + ("" if changed else " (it already was)"))


@click.command()
@_target_options
@click.pass_context
def unpause(
    ctx: click.Context, queue: str | None, job_class: str | None, label: str | None
) -> None:
    """Claim them again (takes the same flags as pause); idle workers wake at once."""
    from goodjob_mp.db import settings_store

    kind, name = _target(queue, job_class, label)
    with _connection(ctx) as conn:
        changed = settings_store.unpause(conn, kind, name)
    if changed:
        click.echo(f"unpaused {_WORDS[kind]} {name!r}")
    else:
        click.echo(f"{_WORDS[kind]} {name!r} was not paused")


@click.command("pauses")
@click.pass_context
def list_pauses(ctx: click.Context) -> None:
    """List what is paused (the good_job_settings row GoodJob and goodjob_mp share)."""
    from goodjob_mp.db import settings_store

    with _connection(ctx) as conn:
        current = settings_store.read_pauses(conn)
    if not current:
        click.echo("nothing is paused")
        return
    for kind in ("queues", "job_classes", "labels"):
        for name in getattr(current, kind):
            click.echo(f"{_WORDS[kind]:<10} {name}")


def register(group: click.Group) -> None:
    for command in (pause, unpause, list_pauses):
        group.add_command(command)
