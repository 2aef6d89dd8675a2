"""The example project's tests, run by Django's test runner (``python manage.py test``) on a
real PostgreSQL: the test database gets goodjob_mp's tables from ``migrate``, and goodjob_mp
follows Django onto it."""

import json

import psycopg
from django.apps import apps
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test import TransactionTestCase

import goodjob_mp as gj
from shop.jobs import send_receipt
from shop.models import Order


class Rollback(Exception):
    pass


def job_count() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM good_jobs")
        return cursor.fetchone()[0]


def count_from_another_connection() -> int:
    with psycopg.connect(gj.current_settings().database_url, autocommit=True) as other:
        return other.execute("SELECT count(*) FROM good_jobs").fetchone()[0]


class GoodJobInDjangoTests(TransactionTestCase):
    def setUp(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE good_jobs, good_job_executions")
        self.router = apps.get_app_config("goodjob_mp").router

    def test_settings_come_from_good_job_and_databases(self) -> None:
        settings = gj.current_settings()
        self.assertEqual(settings.queues, "receipts:2;*")
        # The test runner's database, not the one settings.py names.
        dbname = psycopg.conninfo.conninfo_to_dict(settings.database_url)["dbname"]
        self.assertEqual(dbname, connection.settings_dict["NAME"])
        self.assertTrue(dbname.startswith("test_"))

    def test_migrate_created_the_tables(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass('good_job_executions') IS NOT NULL")
            self.assertTrue(cursor.fetchone()[0])

    def test_rollback_enqueues_nothing(self) -> None:
        response = self.client.post(
            "/orders", json.dumps({"fail": True}), content_type="application/json"
        )
        self.assertEqual(response.status_code, 422)
        self.assertEqual(Order.objects.count(), 0)
        self.assertEqual(job_count(), 0)

    def test_commit_enqueues_after_the_commit(self) -> None:
        with transaction.atomic():
            order = Order.objects.create(email="a@example.com")
            handle = send_receipt.perform_later(order.id)
            self.assertEqual(job_count(), 0)  # not yet: written by on_commit
        self.assertEqual(job_count(), 1)
        self.assertEqual(gj.find(handle.id).queue_name, "receipts")

    def test_view_commit_enqueues_and_the_job_uses_the_orm(self) -> None:
        response = self.client.post(
            "/orders", json.dumps({"email": "b@example.com"}), content_type="application/json"
        )
        self.assertEqual(response.status_code, 201)
        self.assertEqual(job_count(), 1)
        self.assertEqual(gj.perform_inline("receipts"), 1)
        order = Order.objects.get(id=response.json()["order"])
        self.assertTrue(order.receipt_sent)

    def test_same_transaction_mode_writes_on_djangos_connection(self) -> None:
        self.router.after_commit = False
        try:
            with transaction.atomic():
                order = Order.objects.create(email="c@example.com")
                send_receipt.perform_later(order.id)
                self.assertEqual(job_count(), 1)  # visible in this transaction
                self.assertEqual(count_from_another_connection(), 0)  # and only here
            self.assertEqual(count_from_another_connection(), 1)

            with self.assertRaises(Rollback), transaction.atomic():
                send_receipt.perform_later(order.id)
                with gj.bulk():
                    send_receipt.perform_later(order.id)
                raise Rollback
            self.assertEqual(job_count(), 1)

            # A savepoint: the inner block's job rolls back alone.
            with transaction.atomic():
                send_receipt.perform_later(order.id)
                with self.assertRaises(Rollback), transaction.atomic():
                    send_receipt.perform_later(order.id)
                    raise Rollback
            self.assertEqual(job_count(), 2)
        finally:
            self.router.after_commit = True

    def test_bulk_inside_atomic_waits_for_the_commit(self) -> None:
        with transaction.atomic():
            with gj.bulk():
                send_receipt.perform_later(1)
                send_receipt.perform_later(2)
            self.assertEqual(job_count(), 0)
        self.assertEqual(job_count(), 2)
        with self.assertRaises(Rollback), transaction.atomic():
            with gj.bulk():
                send_receipt.perform_later(3)
            raise Rollback
        self.assertEqual(job_count(), 2)

    def test_a_job_performed_inside_atomic_keeps_djangos_connection(self) -> None:
        order = Order.objects.create(email="d@example.com")
        send_receipt.perform_later(order.id)
        with transaction.atomic():
            self.assertEqual(gj.perform_inline("receipts"), 1)
            order.refresh_from_db()  # the same connection, still in its transaction
            self.assertTrue(order.receipt_sent)

    def test_outside_atomic_enqueues_at_once(self) -> None:
        send_receipt.perform_later(1)
        self.assertEqual(job_count(), 1)


class GoodJobSupervisorCommandTests(TransactionTestCase):
    def test_call_command_passes_goodjob_supervisor_arguments_through(self) -> None:
        call_command("goodjob_supervisor", "--queues=receipts:1;*", "--check")
        call_command("goodjob_supervisor", "migrate", "--check")  # migrate ran for the tests
        with self.assertRaises(CommandError):
            call_command("goodjob_supervisor", "--max-threads=0", "--check")

    def test_manage_py_options_are_not_passed_on(self) -> None:
        from goodjob_mp.contrib.django.management.commands.goodjob_supervisor import (
            without_django_options,
        )

        argv = ["--settings", "x.settings", "--queues=a", "--pythonpath=.", "migrate"]
        self.assertEqual(without_django_options(argv), ["--queues=a", "migrate"])
