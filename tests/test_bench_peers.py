"""scripts/bench_peers.py (goodjob_mp beside pgqueuer): its help needs no pgqueuer, it names
what is missing when pgqueuer is absent, and the test extra does not bring pgqueuer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "bench_peers.py"

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = None


def _run(*code_or_args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, *code_or_args], env=env, capture_output=True, text=True, timeout=60
    )


def test_help_describes_both_sides_without_touching_a_database():
    done = _run(str(SCRIPT), "--help")
    assert done.returncode == 0, done.stderr
    assert "pgqueuer" in done.stdout and "--pgq-batch" in done.stdout


def test_without_pgqueuer_it_exits_naming_the_missing_package():
    # An entry of None in sys.modules makes `import pgqueuer` raise ImportError, as when it is
    # not installed, whether or not it is on this machine.
    code = (
        "import runpy, sys; sys.modules['pgqueuer'] = None; "
        f"sys.argv = [{str(SCRIPT)!r}, '--quick']; runpy.run_path({str(SCRIPT)!r}, "
        "run_name='__main__')"
    )
    done = _run("-c", code)
    assert done.returncode != 0
    assert "pgqueuer not installed" in done.stderr
    assert "pgqueuer==1.6.0" in done.stderr


def test_pgqueuer_is_in_the_bench_extra_only():
    if tomllib is None:
        return
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert "pgqueuer==1.6.0" in extras["bench"]
    assert not any("pgqueuer" in d for d in extras["test"])
    assert not any("bench" in d for d in extras["test"])
