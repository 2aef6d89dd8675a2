"""A plain clone, with nothing beside it, must carry everything its tests and docs need."""

from __future__ import annotations

from pathlib import Path

from tests.reference import REFERENCE_DIR

ROOT = Path(__file__).resolve().parents[1]


def test_goodjob_reference_rows_are_inside_the_repository() -> None:
    assert ROOT in REFERENCE_DIR.resolve().parents
    for table in ("good_jobs", "good_job_executions", "good_job_processes", "good_job_settings"):
        assert (REFERENCE_DIR / f"{table}.jsonl").stat().st_size > 0
    assert (REFERENCE_DIR / "schema.sql").exists()


def test_readme_and_docs_never_point_outside_the_repository() -> None:
    texts = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]
    offenders = [str(p.relative_to(ROOT)) for p in texts if "../shared" in p.read_text()]
    assert offenders == []
