"""FastAPI helpers: FastAPI is Starlette, so these are ``goodjob_mp.contrib.starlette``'s.

from fastapi import FastAPI
from goodjob_mp.contrib.fastapi import lifespan, mount_dashboard

app = FastAPI(lifespan=lifespan)
mount_dashboard(app, "/good_job")
"""

from goodjob_mp.contrib.starlette import GoodJobLifespan, lifespan, mount_dashboard

__all__ = ["GoodJobLifespan", "lifespan", "mount_dashboard"]
