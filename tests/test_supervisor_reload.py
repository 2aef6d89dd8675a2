"""HUP loads new code: the --app is imported in each child after the fork (unless --preload)."""

from __future__ import annotations

import importlib
import os
import signal
import sys

import pytest

from tests import jobs_for_tests as J
from tests.supervising import *  # noqa: F403 - the start and records fixtures
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(120)

APP = """
import goodjob_mp as gj
from tests.jobs_for_tests import record


@gj.job(queue="default")
def which_version(tag: str) -> None:
    record("version", f"{tag}:{VERSION}")


VERSION = "{version}"
"""


@pytest.fixture()
def app_dir(tmp_path, monkeypatch):
    folder = tmp_path / "app"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    return folder


def write_app(folder, name: str, version: str) -> None:
    (folder / f"{name}.py").write_text(APP.replace("{version}", version))


def ups(sup) -> int:
    return sup.output().count("pool(s) are up")


@pytest.mark.parametrize("preload", [False, True])
def test_hup_runs_the_code_on_disk_now_unless_preloaded(start, records, app_dir, preload):
    name = f"reloadapp_{'preload' if preload else 'fresh'}"
    write_app(app_dir, name, "one")
    module = importlib.import_module(name)  # this process only enqueues
    env = {
        "PYTHONPATH": os.pathsep.join([str(app_dir), *sys.path]),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    args = ["--queues=*:1", f"--app={name}"] + (["--preload"] if preload else [])
    sup = start(*args, env=env)
    sup.wait_ready()
    module.which_version.perform_later("before")
    assert wait_for(lambda: J.lines(records, "version") == ["before:one"], 20), sup.output()

    write_app(app_dir, name, "version-two")
    sup.signal(signal.SIGHUP)
    assert wait_for(lambda: ups(sup) == 2, 30), sup.output()
    module.which_version.perform_later("after")
    assert wait_for(lambda: len(J.lines(records, "version")) == 2, 20), sup.output()
    expected = "after:one" if preload else "after:version-two"
    assert J.lines(records, "version")[1] == expected
    sup.signal(signal.SIGTERM)
    assert sup.wait_exit() == 0


def test_an_app_that_cannot_be_imported_stops_the_supervisor_with_one_clear_line(start):
    sup = start("--queues=*:1", "--app=no_such_module_anywhere")
    assert sup.wait_exit(60) == 1
    out = sup.output()
    assert "failed to start 3 times" in out
    assert "--app 'no_such_module_anywhere' could not be imported" in out
