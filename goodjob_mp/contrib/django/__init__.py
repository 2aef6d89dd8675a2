"""The Django app: add ``"goodjob_mp.contrib.django"`` to ``INSTALLED_APPS``.

It reads ``settings.GOOD_JOB`` (goodjob_mp's settings, plus a few Django ones; see
``goodjob_mp.contrib.django.conf``), takes the database from ``DATABASES``, creates goodjob_mp's
tables on ``manage.py migrate``, enqueues ``perform_later`` calls made inside
``transaction.atomic()`` when the transaction commits (or in it, on Django's connection), imports
each installed app's ``jobs`` module, and adds ``manage.py goodjob_supervisor``. docs/django.md.
"""
