"""goodjob_mp: Postgres-backed background jobs for Python, modelled on Ruby's GoodJob.

The public API, re-exported from the modules that own it::

    import goodjob_mp as gj

    @gj.job(queue="mail")
    def send_welcome(user_id: int) -> None: ...

    send_welcome.perform_later(42)
"""

from goodjob_mp.config import ConfigError, Settings, configure, current_settings, load_settings
from goodjob_mp.db.connection import DatabaseUnavailableError
from goodjob_mp.db.migrate import SchemaOutdatedError
from goodjob_mp.enqueue import EnqueuedJob, bulk, using_connection
from goodjob_mp.events import subscribe
from goodjob_mp.execution import current_thread_shutting_down
from goodjob_mp.jobs import INFINITE, DiscardOn, Job, RetryOn, UnknownJobClassError, job
from goodjob_mp.modes import perform_inline, shutdown, start_async
from goodjob_mp.pauses_api import PauseError, Pauses, pause, pauses, unpause
from goodjob_mp.serialization import DeserializationError, GlobalID, SerializationError

__version__ = "0.1.0"

__all__ = [
    "INFINITE",
    "ConfigError",
    "DatabaseUnavailableError",
    "DeserializationError",
    "DiscardOn",
    "EnqueuedJob",
    "GlobalID",
    "PauseError",
    "Pauses",
    "Job",
    "RetryOn",
    "SchemaOutdatedError",
    "SerializationError",
    "Settings",
    "UnknownJobClassError",
    "bulk",
    "configure",
    "current_settings",
    "current_thread_shutting_down",
    "job",
    "load_settings",
    "pause",
    "pauses",
    "perform_inline",
    "shutdown",
    "start_async",
    "subscribe",
    "unpause",
    "using_connection",
]
