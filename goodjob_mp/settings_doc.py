"""The settings reference (docs/settings.md): what each setting of ``config.Settings`` means,
and the table generated from it and from the settings' own metadata.

Names, defaults and environment variables come from ``goodjob_mp.config`` and the command-line
flags from the ``goodjob-supervisor`` click commands, so only the meanings are written here.
Regenerate the page's table with ``python3 -m goodjob_mp.settings_doc --write``;
tests/test_settings_doc.py fails when a setting has no meaning here or the page is stale.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

from goodjob_mp.config import Settings, env_name

# One line per setting: what it does, its valid values, what -1 / false / None mean.
MEANINGS: dict[str, str] = {
    "enable_metrics": "Serve Prometheus `/metrics` on the probe server when `prometheus_client` "
    "is installed (the `metrics` extra); false: no metrics files, no route "
    "([metrics.md](metrics.md)).",
    "async_concurrency": "Per pool: how many `async def` jobs may run at once on the pool's event "
    "loop; an executor waits for a free slot before taking more work "
    "([asyncio.md](asyncio.md)).",
    "database_url": "PostgreSQL URL or conninfo. Also read from `DATABASE_URL`. None: every "
    "command refuses, naming the variables (unless `embedded`).",
    "execution_mode": "`external`: enqueue only, `goodjob-supervisor` runs the jobs; `async`: "
    "a web server process runs them in its own threads, started at its first enqueue "
    "([api.md](api.md#execution-modes)); `inline`: `perform_later` performs at once (tests). "
    "The supervisor always runs as `external`.",
    "queues": "The queue string: pools separated by `;`, each `queues:threads` "
    "(`mail:2;billing,-low:1;*`); one child process per pool.",
    "max_threads": "Threads of a pool whose entry has no `:N` (1-1000, the same limit as `:N`).",
    "poll_interval": "Seconds between polls for due jobs (the safety net under LISTEN/NOTIFY); "
    "-1 disables polling.",
    "max_cache": "Future scheduled jobs each pool keeps in memory to start on time without "
    "polling; 0 disables the cache.",
    "shutdown_timeout": "Seconds running jobs get on TERM/INT before SIGKILL; -1 waits forever, "
    "0 kills at once.",
    "enable_listen_notify": "Wake on `LISTEN good_job` when a job is enqueued; false: polling "
    "only.",
    "enable_cron": "Run the cron entries (one leader per database enqueues them).",
    "cron": "The cron entries: key -> `{cron, class, args, kwargs, set, ...}` "
    "([cron.md](cron.md)); from the environment as JSON.",
    "cron_graceful_restart_period": "Seconds: a new cron leader enqueues the runs missed within "
    "this period; None: missed runs are skipped (and logged).",
    "preserve_job_records": "Keep finished jobs: true; false deletes them; `on_unhandled_error` "
    "keeps only those that failed; or a callable given the job's class, queue, outcome and "
    "error.",
    "retry_on_unhandled_error": "Retry a job that raised an error no `retry_on`/`discard_on`/"
    "`rescue_from` handles (with polynomial back-off) instead of finishing it as failed.",
    "on_thread_error": "Callable given every unhandled job error (configure() only; no "
    "environment variable).",
    "cleanup_preserved_jobs_before_seconds_ago": "Age in seconds after which finished jobs "
    "are deleted by cleanup; -1 disables (nothing is deleted).",
    "cleanup_interval_jobs": "Clean up after this many finished jobs per worker; -1 after "
    "every batch of results; false disables.",
    "cleanup_interval_seconds": "Clean up this often per worker, in seconds; -1 after every "
    "batch of results; false disables.",
    "cleanup_discarded_jobs": "Whether cleanup also deletes jobs that finished with an error "
    "(discarded); false keeps them.",
    "idle_timeout": "Exit cleanly after this many seconds without a job performed; None: never.",
    "queue_select_limit": "Most jobs one claim may take; None: no limit beyond the buffer.",
    "max_memory": "Per child, in MB (or `512M`, `2G`): over it the child stops claiming, gets "
    "5 s (at most `shutdown_timeout`) to finish, is killed and replaced. None: no limit.",
    "probe_port": "Port of the health probe (`/`, `/status`, `/status/started`, "
    "`/status/connected`); 0 picks a free one; None: no probe.",
    "probe_bind": "Address the probe listens on; `0.0.0.0` or `::` for every interface.",
    "daemonize": "Detach into the background (refused under systemd's Type=notify).",
    "pidfile": "Write the supervisor's pid here (atomically; a stale file is replaced).",
    "log_file": "Append output here (with `daemonize`, instead of /dev/null); USR1 reopens it.",
    "app": "Module that defines the jobs (may call `configure()`); imported in each child "
    "after the fork unless `preload`.",
    "preload": "Import `app` once in the supervisor before forking (copy-on-write sharing); "
    "HUP then restarts children on the code loaded at start.",
    "state_dir": "Folder of the embedded PostgreSQL (`embedded` only).",
    "max_interrupts": "A job whose process died this many times while performing it is "
    "discarded instead of run again.",
    "dead_process_timeout": "Seconds: a process whose heartbeat is older and whose advisory "
    "lock is gone is dead, and its jobs run again; -1 disables the sweep.",
    "heartbeat_interval": "Seconds between refreshes of each process's `good_job_processes` "
    "row; -1 disables (written at start only; liveness by its lock).",
    "null_scheduled_check_interval": "Seconds between the supervisor's checks for unfinished "
    "jobs with a NULL `scheduled_at` (never claimed, as in GoodJob): each is logged once with "
    "the fix ([operations.md](operations.md)); -1 disables the check.",
    "child_timeout": "Kill and replace a worker child whose status reports stop for this many "
    "seconds (>= 2); its jobs run again as interrupted. -1 disables.",
    "claim_buffer": "Most jobs a pool claims ahead of its free threads when jobs are short.",
    "worker_gc_threshold": "In each worker child: Python's young-generation garbage-collection "
    "threshold (`gc.set_threshold`), after freezing (`gc.freeze`) what start-up allocated, so "
    "short jobs do not pay a collection every ~50 jobs; 0 leaves Python's collector alone. A "
    "worker inside your own process (async mode) never changes it.",
    "goodjob_indexes": "`migrate` also adds GoodJob's full index set (for a database a Rails "
    "GoodJob also works on).",
    "naive_datetimes": "A naive `datetime` argument: `refuse`, `utc` (written as UTC) or "
    "`keep` (a goodjob_mp-only tag).",
    "decimal_format": "How a `Decimal` argument is written: `big_decimal` (Rails 7.1+) or "
    "`string` (Active Job 6.1/7.0).",
    "active_job_compatible": "Refuse arguments only goodjob_mp can read (UUID, tuple, set, "
    "kept naive datetimes), so Rails can perform every job.",
    "job_packages": "Packages (besides `app`'s) whose modules a stored `job_class` may import "
    "(comma-separated in the environment).",
    "log_level": "Level of the goodjob_mp loggers: debug, info, warning, error, critical.",
    "embedded": "With no database URL, start a private PostgreSQL in `state_dir` (demos only).",
    "enqueue_pool_size": "Most connections enqueue keeps open per process (threads share them).",
    "on_unknown_job_class": "A job whose class this process cannot import: `skip` leaves it to "
    "a process that can; `discard` discards it with an error.",
    "advisory_locks": "Take GoodJob's per-job advisory lock while a job runs: `auto` (while a "
    "GoodJob process shares the database), `always` or `never`.",
}

# Settings set by a sub-command's own flag (not the global flag of the same name).
SUBCOMMAND_FLAGS: dict[str, str] = {
    "cleanup_preserved_jobs_before_seconds_ago": "`cleanup-preserved-jobs --before-seconds-ago`",
    "cleanup_discarded_jobs": "`cleanup-preserved-jobs --keep-discarded` (false)",
    "goodjob_indexes": "`migrate --goodjob-indexes`",
}
# Settings whose environment variable is read differently.
ENV_NOTES: dict[str, str] = {
    "database_url": "`GOOD_JOB_DATABASE_URL`, `DATABASE_URL`",
    "cron": "`GOOD_JOB_CRON` (JSON)",
    "on_thread_error": "-",
}
BEGIN = "<!-- settings table: generated by python3 -m goodjob_mp.settings_doc --write -->"
END = "<!-- end of settings table -->"
PAGE = Path(__file__).resolve().parent.parent / "docs" / "settings.md"


def _default(field: dataclasses.Field[Any]) -> str:
    missing = field.default is dataclasses.MISSING
    value = field.default_factory() if missing else field.default  # type: ignore[misc,operator]
    if value is None:
        return "None"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if field.name == "cleanup_preserved_jobs_before_seconds_ago":
        return f"{value} (14 days)"
    if isinstance(value, (tuple, dict)) and not value:
        return "empty"
    return f"`{value}`" if isinstance(value, str) else str(value)


def global_flags() -> dict[str, str]:
    """Setting name -> the ``goodjob-supervisor`` flag(s) that set it."""
    import click

    from goodjob_mp.cli import main

    flags: dict[str, str] = {}
    for param in main.params:
        if isinstance(param, click.Option) and param.name:
            flags[param.name] = " / ".join(f"`{o}`" for o in [*param.opts, *param.secondary_opts])
    return flags


def table() -> str:
    flags = global_flags()
    rows = [
        "| Setting | Environment | Flag | Default | Meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for field in dataclasses.fields(Settings):
        name = field.name
        env = ENV_NOTES.get(name, f"`{env_name(name)}`")
        flag = SUBCOMMAND_FLAGS.get(name) or flags.get(name) or "-"
        meaning = MEANINGS[name].replace("|", "\\|")
        rows.append(f"| `{name}` | {env} | {flag} | {_default(field)} | {meaning} |")
    return "\n".join(rows) + "\n"


def render(page: str) -> str:
    """``page`` with the text between the markers replaced by the current table."""
    head, rest = page.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table()}{END}{tail}"


def main(argv: list[str]) -> int:
    current = PAGE.read_text()
    fresh = render(current)
    if "--write" in argv:
        PAGE.write_text(fresh)
        return 0
    if fresh != current:
        print(f"{PAGE} is stale: run python3 -m goodjob_mp.settings_doc --write", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
