"""The Django app config: wires goodjob_mp into the project once Django is set up.

In ``ready()``: ``GOOD_JOB`` → ``goodjob_mp.configure()``; the transaction router; goodjob_mp's
SQL migrations on ``post_migrate``; the test runner's database (Django renames the database
before connecting, so the URL is taken again when a connection opens); Django's
``close_old_connections`` around each job, as around each request; and the ``jobs`` module of
every installed app. Starts no thread and opens no connection.
"""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.db import close_old_connections, connections
from django.db.backends.base.base import NO_DB_ALIAS
from django.db.backends.signals import connection_created
from django.db.models.signals import post_migrate

import goodjob_mp
from goodjob_mp import config, events
from goodjob_mp.contrib.django import conf
from goodjob_mp.contrib.django.transactions import TransactionRouter
from goodjob_mp.db import connection as gj_connection
from goodjob_mp.enqueue import add_write_router


class GoodJobConfig(AppConfig):
    name = "goodjob_mp.contrib.django"
    label = "goodjob_mp"
    verbose_name = "goodjob_mp"
    options: conf.DjangoOptions
    router: TransactionRouter

    def ready(self) -> None:
        try:
            self.options = conf.django_options(
                getattr(django_settings, "GOOD_JOB", None), django_settings.DATABASES
            )
            goodjob_mp.configure(**self.options.goodjob)
        except config.ConfigError as exc:
            raise ImproperlyConfigured(str(exc)) from None
        self.router = TransactionRouter(
            self.options.database, self.options.enqueue_after_transaction_commit
        )
        add_write_router(self.router)
        post_migrate.connect(self._migrate_tables, sender=self, dispatch_uid="goodjob_mp")
        if self.options.database_from_django:
            connection_created.connect(self._follow_database, dispatch_uid="goodjob_mp")
        for name in ("perform_start", "perform_finish"):
            events.subscribe(name, _close_old_connections)
        if self.options.autodiscover:
            from django.utils.module_loading import autodiscover_modules

            autodiscover_modules(self.options.autodiscover)

    def _migrate_tables(self, using: str = "default", **_: Any) -> None:
        """``manage.py migrate`` (and the test runner) create or update goodjob_mp's tables
        on that database, with goodjob_mp's own idempotent, locked SQL migrations."""
        django_conn = connections[using]
        if django_conn.vendor != "postgresql":
            return
        from goodjob_mp.contrib.django.transactions import psycopg_connection
        from goodjob_mp.db.migrate import migrate

        migrate(
            psycopg_connection(using),
            goodjob_indexes=goodjob_mp.current_settings().goodjob_indexes,
        )

    def _follow_database(self, sender: Any, connection: Any, **_: Any) -> None:
        """Follow ``DATABASES`` as it is when a connection opens: the test runner points it at
        ``test_<NAME>`` (or a clone per parallel process) after ``ready()``."""
        if connection.alias == NO_DB_ALIAS:
            # Django is about to create or drop a database (the test runner's): our own
            # connections to it would make DROP DATABASE fail ("being accessed by other users").
            gj_connection.close_thread_connection()
            gj_connection.reset_database_url()
            return
        if connection.alias != self.options.database:
            return
        url = conf.database_url(connection.settings_dict, alias=connection.alias)
        if url != self.options.goodjob["database_url"]:
            self.options.goodjob["database_url"] = url
            goodjob_mp.configure(database_url=url)
            gj_connection.reset_database_url()


def _close_old_connections(**_: Any) -> None:
    # A worker thread keeps its Django connection between jobs, as a request thread does
    # between requests: drop it when broken or older than CONN_MAX_AGE. Never inside an atomic
    # block (a job performed inline there, or in a TestCase): Django would close that
    # transaction's connection under it.
    if any(c.in_atomic_block for c in connections.all(initialized_only=True)):
        return
    close_old_connections()
