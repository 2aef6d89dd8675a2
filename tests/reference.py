"""Where the rows captured from the real GoodJob live: ``tests/fixtures/goodjob-reference`` in
this repository (data, committed), or the folder named by GOOD_JOB_REFERENCE_DIR."""

from __future__ import annotations

import os
from pathlib import Path

REFERENCE_DIR = Path(
    os.environ.get("GOOD_JOB_REFERENCE_DIR")
    or Path(__file__).resolve().parent / "fixtures" / "goodjob-reference"
)
