"""``goodjob-supervisor batches``: recent batches with their job counts and state.

A thin shell over ``goodjob_mp.db.batches.list_batches``, the same read the dashboard's batches
page uses. Batches made by a Rails GoodJob on the same database show too.
"""

from __future__ import annotations

import uuid

import click

_HEADER = ("ID", "STATE", "JOBS", "DONE", "DISCARDED", "CALLBACKS", "CREATED (UTC)", "DESCRIPTION")


@click.command("batches")
@click.option("--limit", type=click.IntRange(1, 1000), default=25, show_default=True)
@click.option("--id", "batch_id", help="Show one batch and its jobs instead.")
@click.pass_context
def list_batches(ctx: click.Context, limit: int, batch_id: str | None) -> None:
    """List recent batches, newest first: state (pending, running, discarding, succeeded,
    discarded) and how many of their jobs are done.

    \b
    goodjob-supervisor batches --limit=50
    goodjob-supervisor batches --id=0b6c...      # one batch, with its jobs and callbacks
    """
    from goodjob_mp.db import batches
    from goodjob_mp.db.job_store import utcnow
    from goodjob_mp.pauses_cli import _connection

    if batch_id is not None:
        try:
            wanted = uuid.UUID(batch_id)
        except ValueError:
            raise click.BadParameter(
                f"{batch_id!r} is not a batch id", param_hint="'--id'"
            ) from None
        with _connection(ctx) as conn:
            row = batches.find(conn, wanted)
            jobs = batches.batch_jobs(conn, wanted, utcnow()) if row else []
        if row is None:
            raise click.ClickException(f"no batch with id {wanted}")
        state = batches.batch_state(row.enqueued_at, row.discarded_at, row.finished_at)
        click.echo(f"batch {row.id} {state} {row.description or ''}".rstrip())
        for name in (
            "on_finish",
            "on_success",
            "on_discard",
            "enqueued_at",
            "jobs_finished_at",
            "discarded_at",
            "finished_at",
        ):
            value = getattr(row, name)
            if value is not None:
                click.echo(f"  {name}: {value}")
        for job in jobs:
            kind = "callback" if job.callback else "job"
            click.echo(f"  {kind:<8} {job.id} {job.state:<9} {job.job_class}")
        return
    with _connection(ctx) as conn:
        rows = batches.list_batches(conn, limit)
    if not rows:
        click.echo("no batches")
        return
    table = [_HEADER] + [
        (
            str(r.id),
            r.state,
            str(r.jobs),
            str(r.finished),
            str(r.discarded),
            str(r.callbacks),
            r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            r.description or "",
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(_HEADER) - 1)]
    for line in table:
        click.echo(
            "  ".join(cell.ljust(w) for cell, w in zip(line[:-1], widths, strict=True))
            + "  "
            + line[-1]
        )


def register(group: click.Group) -> None:
    group.add_command(list_batches)
