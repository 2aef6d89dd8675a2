"""The HTTP health probe (GoodJob's ProbeServer), served from the supervisor's select loop.

Owns: the listening socket, its client connections, a minimal HTTP/1.0 reader for GET and HEAD
request lines, and the routes:

    /, /status          200 while the process answers at all
    /status/started     200 once the supervisor has started its pools, else 503
    /status/connected   200 while the database is reachable, else 503
    /metrics            Prometheus text format from the ``metrics`` callback (404 without one)
    anything else       404

Never starts a thread and never blocks: every socket is non-blocking, a request larger than
``max_request_bytes`` is refused, and a connection older than ``client_timeout`` is closed by
``expire()``, so a slow or silent client cannot wedge the loop. In a forked child call
``drop_after_fork()``, never ``close()``: the child's copy of an epoll selector is the parent's,
and unregistering there would unregister in the parent too.

Use with ``selectors``::

    probe = ProbeServer(port, status=current_status)
    probe.attach(selector)                  # keeps its sockets registered, data=probe
    ... for key, _ in selector.select(timeout):
            if key.data is probe: probe.handle_ready(key.fileobj)
        probe.expire()

or with ``select.select``: wait on ``probe.sockets()`` and call ``handle_ready`` for each ready one.
"""

from __future__ import annotations

import json
import logging
import selectors
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
_ACCEPTS_PER_CALL = 32


@dataclass
class ProbeStatus:
    """What the probe reports; ``detail`` must be JSON-serialisable (other values become str)."""

    started: bool
    connected: bool
    detail: dict[str, Any] = field(default_factory=dict)


class ProbeServerError(RuntimeError):
    """The probe server could not listen; the message names the setting to change."""


@dataclass
class _Connection:
    sock: socket.socket
    deadline: float
    received: bytearray = field(default_factory=bytearray)
    outgoing: bytes | None = None


