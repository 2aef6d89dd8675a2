"""A job_class read from a row imports code only under the --app packages or job_packages."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from goodjob_mp.jobs import UnknownJobClassError, importable_packages, lookup, may_import

ROOT = Path(__file__).resolve().parent.parent


def test_importable_packages_and_may_import():
    assert importable_packages("myapp.jobs", ("billing",)) == ("myapp", "billing")
    assert importable_packages(None) == ()
    assert may_import("myapp.jobs.mail", ("myapp",))
    assert may_import("myapp", ("myapp",))
    assert not may_import("myapplication.jobs", ("myapp",))
    assert not may_import("this", ("myapp",))


def test_lookup_outside_the_allowed_packages_does_not_import():
    with pytest.raises(UnknownJobClassError, match="job_packages"):
        lookup("json.tool.X", import_under=("myapp",))


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_row_naming_this_x_does_not_import_this(db):
    # In a fresh interpreter, so that nothing else has imported `this` (it prints the Zen).
    result = _run(
        """
        import sys, uuid
        import goodjob_mp as gj
        from goodjob_mp.config import load_settings
        from goodjob_mp.db.connection import thread_connection
        from goodjob_mp.db.job_store import ClaimedJob, utcnow
        from goodjob_mp.execution import perform

        settings = load_settings({"app": "tests.jobs_for_tests"})
        job_id = uuid.uuid4()
        claimed = ClaimedJob(job_id, job_id, "this.x", "default", 0,
            {"job_class": "this.x", "arguments": []}, utcnow(), None, 1, None, 0)
        result = perform(claimed, settings)
        assert "this" not in sys.modules, "the row imported `this`"
        print(result.outcome, result.error)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "Zen of Python" not in result.stdout
    assert "UnknownJobClassError" in result.stdout


def test_a_module_under_the_app_package_or_job_packages_is_imported_on_demand(db):
    result = _run(
        """
        import sys, uuid
        from goodjob_mp.config import load_settings
        from goodjob_mp.db.job_store import ClaimedJob, utcnow
        from goodjob_mp.execution import perform

        name = "tests.jobs_lazy_for_jobsapi.LazyJob"
        def claimed():
            job_id = uuid.uuid4()
            return ClaimedJob(job_id, job_id, name, "default", 0,
                {"job_class": name, "arguments": []}, utcnow(), None, 1, None, 0)

        outside = perform(claimed(), load_settings({"app": "goodjob_mp.demo"}))
        assert "tests.jobs_lazy_for_jobsapi" not in sys.modules
        assert outside.outcome == "discarded", outside
        listed = perform(claimed(), load_settings({"job_packages": ("tests",)}))
        assert listed.outcome == "succeeded", listed
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_the_app_package_allows_its_modules():
    result = _run(
        """
        from goodjob_mp.jobs import lookup, importable_packages
        allowed = importable_packages("tests.jobs_for_tests")
        cls = lookup("tests.jobs_lazy_for_jobsapi.LazyJob", import_under=allowed)
        print(cls.__name__)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "LazyJob"


def test_job_packages_from_the_environment(monkeypatch):
    from goodjob_mp.config import ConfigError, load_settings

    monkeypatch.setenv("GOOD_JOB_JOB_PACKAGES", "billing, mail")
    assert load_settings().job_packages == ("billing", "mail")
    monkeypatch.delenv("GOOD_JOB_JOB_PACKAGES")
    with pytest.raises(ConfigError, match="job_packages"):
        load_settings({"job_packages": "billing"})
