"""Importing the ``--app`` module: in each child after the fork, or once in the supervisor with
``--preload``.

Owns the one way to import the app (the working directory is importable, as ``python -m``
makes it) and the error a person can act on when it fails. Never catches anything but the
import's own failure: an app that raises some other error while importing is a broken app, and
its traceback is what the operator needs.
"""

from __future__ import annotations

import importlib
import os
import sys


class AppImportError(ImportError):
    """The ``--app`` module could not be imported; the message names it and the reason."""


def import_app(app: str) -> None:
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        importlib.import_module(app)
    except ImportError as exc:
        raise AppImportError(
            f"--app {app!r} could not be imported: {exc}; check the module name and that it is "
            "importable from the working directory (or PYTHONPATH)"
        ) from None


def forget_app_modules(app: str) -> list[str]:
    """In a fresh child: drop the app's modules that the supervisor imported anyway (cron's job
    classes are resolved there), so ``import_app`` reads the code on disk now. The app's whole
    top-level package goes, since its modules import each other; our own package never does."""
    top = app.split(".", 1)[0]
    root = app if top == "goodjob_mp" else top
    dropped = [n for n in sys.modules if n == root or n.startswith(root + ".")]
    for name in dropped:
        del sys.modules[name]
    importlib.invalidate_caches()
    return dropped
