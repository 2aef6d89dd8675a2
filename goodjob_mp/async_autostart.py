"""When ``execution_mode = "async"`` starts the in-process workers by itself.

As GoodJob's ``:async``: jobs run in threads of the web server process, and only there; in any
other process (a shell, a migration, a script, the supervisor and its children) async acts as
``external`` and the jobs wait for a worker. GoodJob starts the executors when Rails has booted;
Python has no such boot hook, so they start at this process's first enqueue (after the row is
written), and ``goodjob_mp.start_async()`` starts them at boot for apps that enqueue nothing
themselves (call it from a lifespan or post-fork hook). After a fork, the first enqueue in the
new process starts its own workers (the parent's threads do not exist there); ``restart()``
does so eagerly, in a pre-forking server's post-fork hook.

A web server process is recognised by the server's own modules being imported (the list
below): a module an app never imports just to be served. Anything else serving the app (e.g.
``flask run``, which cannot be told from a ``flask shell``) calls ``start_async()`` itself.
Pure policy in ``should_start``; the import of the worker is lazy, so a process that only
enqueues never loads it.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Container

log = logging.getLogger("goodjob_mp.modes")

# Modules present only in a process that is serving requests (master or forked worker).
WEB_SERVER_MODULES = (
    "gunicorn.arbiter",
    "uvicorn.server",
    "hypercorn.run",
    "waitress.server",
    "daphne.server",
    "uwsgi",  # built into uWSGI's embedded interpreter
    "mod_wsgi",  # built into Apache mod_wsgi
    "django.core.servers.basehttp",  # manage.py runserver
    "wsgiref.simple_server",
    "cheroot.wsgi",
    "bjoern",
    "meinheld.server",
)
# The supervisor and the children it forks run jobs already: never start more workers there.
SUPERVISOR_MODULE = "goodjob_mp.supervisor.arbiter"

_tried_pid: int | None = None
_lock = threading.Lock()


def _new_lock() -> None:
    global _lock
    _lock = threading.Lock()  # a lock held by a thread of the parent stays held in a child


os.register_at_fork(after_in_child=_new_lock)


def in_web_server(modules: Container[str]) -> bool:
    return any(name in modules for name in WEB_SERVER_MODULES)


def should_start(execution_mode: str, modules: Container[str]) -> bool:
    """Whether a process with these modules imported starts async workers on its own."""
    return execution_mode == "async" and in_web_server(modules) and SUPERVISOR_MODULE not in modules


def on_enqueue() -> None:
    """After an enqueue in async mode: start this process's workers, once per process."""
    global _tried_pid
    pid = os.getpid()
    if _tried_pid == pid:
        return
    with _lock:
        if _tried_pid == pid:
            return
        _tried_pid = pid
        from goodjob_mp.config import current_settings

        settings = current_settings()
        if not should_start(settings.execution_mode, sys.modules):
            log.debug("execution_mode async outside a web server: jobs wait for a worker")
            return
        from goodjob_mp import modes

        try:
            workers = modes.start_async(settings)
        except Exception:
            # Enqueueing worked; only running the jobs here did not: say so, once.
            log.exception(
                "execution_mode async: starting the in-process workers failed; jobs wait "
                "for a worker (goodjob-supervisor) or a later goodjob_mp.restart()"
            )
            return
        log.info(
            "execution_mode async: started %d in-process worker(s) in web server process %d",
            len(workers),
            pid,
        )
