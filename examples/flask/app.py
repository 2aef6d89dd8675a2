"""A Flask app that enqueues a job per request and runs it in async mode (workers in the web
process), with the dashboard under /good_job.

    export GOOD_JOB_DATABASE_URL=postgresql://...
    goodjob-supervisor migrate
    flask --app examples/flask/app.py:create_app run
    curl -X POST localhost:5000/greet?name=ada        # -> {"job": "<id>"}
    curl localhost:5000/jobs/<id>                     # -> {"state": "succeeded"}
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify, request

import goodjob_mp as gj
from goodjob_mp.contrib.flask import GoodJob

log = logging.getLogger(__name__)
goodjob = GoodJob()


@gj.job(queue="greetings")
def flask_greet(name: str) -> None:
    log.info("hello, %s", name)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config["GOOD_JOB"] = {"execution_mode": "async", "queues": "greetings:2"}
    app.config.update(config or {})
    goodjob.init_app(app)
    goodjob.mount_dashboard(app, "/good_job")

    @app.post("/greet")
    def greet() -> Any:
        job = flask_greet.perform_later(request.args.get("name", "world"))
        return jsonify(job=str(job.id)), 202

    @app.get("/jobs/<job_id>")
    def job_state(job_id: str) -> Any:
        found = gj.find(job_id)
        return (jsonify(state=found.state), 200) if found else (jsonify(error="no such job"), 404)

    return app
