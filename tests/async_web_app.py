"""A test app for async execution mode: a job that records the pid performing it, a WSGI app
that enqueues it, and ``python -m tests.async_web_app <port-file>`` serving that app with the
standard library's wsgiref server (a real web server process)."""

from __future__ import annotations

import os
import sys
from urllib.parse import parse_qs

import goodjob_mp as gj
from tests.jobs_for_tests import record


@gj.job(queue="default")
def record_pid(tag: str) -> None:
    record("async_pid", f"{tag} {os.getpid()}")


def application(environ, start_response):
    tag = parse_qs(environ.get("QUERY_STRING", "")).get("tag", ["?"])[0]
    job = record_pid.perform_later(tag)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(job.id).encode()]


def serve(port_file: str) -> None:
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    with make_server("127.0.0.1", 0, application, handler_class=Quiet) as server:
        with open(port_file + ".tmp", "w") as fh:
            fh.write(str(server.server_port))
        os.rename(port_file + ".tmp", port_file)
        server.serve_forever()


if __name__ == "__main__":
    serve(sys.argv[1])
