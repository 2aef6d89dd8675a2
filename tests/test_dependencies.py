"""The core package does not use psycopg_pool (its enqueue pool is goodjob_mp.db.connection's,
fork-safe and thread-free); only the dashboard does, so psycopg_pool is in the ``web`` extra."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "goodjob_mp"

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = None


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_only_the_dashboard_imports_psycopg_pool():
    users = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if "psycopg_pool" in _imports(path)
    )
    assert users and all(u.startswith("web/") for u in users), users


def test_psycopg_pool_is_a_web_extra_not_a_core_dependency():
    if tomllib is None:
        return
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = [d.split(">")[0].split("[")[0].replace("-", "_") for d in project["dependencies"]]
    assert "psycopg_pool" not in names
    web = [d.split(">")[0].replace("-", "_") for d in project["optional-dependencies"]["web"]]
    assert "psycopg_pool" in web
