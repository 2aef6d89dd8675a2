"""ProbeServer over real sockets: routes, status flips, and clients that misbehave.

The product is single-threaded; these tests run its select loop in one test thread and act as
HTTP clients from the main thread, so both sides of every exchange are real.
"""

from __future__ import annotations

import http.client
import json
import select
import selectors
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from goodjob_mp.supervisor.probe import ProbeServer, ProbeServerError, ProbeStatus


class Loop:
    """A supervisor-like loop: selectors, ``handle_ready`` for the probe, ``expire`` each pass."""

    def __init__(self, probe: ProbeServer, use_select: bool = False) -> None:
        self.probe = probe
        self.use_select = use_select
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        if self.use_select:
            while not self.stop.is_set():
                readers, writers = self.probe.sockets()
                ready_r, ready_w, _ = select.select(readers, writers, [], 0.05)
                for sock in ready_r + ready_w:
                    self.probe.handle_ready(sock)
                self.probe.expire()
            return
        with selectors.DefaultSelector() as selector:
            self.probe.attach(selector)
            while not self.stop.is_set():
                for key, _ in selector.select(0.05):
                    if key.data is self.probe:
                        self.probe.handle_ready(key.fileobj)
                self.probe.expire()
            self.probe.close()

    def __enter__(self) -> Loop:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()
        if self.use_select:
            self.probe.close()


@pytest.fixture
def state() -> dict[str, Any]:
    return {"started": True, "connected": True, "detail": {"pools": 2}}


@pytest.fixture
def serve(state: dict[str, Any]) -> Iterator[Callable[..., ProbeServer]]:
    loops: list[Loop] = []

    def start(use_select: bool = False, **options: Any) -> ProbeServer:
        options.setdefault("status", lambda: ProbeStatus(**state))
        probe = ProbeServer(0, "127.0.0.1", **options)
        loop = Loop(probe, use_select)
        loops.append(loop)
        loop.__enter__()
        return probe

    yield start
    for loop in loops:
        loop.__exit__()


