"""Settings of the example project: one app (``shop``) whose view enqueues a job.

The database comes from EXAMPLE_DATABASE_URL (a libpq URL or conninfo); goodjob_mp takes it from
DATABASES, so no GOOD_JOB_DATABASE_URL is needed.
"""

import os

import psycopg

_db = psycopg.conninfo.conninfo_to_dict(
    os.environ.get("EXAMPLE_DATABASE_URL", "postgresql://127.0.0.1:5432/goodjob_example")
)

SECRET_KEY = "example-only-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["*"]
USE_TZ = True
ROOT_URLCONF = "exampleproject.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "goodjob_mp.contrib.django",
    "shop",
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _db.get("dbname", "goodjob_example"),
        "USER": _db.get("user", ""),
        "PASSWORD": _db.get("password", ""),
        "HOST": _db.get("host", ""),
        "PORT": _db.get("port", ""),
    }
}

GOOD_JOB = {
    "queues": "receipts:2;*",
    "max_threads": 2,
    "poll_interval": 1.0,
    # The default (GoodJob's enqueue_after_transaction_commit): a job enqueued inside
    # transaction.atomic() is written when the transaction commits.
    "enqueue_after_transaction_commit": True,
}
