"""Import structure (issue 16.5): ``import goodjob_mp`` does not load the worker, and no
module-level import cycle exists (scripts/check_import_cycles.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import check_import_cycles  # noqa: E402


def test_import_goodjob_mp_does_not_import_the_worker():
    code = (
        "import json, sys, goodjob_mp;"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('goodjob_mp'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    loaded = json.loads(out)
    assert "goodjob_mp.inline" in loaded
    assert not [m for m in loaded if m.startswith(("goodjob_mp.worker", "goodjob_mp.modes"))]


def test_async_mode_is_still_reachable_from_the_package():
    import goodjob_mp
    from goodjob_mp import modes

    assert goodjob_mp.start_async is modes.start_async
    assert goodjob_mp.shutdown is modes.shutdown


def test_no_module_level_import_cycles():
    package = ROOT / "goodjob_mp"
    assert check_import_cycles.find_cycles(check_import_cycles.import_graph(package)) == []


def test_the_worker_is_in_no_cycle_even_through_lazy_imports():
    """The old chain jobs -> enqueue -> modes -> worker -> execution -> jobs is gone."""
    for path in check_import_cycles.lazy_cycles(ROOT / "goodjob_mp"):
        assert "goodjob_mp.worker" not in path and "goodjob_mp.modes" not in path, path


def test_the_checker_finds_a_cycle(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg import b\n")
    (pkg / "b.py").write_text("import pkg.a\n\ndef f():\n    from pkg import c\n")
    (pkg / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\n"
    )
    assert check_import_cycles.find_cycles(check_import_cycles.import_graph(pkg)) == [
        ["pkg.a", "pkg.b"]
    ]
    assert check_import_cycles.main(["x", str(pkg)]) == 1