class ProbeServer:
    """A non-blocking HTTP probe listening on ``host:port`` (port 0: any free port)."""

    def __init__(
        self,
        port: int,
        host: str = "127.0.0.1",
        *,
        status: Callable[[], ProbeStatus],
        metrics: Callable[[], tuple[str, bytes]] | None = None,
        max_request_bytes: int = 8192,
        client_timeout: float = 5.0,
        max_connections: int = 64,
    ) -> None:
        self._status = status
        # (content type, body) per scrape: see goodjob_mp.metrics.exporter
        self.metrics = metrics
        self._max_request_bytes = max_request_bytes
        self._client_timeout = client_timeout
        self._max_connections = max_connections
        self._connections: dict[socket.socket, _Connection] = {}
        self._selector: selectors.BaseSelector | None = None
        self._selector_data: object = None
        self._listener = _listen(host, port)
        self.host = host
        self.port: int = self._listener.getsockname()[1]

    def fileno(self) -> int:
        """The listening socket's descriptor."""
        return self._listener.fileno()

    def sockets(self) -> tuple[list[socket.socket], list[socket.socket]]:
        """Sockets to wait on, for ``select.select``: (wait until readable, wait until writable)."""
        readers = [self._listener]
        writers: list[socket.socket] = []
        for conn in self._connections.values():
            (writers if conn.outgoing is not None else readers).append(conn.sock)
        return readers, writers

    def attach(self, selector: selectors.BaseSelector, data: object = None) -> None:
        """Keep the listener and every connection registered in ``selector`` with ``data``.

        ``data`` defaults to this server, so the loop can route ``key.data is probe``.
        """
        self._selector = selector
        self._selector_data = self if data is None else data
        selector.register(self._listener, selectors.EVENT_READ, self._selector_data)
        for conn in self._connections.values():
            selector.register(conn.sock, _events(conn), self._selector_data)

    def handle_ready(self, sock: socket.socket) -> None:
        """Make progress on ``sock`` (the listener or a connection) without blocking."""
        if sock is self._listener:
            self._accept()
            return
        conn = self._connections.get(sock)
        if conn is None:
            return  # closed earlier in this pass
        if conn.outgoing is None:
            self._read(conn)
        else:
            self._write(conn)

    def next_deadline(self) -> float | None:
        """The earliest ``time.monotonic()`` at which ``expire()`` has work, if any."""
        return min((c.deadline for c in self._connections.values()), default=None)

    def expire(self, now: float | None = None) -> int:
        """Close connections past their deadline; return how many were closed."""
        now = time.monotonic() if now is None else now
        stale = [c for c in self._connections.values() if c.deadline <= now]
        for conn in stale:
            log.debug(
                "probe: closing a client that did not finish within %ss", self._client_timeout
            )
            self._close(conn)
        return len(stale)

    def close(self) -> None:
        """Close the listener and every connection, unregistering them from the selector."""
        for conn in list(self._connections.values()):
            self._close(conn)
        if self._selector is not None:
            try:
                self._selector.unregister(self._listener)
            except (KeyError, ValueError):
                pass
        self._listener.close()

    def drop_after_fork(self) -> None:
        """In a forked child: close our copies of the sockets, leaving the parent's untouched."""
        for conn in self._connections.values():
            conn.sock.close()
        self._connections.clear()
        self._selector = None
        self._listener.close()

    def _accept(self) -> None:
        for _ in range(_ACCEPTS_PER_CALL):
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. out of file descriptors: try again next pass
                log.warning("probe: cannot accept a connection: %s", exc)
                return
            if len(self._connections) >= self._max_connections:
                sock.close()  # overloaded: refuse rather than queue
                continue
            sock.setblocking(False)
            conn = _Connection(sock, time.monotonic() + self._client_timeout)
            self._connections[sock] = conn
            if self._selector is not None:
                self._selector.register(sock, selectors.EVENT_READ, self._selector_data)

    def _read(self, conn: _Connection) -> None:
        try:
            chunk = conn.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        conn.received += chunk
        if len(conn.received) > self._max_request_bytes:
            self._respond(conn, 431, _json({"error": "request too large"}), head=False)
        elif b"\r\n\r\n" in conn.received or b"\n\n" in conn.received:
            self._answer(conn)
        elif not chunk:  # the client finished sending; answer what it sent, if anything
            if b"\n" in conn.received:
                self._answer(conn)
            else:
                self._close(conn)

    def _answer(self, conn: _Connection) -> None:
        line = bytes(conn.received.split(b"\n", 1)[0]).decode("latin-1").strip()
        parts = line.split()
        if len(parts) not in (2, 3) or not parts[1].startswith("/"):
            self._respond(conn, 400, _json({"error": "bad request line"}), head=False)
            return
        method, target = parts[0], parts[1]
        if method not in ("GET", "HEAD"):
            self._respond(conn, 405, _json({"error": "only GET and HEAD"}), head=False)
            return
        path = target.split("?", 1)[0].split("#", 1)[0]
        if len(path) > 1:
            path = path.rstrip("/")
        if path == "/metrics":
            code, content_type, body = self._metrics_route()
            self._respond(conn, code, body, head=method == "HEAD", content_type=content_type)
            return
        code, body = self._route(path)
        self._respond(conn, code, body, head=method == "HEAD")

    def _metrics_route(self) -> tuple[int, str, bytes]:
        if self.metrics is None:
            error = (
                "metrics are off: install prometheus_client (pip install 'goodjob-mp[metrics]') "
                "and leave GOOD_JOB_ENABLE_METRICS on"
            )
            return 404, "application/json", _json({"error": error})
        try:
            content_type, body = self.metrics()
        except Exception as exc:
            log.exception("probe: rendering /metrics failed")
            return 500, "application/json", _json({"error": f"{type(exc).__name__}: {exc}"})
        return 200, content_type, body

    def _route(self, path: str) -> tuple[int, bytes]:
        if path not in ("/", "/status", "/status/started", "/status/connected"):
            return 404, _json({"error": f"no such path {path}"})
        try:
            status = self._status()
        except Exception as exc:
            log.exception("probe: the status callback failed")
            return 500, _json({"status": "error", "error": f"{type(exc).__name__}: {exc}"})
        healthy = {
            "/status/started": status.started,
            "/status/connected": status.connected,
        }.get(path, True)
        body = {
            "status": "ok" if healthy else "unavailable",
            "started": status.started,
            "connected": status.connected,
            "detail": status.detail,
        }
        return (200 if healthy else 503), _json(body)

    def _respond(
        self,
        conn: _Connection,
        code: int,
        body: bytes,
        *,
        head: bool,
        content_type: str = "application/json",
    ) -> None:
        header = (
            f"HTTP/1.0 {code} {_REASONS[code]}\r\n"
            f"Content-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Cache-Control: no-store\r\n"
            "Connection: close\r\n"
        )
        if code == 405:
            header += "Allow: GET, HEAD\r\n"
        conn.outgoing = header.encode("ascii") + b"\r\n" + (b"" if head else body)
        self._write(conn)  # usually all fits in the socket buffer at once
        if self._selector is not None and conn.sock in self._connections:
            self._selector.modify(conn.sock, selectors.EVENT_WRITE, self._selector_data)

    def _write(self, conn: _Connection) -> None:
        assert conn.outgoing is not None
        try:
            sent = conn.sock.send(conn.outgoing)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        conn.outgoing = conn.outgoing[sent:]
        if not conn.outgoing:
            self._close(conn)

    def _close(self, conn: _Connection) -> None:
        if self._connections.pop(conn.sock, None) is None:
            return
        if self._selector is not None:
            try:
                self._selector.unregister(conn.sock)
            except (KeyError, ValueError):
                pass
        conn.sock.close()


def _listen(host: str, port: int) -> socket.socket:
    try:
        family = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM)[0][0]
        listener = socket.create_server((host, port), family=family, backlog=64)
    except (OSError, OverflowError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ProbeServerError(
            f"probe server cannot listen on {host}:{port}: {reason}; choose another "
            "--probe-port (GOOD_JOB_PROBE_PORT) or --probe-bind (GOOD_JOB_PROBE_BIND), or stop "
            "the process that uses this one"
        ) from exc
    listener.setblocking(False)
    return listener


def _events(conn: _Connection) -> int:
    return selectors.EVENT_WRITE if conn.outgoing is not None else selectors.EVENT_READ


def _json(value: dict[str, Any]) -> bytes:
    return (json.dumps(value, default=str, sort_keys=True) + "\n").encode("utf-8")
