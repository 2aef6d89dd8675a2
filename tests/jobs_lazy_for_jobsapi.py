"""Imported only on demand by tests/test_job_class_imports.py (never imported elsewhere)."""

import goodjob_mp as gj


class LazyJob(gj.Job):
    def perform(self) -> None:
        pass
