"""goodjob_mp: Postgres-backed background jobs for Python, modelled on Ruby's GoodJob.

The public API, re-exported from the modules that own it::

    import goodjob_mp as gj

    @gj.job(queue="mail")
    def send_welcome(user_id: int) -> None: ...

    send_welcome.perform_later(42)

``start_async``, ``shutdown`` and ``restart`` (async mode) load the worker on first use, so a
process that only enqueues never imports it (async mode's own start at the first enqueue in a
web server process imports it then: ``goodjob_mp.async_autostart``).
"""

from typing import TYPE_CHECKING, Any

# ``gj.enqueue("RubyMailer", [42], queue="mailers")`` is the module goodjob_mp.enqueue itself,
# made callable (see the end of that module): a function of that name here would hide the
# submodule from attribute access (``goodjob_mp.enqueue.bulk``, monkeypatch paths).
from goodjob_mp import async_autostart, enqueue
from goodjob_mp.config import ConfigError, Settings, configure, current_settings, load_settings
from goodjob_mp.db.connection import DatabaseUnavailableError
from goodjob_mp.db.job_reads import JobExecution, JobInfo, find
from goodjob_mp.db.migrate import SchemaOutdatedError
from goodjob_mp.enqueue import EnqueuedJob, bulk, flush_enqueue_events, using_connection
from goodjob_mp.events import subscribe
from goodjob_mp.execution import current_thread_running, current_thread_shutting_down
from goodjob_mp.features.batches import Batch, BatchNotFoundError
from goodjob_mp.features.concurrency import Concurrency
from goodjob_mp.inline import perform_inline
from goodjob_mp.jobs import (
    INFINITE,
    DiscardOn,
    Job,
    JobDefinitionError,
    RetryOn,
    UnknownJobClassError,
    job,
    rescue_from,
)
from goodjob_mp.pauses_api import PauseError, Pauses, pause, pauses, unpause
from goodjob_mp.serialization import DeserializationError, GlobalID, SerializationError
from goodjob_mp.timeouts import JobTimeoutError

if TYPE_CHECKING:
    from goodjob_mp.modes import restart, shutdown, start_async

enqueue.on_async_enqueue = async_autostart.on_enqueue

__version__ = "0.1.0"

__all__ = [
    "INFINITE",
    "Batch",
    "BatchNotFoundError",
    "Concurrency",
    "ConfigError",
    "DatabaseUnavailableError",
    "DeserializationError",
    "DiscardOn",
    "EnqueuedJob",
    "GlobalID",
    "PauseError",
    "Pauses",
    "Job",
    "JobDefinitionError",
    "JobExecution",
    "JobInfo",
    "JobTimeoutError",
    "RetryOn",
    "SchemaOutdatedError",
    "SerializationError",
    "Settings",
    "UnknownJobClassError",
    "bulk",
    "configure",
    "current_settings",
    "current_thread_running",
    "current_thread_shutting_down",
    "enqueue",
    "find",
    "flush_enqueue_events",
    "job",
    "load_settings",
    "pause",
    "pauses",
    "perform_inline",
    "rescue_from",
    "restart",
    "shutdown",
    "start_async",
    "subscribe",
    "unpause",
    "using_connection",
]


def __getattr__(name: str) -> Any:
    # PEP 562: the worker (threads, LISTEN, batching) is imported only by processes that run one.
    if name in ("start_async", "shutdown", "restart"):
        from goodjob_mp import modes

        return getattr(modes, name)
    raise AttributeError(f"module 'goodjob_mp' has no attribute {name!r}")