def get(probe: ProbeServer, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", probe.port, timeout=10)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_port_zero_picks_a_free_port(serve: Callable[..., ProbeServer]) -> None:
    probe = serve()
    assert probe.port > 0


@pytest.mark.parametrize("path", ["/", "/status", "/status/started", "/status/connected"])
def test_healthy_routes_answer_200_with_json(serve: Callable[..., ProbeServer], path: str) -> None:
    code, headers, body = get(serve(), path)
    assert code == 200
    assert headers["Connection"] == "close"
    assert headers["Content-Type"] == "application/json"
    assert int(headers["Content-Length"]) == len(body)
    assert json.loads(body) == {
        "status": "ok",
        "started": True,
        "connected": True,
        "detail": {"pools": 2},
    }


def test_status_flips_to_503(serve: Callable[..., ProbeServer], state: dict[str, Any]) -> None:
    probe = serve()
    state["started"] = False
    code, _, body = get(probe, "/status/started")
    assert code == 503
    assert json.loads(body)["status"] == "unavailable"
    assert get(probe, "/status/connected")[0] == 200
    state["connected"] = False
    assert get(probe, "/status/connected")[0] == 503
    assert get(probe, "/status")[0] == 200  # the process itself still answers
    assert get(probe, "/")[0] == 200
    state.update(started=True, connected=True)
    assert get(probe, "/status/started")[0] == 200
    assert get(probe, "/status/connected")[0] == 200


def test_unknown_path_query_string_and_trailing_slash(serve: Callable[..., ProbeServer]) -> None:
    probe = serve()
    assert get(probe, "/nope")[0] == 404
    assert get(probe, "/status/started?verbose=1")[0] == 200
    assert get(probe, "/status/connected/")[0] == 200


def test_head_and_other_methods(serve: Callable[..., ProbeServer]) -> None:
    probe = serve()
    code, headers, body = get(probe, "/status", "HEAD")
    assert code == 200 and body == b"" and int(headers["Content-Length"]) > 0
    code, headers, _ = get(probe, "/status", "POST")
    assert code == 405 and headers["Allow"] == "GET, HEAD"


def test_failing_status_callback_answers_500(serve: Callable[..., ProbeServer]) -> None:
    def broken() -> ProbeStatus:
        raise RuntimeError("registry not loaded")

    code, _, body = get(serve(status=broken), "/status")
    assert code == 500
    assert "registry not loaded" in json.loads(body)["error"]


def test_unserialisable_detail_becomes_text(
    serve: Callable[..., ProbeServer], state: dict[str, Any]
) -> None:
    state["detail"] = {"since": object}
    code, _, body = get(serve(), "/status")
    assert code == 200 and "class" in json.loads(body)["detail"]["since"]


def test_silent_client_neither_blocks_others_nor_stays_open(
    serve: Callable[..., ProbeServer],
) -> None:
    probe = serve(client_timeout=0.5)
    silent = socket.create_connection(("127.0.0.1", probe.port), timeout=10)
    partial = socket.create_connection(("127.0.0.1", probe.port), timeout=10)
    partial.sendall(b"GET /status HTTP/1.0\r\nHost: x\r\n")  # never finishes its headers
    try:
        for _ in range(5):
            assert get(probe, "/status")[0] == 200
        assert silent.recv(1024) == b""  # closed by expire(), not left hanging
        assert partial.recv(1024) == b""
    finally:
        silent.close()
        partial.close()


def test_oversized_request_is_refused(serve: Callable[..., ProbeServer]) -> None:
    probe = serve(max_request_bytes=1024)
    with socket.create_connection(("127.0.0.1", probe.port), timeout=10) as sock:
        sock.sendall(b"GET /status HTTP/1.0\r\nX-Filler: " + b"a" * 2000)
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.0 431 ")
    assert get(probe, "/status")[0] == 200


def test_bad_request_line(serve: Callable[..., ProbeServer]) -> None:
    probe = serve()
    with socket.create_connection(("127.0.0.1", probe.port), timeout=10) as sock:
        sock.sendall(b"hello\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.0 400 ")


def test_request_ended_by_half_close(serve: Callable[..., ProbeServer]) -> None:
    probe = serve()
    with socket.create_connection(("127.0.0.1", probe.port), timeout=10) as sock:
        sock.sendall(b"GET /status/started\n")
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
    assert reply.startswith(b"HTTP/1.0 200 ")
    assert reply.endswith(b"\n") and b'"status": "ok"' in reply


def test_connection_limit_refuses_extra_clients(serve: Callable[..., ProbeServer]) -> None:
    probe = serve(max_connections=2, client_timeout=30)
    held = [socket.create_connection(("127.0.0.1", probe.port), timeout=10) for _ in range(2)]
    try:
        with socket.create_connection(("127.0.0.1", probe.port), timeout=10) as extra:
            extra.sendall(b"GET /status HTTP/1.0\r\n\r\n")
            try:
                reply = extra.recv(1024)
            except ConnectionResetError:
                reply = b""
            assert reply == b""
    finally:
        for sock in held:
            sock.close()


def test_plain_select_loop(serve: Callable[..., ProbeServer]) -> None:
    probe = serve(use_select=True, client_timeout=0.5)
    silent = socket.create_connection(("127.0.0.1", probe.port), timeout=10)
    try:
        assert get(probe, "/status/started")[0] == 200
        assert get(probe, "/missing")[0] == 404
        assert silent.recv(1024) == b""
    finally:
        silent.close()


def test_next_deadline_tracks_open_connections(state: dict[str, Any]) -> None:
    probe = ProbeServer(0, "127.0.0.1", status=lambda: ProbeStatus(**state), client_timeout=5)
    try:
        assert probe.next_deadline() is None
        client = socket.create_connection(("127.0.0.1", probe.port), timeout=10)
        select.select([probe], [], [], 10)  # ProbeServer has fileno(): the listener
        probe.handle_ready(probe.sockets()[0][0])
        deadline = probe.next_deadline()
        assert deadline is not None
        assert probe.expire(deadline - 1) == 0
        assert probe.expire(deadline) == 1
        assert probe.next_deadline() is None
        assert client.recv(1024) == b""
        client.close()
    finally:
        probe.close()


def test_port_in_use_names_the_setting(state: dict[str, Any]) -> None:
    first = ProbeServer(0, "127.0.0.1", status=lambda: ProbeStatus(**state))
    try:
        with pytest.raises(ProbeServerError, match=f"127.0.0.1:{first.port}.*--probe-port"):
            ProbeServer(first.port, "127.0.0.1", status=lambda: ProbeStatus(**state))
    finally:
        first.close()


def test_ipv6_loopback(state: dict[str, Any]) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this Python")
    try:
        probe = ProbeServer(0, "::1", status=lambda: ProbeStatus(**state))
    except ProbeServerError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    with Loop(probe):
        conn = http.client.HTTPConnection("::1", probe.port, timeout=10)
        conn.request("GET", "/status")
        assert conn.getresponse().status == 200
        conn.close()


@pytest.mark.parametrize("use_select", [False, True], ids=["selectors", "select"])
def test_large_response_is_written_in_pieces(
    serve: Callable[..., ProbeServer], state: dict[str, Any], use_select: bool
) -> None:
    # Far larger than a socket buffer, so the loop must come back to finish the write while
    # it keeps serving others.
    state["detail"] = {"blob": "x" * 4_000_000}
    probe = serve(use_select=use_select, client_timeout=30)
    with socket.create_connection(("127.0.0.1", probe.port), timeout=10) as slow_reader:
        slow_reader.sendall(b"GET /status HTTP/1.0\r\n\r\n")
        first = slow_reader.recv(1024)
        state["detail"] = {}
        assert get(probe, "/status")[0] == 200  # served while the big reply is still pending
        reply = first
        while chunk := slow_reader.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 ")
    assert f"Content-Length: {len(body)}".encode() in head
    assert len(json.loads(body)["detail"]["blob"]) == 4_000_000
