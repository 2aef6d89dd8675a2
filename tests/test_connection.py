"""Session settings every connection of ours gets, on a real server."""

from __future__ import annotations

import os

import psycopg

from goodjob_mp.db.connection import connect, session_conninfo


def test_session_conninfo_adds_ours_and_keeps_the_urls_own():
    url = "postgresql://u@db.example:5432/app?options=-c%20statement_timeout%3D5000&keepalives_idle=60"
    info = psycopg.conninfo.conninfo_to_dict(session_conninfo(url))
    assert info["host"] == "db.example" and info["dbname"] == "app"
    assert "-c timezone=UTC" in info["options"]
    assert "-c tcp_keepalives_idle=10" in info["options"]
    assert info["options"].endswith("-c statement_timeout=5000")  # the URL's own, last: it wins
    assert info["keepalives_idle"] == "60"  # a value in the URL is not overridden
    assert info["keepalives"] == "1" and info["connect_timeout"] == "10"


def test_a_real_connection_has_utc_and_server_side_keepalives():
    with connect(os.environ["GOOD_JOB_DATABASE_URL"]) as conn:
        assert conn.execute("SHOW timezone").fetchone()[0] == "UTC"
        # Over TCP the server applies it; over a Unix socket it reports 0 (not applicable).
        idle = conn.execute("SHOW tcp_keepalives_idle").fetchone()[0]
        tcp = conn.info.host.startswith("/") is False
        assert idle == ("10" if tcp else "0")
