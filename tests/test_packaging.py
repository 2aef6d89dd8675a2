"""The wheel a release would ship (issue 16.7): LICENSE, py.typed, SPDX license metadata, and
psycopg's binary build as an extra rather than a requirement.

Building needs setuptools >= 77 in pip's isolated build environment (fetched from the package
index), so this test is marked slow (about 30 s); it skips if that build environment cannot be
had. The source is copied first, so the build leaves nothing in the checkout."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_metadata_in_pyproject():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert project["authors"] == [{"name": "goodjob_mp contributors"}]
    assert "Typing :: Typed" in project["classifiers"]
    assert not [c for c in project["classifiers"] if c.startswith("License ::")]  # SPDX instead
    assert "psycopg>=3.1" in project["dependencies"]
    assert not [d for d in project["dependencies"] if "binary" in d]
    assert project["optional-dependencies"]["binary"] == ["psycopg[binary]>=3.1"]
    assert (ROOT / "goodjob_mp" / "py.typed").is_file()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_wheel_ships_license_and_py_typed(tmp_path):
    source = tmp_path / "src"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".goodjob*", "build", "dist", "*.egg-info", "__pycache__", ".*_cache"
        ),
    )
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(source), "-w", "out"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=540,
    )
    if done.returncode != 0 and "setuptools" in done.stderr and "satisf" in done.stderr:
        pytest.skip(f"no build environment: {done.stderr.strip().splitlines()[-1]}")
    assert done.returncode == 0, done.stderr
    (wheel,) = (tmp_path / "out").glob("goodjob_mp-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        text = archive.read(metadata).decode()
    assert "goodjob_mp/py.typed" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "goodjob_mp/db/migrations/0001_good_job_tables.sql" in names
    assert "License-Expression: MIT" in text
    assert "Requires-Dist: psycopg>=3.1\n" in text
    assert 'Requires-Dist: psycopg[binary]>=3.1; extra == "binary"' in text
