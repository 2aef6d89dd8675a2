"""The real Ruby GoodJob, for tests that run it beside goodjob_mp (tests/ruby/*.rb).

Needs Ruby with Debian's Rails packages (``.ci/run`` installs them when missing) and GoodJob's
source tree. The source is found, in order, at:

- ``GOOD_JOB_SOURCE``: a directory holding GoodJob's ``lib/``, ``app/`` and ``config/``;
- ``GOOD_JOB_GIT_DIR``: a git directory of bensheldon/good_job, whose ``lib app config`` are
  extracted with ``git archive`` into a temporary directory for the test run;
- the mirror this project's machines keep of that repository (see ``MIRROR_GIT_DIRS``).

The source is never copied into this repository. Where Ruby or the source is missing, the
``goodjob_ruby`` fixture skips its tests with one line saying what is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

RUBY_DIR = Path(__file__).resolve().parent / "ruby"
MIRROR_GIT_DIRS = ("/work/.mirror/bensheldon+good_job/repo",)
RUBY_PACKAGES = (
    "ruby ruby-activejob ruby-activerecord ruby-railties ruby-pg ruby-concurrent ruby-fugit "
    "ruby-thor ruby-zeitwerk"
)
_PROBE = "%w[rails active_record active_job pg fugit concurrent thor zeitwerk].each { require _1 }"


def ruby_missing() -> str | None:
    """Why Ruby cannot run GoodJob here, or None."""
    if shutil.which("ruby") is None:
        return f"ruby is not installed (apt-get install -y {RUBY_PACKAGES})"
    probe = subprocess.run(["ruby", "-e", _PROBE], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        return f"ruby lacks GoodJob's dependencies ({last}); apt-get install -y {RUBY_PACKAGES}"
    return None


def _git_dirs() -> list[str]:
    explicit = os.environ.get("GOOD_JOB_GIT_DIR")
    return [explicit] if explicit else list(MIRROR_GIT_DIRS)


def goodjob_source(into: Path) -> tuple[Path | None, str]:
    """(source dir, description) or (None, why not)."""
    explicit = os.environ.get("GOOD_JOB_SOURCE")
    if explicit:
        if (Path(explicit) / "lib" / "good_job.rb").is_file():
            return Path(explicit), f"GOOD_JOB_SOURCE={explicit}"
        return None, f"GOOD_JOB_SOURCE={explicit} has no lib/good_job.rb"
    for git_dir in _git_dirs():
        if not Path(git_dir).is_dir():
            continue
        into.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "--git-dir", git_dir, "archive", "HEAD", "lib", "app", "config"],
            capture_output=True,
            timeout=120,
        )
        if archive.returncode != 0:
            continue
        subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
        rev = subprocess.run(
            ["git", "--git-dir", git_dir, "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        return into, f"{git_dir}@{rev[:12]}"
    return None, (
        "GoodJob's source is not available: set GOOD_JOB_SOURCE to a checkout of "
        "bensheldon/good_job (or GOOD_JOB_GIT_DIR to its git directory)"
    )


def database_url_for_ruby(conninfo: str) -> str:
    """A postgres:// URL (what Rails' DATABASE_URL takes) for a libpq conninfo string."""
    info = psycopg.conninfo.conninfo_to_dict(conninfo)
    user = urllib.parse.quote(str(info.get("user") or "postgres"))
    password = info.get("password")
    auth = user + (f":{urllib.parse.quote(str(password))}" if password else "")
    host = info.get("host") or "127.0.0.1"
    if str(host).startswith("/"):
        query = urllib.parse.urlencode({"host": host})
        return f"postgres://{auth}@/{info['dbname']}?{query}&port={info.get('port') or 5432}"
    return f"postgres://{auth}@{host}:{info.get('port') or 5432}/{info['dbname']}"


@dataclass
class GoodJobRuby:
    """Runs tests/ruby/*.rb against one database with the real GoodJob."""

    source: Path
    description: str
    database_url: str
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            GOOD_JOB_SOURCE=str(self.source),
            DATABASE_URL=database_url_for_ruby(self.database_url),
            RAILS_ENV="production",
        )
        # GoodJob reads GOOD_JOB_* too: the Python side's settings must not leak into Ruby.
        for key in [k for k in env if k.startswith("GOOD_JOB_") and k != "GOOD_JOB_SOURCE"]:
            del env[key]
        env.update(self.extra_env)
        env.update(extra)
        return env

    def run(self, script: str, *args: str, timeout: float = 120, **env: str) -> str:
        """Run a script to completion; its stdout. A failure raises with Ruby's stderr."""
        done = subprocess.run(
            ["ruby", script, *args],
            cwd=RUBY_DIR,
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise AssertionError(f"ruby {script} {' '.join(args)} failed:\n{done.stderr[-4000:]}")
        return done.stdout

    def start(self, script: str, *args: str, **env: str) -> subprocess.Popen:
        """Start a script in the background (to overlap Rails boots); ``finish`` collects it."""
        return subprocess.Popen(
            ["ruby", script, *args],
            cwd=RUBY_DIR,
            env=self.env(**env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    @staticmethod
    def finish(proc: subprocess.Popen, timeout: float = 120) -> str:
        """Wait for a ``start``ed script; its stdout. A failure raises with Ruby's stderr."""
        out, err = proc.communicate(timeout=timeout)
        if proc.returncode != 0:
            raise AssertionError(f"{' '.join(map(str, proc.args))} failed:\n{err[-4000:]}")
        return out

    def start_cli(self, *args: str, log: Path | None = None, **env: str) -> subprocess.Popen:
        """Start ``good_job start ARGS`` (GoodJob's own CLI) in the background."""
        out = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115
        try:
            return subprocess.Popen(
                ["ruby", "good_job_cli.rb", "start", *args],
                cwd=RUBY_DIR,
                env=self.env(**env),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        finally:
            if log is not None:
                out.close()


_cached: dict[str, tuple[Path | None, str]] = {}


@pytest.fixture(scope="session")
def goodjob_ruby_source() -> tuple[Path, str]:
    if "source" not in _cached:
        why = ruby_missing()
        if why is not None:
            _cached["source"] = (None, why)
        else:
            into = Path(tempfile.mkdtemp(prefix="goodjob-source-"))
            _cached["source"] = goodjob_source(into)
    source, description = _cached["source"]
    if source is None:
        pytest.skip(f"real GoodJob unavailable: {description}")
    return source, description


@pytest.fixture()
def goodjob_ruby(goodjob_ruby_source: tuple[Path, str], database_url: str) -> GoodJobRuby:
    source, description = goodjob_ruby_source
    return GoodJobRuby(source, description, database_url)
