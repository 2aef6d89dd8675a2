"""A FastAPI app that enqueues a job per request and runs it in async mode (workers started
and stopped by the app's lifespan, next to a lifespan of the app's own), with the dashboard
under /good_job.

    export GOOD_JOB_DATABASE_URL=postgresql://...
    goodjob-supervisor migrate
    uvicorn --app-dir examples/fastapi app:create_app --factory
    curl -X POST localhost:8000/greet?name=ada        # -> {"job": "<id>"}
    curl localhost:8000/jobs/<id>                     # -> {"state": "succeeded"}
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI, HTTPException

import goodjob_mp as gj
from goodjob_mp.contrib.fastapi import lifespan as goodjob_lifespan
from goodjob_mp.contrib.fastapi import mount_dashboard

log = logging.getLogger(__name__)


@gj.job(queue="greetings")
def fastapi_greet(name: str) -> None:
    log.info("hello, %s", name)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.greeting = "hello"  # the app's own start-up, around goodjob_mp's
    async with goodjob_lifespan(app):
        yield


def create_app() -> FastAPI:
    gj.configure(execution_mode="async", queues="greetings:2")
    app = FastAPI(lifespan=lifespan)

    # Plain `def` endpoints: FastAPI runs them in its thread pool (perform_later blocks).
    @app.post("/greet", status_code=202)
    def greet(name: str = "world") -> dict[str, str]:
        return {"job": str(fastapi_greet.perform_later(name).id)}

    @app.get("/jobs/{job_id}")
    def job_state(job_id: str) -> dict[str, str]:
        found = gj.find(job_id)
        if found is None:
            raise HTTPException(404, "no such job")
        return {"state": found.state}

    mount_dashboard(app, "/good_job")
    return app
