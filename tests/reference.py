"""Where the rows captured from the real GoodJob live: ``shared/goodjob-reference`` beside the
checkout (as CI lays it out), or the folder named by GOOD_JOB_REFERENCE_DIR."""

from __future__ import annotations

import os
from pathlib import Path

REFERENCE_DIR = Path(
    os.environ.get("GOOD_JOB_REFERENCE_DIR")
    or Path(__file__).resolve().parents[2] / "shared" / "goodjob-reference"
)
