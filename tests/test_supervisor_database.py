"""The database goes away while a child restarts: the supervisor waits for it, it never gives up
as if the app were broken, and the probe says not-connected meanwhile."""

from __future__ import annotations

import os
import re
import signal
import urllib.error
import urllib.request

import psycopg
import pytest

from tests import jobs_for_tests as J
from tests.supervising import *  # noqa: F403 - the start and records fixtures
from tests.tcp_proxy import TcpProxy
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(120)


def _get(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture()
def proxy(database_url):
    info = psycopg.conninfo.conninfo_to_dict(database_url)
    server = TcpProxy((info.get("host") or "127.0.0.1", int(info.get("port") or 5432)))
    server.start()
    info.update(host="127.0.0.1", port=str(server.port))
    server.url = psycopg.conninfo.make_conninfo(**info)
    yield server
    server.stop()


def test_a_database_blip_while_a_child_restarts_is_waited_out(start, records, proxy, db):
    env = {"GOOD_JOB_DATABASE_URL": proxy.url}
    sup = start("--queues=*:1", "--probe-port=0", env=env)
    [child] = sup.wait_ready()
    port = int(re.search(r"probe server listening on port (\d+)", sup.output()).group(1))
    assert wait_for(lambda: _get(port, "/status/connected") == 200, 20)

    proxy.stop()
    os.kill(child, signal.SIGKILL)  # the pool restarts while the database is away
    assert wait_for(lambda: "the database is unreachable" in sup.output(), 30), sup.output()
    # More start-ups fail than the 3 that stop a supervisor whose app is broken.
    assert wait_for(lambda: sup.output().count("forked child") >= 5, 40), sup.output()
    assert sup.proc.poll() is None, sup.output()
    assert "failed to start 3 times" not in sup.output()
    assert _get(port, "/status/connected") == 503
    assert _get(port, "/status/started") == 503

    proxy.start()
    assert wait_for(lambda: "the database is reachable again" in sup.output(), 30), sup.output()
    assert wait_for(lambda: _get(port, "/status/connected") == 200, 30)
    J.remember.perform_later("after-the-blip")
    assert wait_for(lambda: J.lines(records, "remember") == ["after-the-blip"], 30)
    assert sup.output().count("the database is unreachable") == 1  # one line per outage
    sup.signal(signal.SIGTERM)
    assert sup.wait_exit() == 0
