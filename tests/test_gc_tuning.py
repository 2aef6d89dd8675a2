"""worker_gc_threshold: a supervisor's worker child freezes what its start-up allocated and
collects its young generation less often; 0 leaves Python's collector alone, and nothing but a
child changes it (a worker inside the caller's own process never does)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from goodjob_mp.config import ConfigError, load_settings
from tests import jobs_for_tests as J
from tests.supervising import *  # noqa: F403 - the start and records fixtures
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(90)

PROBE = """
import gc, sys
from goodjob_mp.supervisor.gc_tuning import tune_for_worker
before = gc.get_threshold()
tune_for_worker(int(sys.argv[1]))
print(*before, *gc.get_threshold(), gc.get_freeze_count())
"""
PYTHONS_OWN = subprocess.run(
    [sys.executable, "-c", "import gc; print(gc.get_threshold()[0])"],
    capture_output=True,
    text=True,
    check=True,
).stdout.strip()


def _tuned(threshold: int) -> list[int]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(threshold)], capture_output=True, text=True, check=True
    )
    return [int(x) for x in out.stdout.split()]


def test_tuning_freezes_start_up_objects_and_sets_the_young_threshold():
    *before, young, older, oldest, frozen = _tuned(10_000)
    assert young == 10_000
    assert [older, oldest] == before[1:]  # the older generations keep Python's thresholds
    assert frozen > 1000  # every object the interpreter and its imports made


def test_zero_leaves_the_collector_as_python_set_it():
    *before, young, older, oldest, frozen = _tuned(0)
    assert [young, older, oldest] == before
    assert frozen == 0


def test_a_negative_threshold_is_refused_naming_the_setting():
    with pytest.raises(ConfigError, match="worker_gc_threshold"):
        load_settings({"worker_gc_threshold": -1})


@pytest.mark.parametrize(("setting", "expect_young"), [("2500", 2500), ("0", None)])
def test_a_supervisor_child_performs_jobs_with_the_collector_so_set(
    start, records, db, setting, expect_young
):
    sup = start("--queues=*:1", env={"GOOD_JOB_WORKER_GC_THRESHOLD": setting})
    sup.wait_ready()
    J.report_collector.perform_later()
    assert wait_for(lambda: J.lines(records, "collector")), sup.output()
    young, frozen, app_frozen = (int(x) for x in J.lines(records, "collector")[0].split())
    if expect_young is None:
        assert (young, frozen, app_frozen) == (int(PYTHONS_OWN), 0, 0)
    else:
        assert young == expect_young and frozen > 1000
        assert app_frozen == 1  # tuned after the --app import, so the app's objects are frozen


def test_a_worker_in_the_callers_process_leaves_its_collector_alone(db):
    import gc

    from goodjob_mp.worker.worker import Worker

    before = (gc.get_threshold(), gc.get_freeze_count())
    worker = Worker(load_settings({"max_threads": 1})).start()
    try:
        assert (gc.get_threshold(), gc.get_freeze_count()) == before
    finally:
        assert worker.shutdown(10)
