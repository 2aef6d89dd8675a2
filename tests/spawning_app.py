"""A test --app whose jobs start subprocesses (``sleep 1000``) and record ``<tag> <pid>``."""

from __future__ import annotations

import subprocess

import goodjob_mp as gj
from tests.jobs_for_tests import *  # noqa: F403 - the other jobs
from tests.jobs_for_tests import record


@gj.job(queue="default")
def spawn_sleeper(tag: str, wait: bool) -> None:
    proc = subprocess.Popen(["sleep", "1000"])
    record("sleeper", f"{tag} {proc.pid}")
    if wait:
        proc.wait()
