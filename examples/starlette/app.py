"""A Starlette app that enqueues a job per request and runs it in async mode (workers started
and stopped by the app's lifespan), with the dashboard under /good_job.

    export GOOD_JOB_DATABASE_URL=postgresql://...
    goodjob-supervisor migrate
    uvicorn --app-dir examples/starlette app:create_app --factory
    curl -X POST localhost:8000/greet?name=ada        # -> {"job": "<id>"}
    curl localhost:8000/jobs/<id>                     # -> {"state": "succeeded"}
"""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import goodjob_mp as gj
from goodjob_mp.contrib.starlette import lifespan, mount_dashboard

log = logging.getLogger(__name__)


@gj.job(queue="greetings")
def starlette_greet(name: str) -> None:
    log.info("hello, %s", name)


async def greet(request: Request) -> JSONResponse:
    # perform_later blocks on one INSERT: run it off the event loop.
    job = await run_in_threadpool(starlette_greet.perform_later, request.query_params.get("name"))
    return JSONResponse({"job": str(job.id)}, status_code=202)


async def job_state(request: Request) -> JSONResponse:
    found = await run_in_threadpool(gj.find, request.path_params["job_id"])
    if found is None:
        return JSONResponse({"error": "no such job"}, status_code=404)
    return JSONResponse({"state": found.state})


def create_app() -> Starlette:
    gj.configure(execution_mode="async", queues="greetings:2")
    app = Starlette(
        routes=[
            Route("/greet", greet, methods=["POST"]),
            Route("/jobs/{job_id}", job_state),
        ],
        lifespan=lifespan,
    )
    mount_dashboard(app, "/good_job")
    return app
