"""The shipped systemd units: the settings the supervisor relies on, and `systemd-analyze verify`.

verify insists that ExecStart= names an executable that exists, and the real path
(/usr/local/bin/goodjob-supervisor) is not installed on a test machine; so each unit is copied
to a temporary directory with ExecStart= pointing at an executable that does exist, and verified
there. Everything else, User=goodjob included (verify does not look the user up), is checked as
shipped. Any line of verify's output that mentions our unit fails the test, warnings included.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[1] / "systemd"
UNIT_NAMES = ["goodjob-supervisor.service", "goodjob-supervisor@.service"]

# goodjob-supervisor's default --shutdown-timeout; TimeoutStopSec must leave room above it.
DEFAULT_SHUTDOWN_TIMEOUT = 25


def _settings(name: str) -> dict[str, list[str]]:
    """Key -> values of a unit file, ignoring sections (our keys are unique across them)."""
    settings: dict[str, list[str]] = {}
    for line in (UNITS / name).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        settings.setdefault(key.strip(), []).append(value.strip())
    return settings


@pytest.mark.parametrize("name", UNIT_NAMES)
def test_unit_settings(name: str) -> None:
    s = _settings(name)
    one = {key: values[-1] for key, values in s.items()}
    assert one["Type"] == "notify"
    assert one["NotifyAccess"] == "main"
    assert one["ExecStart"].startswith("/usr/local/bin/goodjob-supervisor")
    assert "--daemonize" not in one["ExecStart"] and "--pidfile" not in one["ExecStart"]
    assert one["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert one["KillMode"] == "mixed"
    assert one["KillSignal"] == "SIGTERM"
    assert int(one["TimeoutStopSec"]) > DEFAULT_SHUTDOWN_TIMEOUT
    assert int(one["WatchdogSec"]) == 30
    assert one["Restart"] == "on-failure"
    assert int(one["RestartSec"]) > 0
    assert one["User"] == "goodjob"
    assert one["OOMPolicy"] == "continue"
    assert "AF_UNIX" in one["RestrictAddressFamilies"]  # Postgres' Unix socket, NOTIFY_SOCKET
    assert one["WantedBy"] == "multi-user.target"


def test_template_reads_the_instance_environment_file() -> None:
    assert _settings("goodjob-supervisor@.service")["EnvironmentFile"] == ["/etc/goodjob/%i.env"]
    assert _settings("goodjob-supervisor.service")["EnvironmentFile"] == [
        "-/etc/goodjob/goodjob-supervisor.env"
    ]


@pytest.mark.parametrize("name", UNIT_NAMES)
def test_systemd_analyze_verify(name: str, tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed")
    text = (UNITS / name).read_text()
    stand_in = shutil.which("true") or "/bin/true"
    text, count = re.subn(r"(?m)^ExecStart=\S+", f"ExecStart={stand_in}", text)
    assert count == 1
    unit = tmp_path / name
    unit.write_text(text)
    result = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    output = (result.stdout + result.stderr).splitlines()
    # A template is verified as an instance (goodjob-supervisor@<something>.service).
    ours = [line for line in output if "goodjob-supervisor" in line]
    assert ours == [], "\n".join(ours)
    assert result.returncode == 0, "\n".join(output)


def test_verify_would_catch_a_mistake(tmp_path: Path) -> None:
    # Guards the test above: verify does complain about a bad key in our unit, on this machine.
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed")
    text = (UNITS / "goodjob-supervisor.service").read_text()
    text = re.sub(r"(?m)^ExecStart=\S+", "ExecStart=/bin/true", text)
    unit = tmp_path / "goodjob-supervisor.service"
    unit.write_text(text.replace("KillMode=mixed", "KillMode=mixed\nKilMode=typo"))
    result = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert "KilMode" in result.stdout + result.stderr
