"""systemd's notify protocol (sd_notify) in plain Python: READY, STATUS, STOPPING, WATCHDOG.

Owns: reading NOTIFY_SOCKET / WATCHDOG_USEC / WATCHDOG_PID and sending datagrams to the socket.
Never raises from a send (systemd's absence or a full socket must not stop the supervisor: the
error is logged), never blocks (the socket is non-blocking), and never starts a thread.

Without NOTIFY_SOCKET (not started by systemd with Type=notify) every call is a silent no-op.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


class SystemdNotifier:
    """Sends state changes to systemd when it started us with Type=notify."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self._address = _socket_address(env.get("NOTIFY_SOCKET", ""))
        self._watchdog_usec = _positive_int(env.get("WATCHDOG_USEC"))
        self._watchdog_pid = _positive_int(env.get("WATCHDOG_PID"))
        self._sock: socket.socket | None = None
        self._failing = False

    @property
    def enabled(self) -> bool:
        """True when there is a notify socket to send to."""
        return self._address is not None

    def notify(self, **fields: object) -> bool:
        """Send ``KEY=value`` lines (keys upper-cased, True as 1); True if the datagram went out.

        Example: ``notify(ready=True, status="3 pools running")``.
        """
        if self._address is None or not fields:
            return False
        lines = [f"{key.upper()}={_format_value(value)}" for key, value in fields.items()]
        return self._send("\n".join(lines).encode("utf-8", "replace"))

    def ready(self, status: str | None = None) -> bool:
        """READY=1: start-up is done (systemctl start returns, dependants start)."""
        return self.notify(ready=True) if status is None else self.notify(ready=True, status=status)

    def status(self, text: str) -> bool:
        """STATUS=: one line shown by ``systemctl status``."""
        return self.notify(status=text)

    def reloading(self) -> bool:
        """RELOADING=1: a reload (HUP) began; send ``ready()`` when it is done."""
        return self.notify(reloading=True)

    def stopping(self) -> bool:
        """STOPPING=1: shutdown began."""
        return self.notify(stopping=True)

    def watchdog(self) -> bool:
        """WATCHDOG=1: we are alive; send at least every ``watchdog_interval()`` seconds."""
        return self.notify(watchdog=True)

    def watchdog_timeout(self) -> float | None:
        """systemd's WatchdogSec= in seconds, when the watchdog is on for this process."""
        if self._address is None or self._watchdog_usec is None:
            return None
        if self._watchdog_pid is not None and self._watchdog_pid != os.getpid():
            return None  # the setting was meant for another process (e.g. our parent)
        return self._watchdog_usec / 1_000_000

    def watchdog_interval(self) -> float | None:
        """How often to send ``watchdog()``: half the timeout, as sd_watchdog_enabled(3) advises."""
        timeout = self.watchdog_timeout()
        return None if timeout is None else timeout / 2

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _send(self, data: bytes) -> bool:
        assert self._address is not None
        try:
            if self._sock is None:
                self._sock = socket.socket(
                    socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK
                )
            self._sock.sendto(data, self._address)
        except OSError as exc:
            # Log the first failure of a run loudly and the repeats quietly: the watchdog ping
            # would otherwise fill the log every few seconds.
            level = logging.DEBUG if self._failing else logging.WARNING
            log.log(level, "cannot notify systemd at %r: %s", self._address, exc)
            self._failing = True
            return False
        if self._failing:
            log.info("notifying systemd works again")
            self._failing = False
        return True


def _socket_address(value: str) -> bytes | None:
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + os.fsencode(value[1:])  # Linux abstract namespace
    if value.startswith("/"):
        return os.fsencode(value)
    log.warning(
        "NOTIFY_SOCKET=%r is neither a path nor an abstract socket (@name); "
        "systemd notifications are off",
        value,
    )
    return None


def _positive_int(value: str | None) -> int | None:
    if value is None or not value.strip().isdigit():
        return None
    number = int(value)
    return number if number > 0 else None


def _format_value(value: object) -> str:
    if value is True:
        return "1"
    if value is False:
        return "0"
    return " ".join(str(value).splitlines())  # a newline would start a new field
