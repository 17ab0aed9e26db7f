"""The Celery app: configured from Django settings (CELERY_* names), tasks found in each app's tasks.py.

Run a worker with beat: ``celery -A trademaster worker -B --scheduler
django_celery_beat.schedulers:DatabaseScheduler`` (the long ``--scheduler``: on ``worker``,
``-S`` means ``--statedb``). ``make run`` starts exactly that, logging to ``var/log/celery.log``.
In production run the worker(s) and one ``celery -A trademaster beat --scheduler ...`` as
separate processes: beat must run once, workers scale out.

Transport: Redis when ``REDIS_URL`` is set, otherwise kombu's ``filesystem://`` in
``var/celery/`` (crosses processes with no server; ``memory://`` would not).

The schedule lives in the database (django-celery-beat's PeriodicTask, editable in the admin
under "Periodic tasks"). Each start of beat writes ``CELERY_BEAT_SCHEDULE`` into rows of the same
names (``risk-monitor-all``, ``relay-outbox``): their schedule and options are reset to the
settings then, while their ``enabled`` flag and any task added in the admin are kept. Beat picks
up admin changes while it runs.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trademaster.settings")

app = Celery("trademaster")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
