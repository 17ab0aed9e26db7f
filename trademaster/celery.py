"""The Celery app: configured from Django settings (CELERY_* names), tasks found in each app's tasks.py.

Run a worker with beat: ``celery -A trademaster worker -B --scheduler
django_celery_beat.schedulers:DatabaseScheduler`` (the long ``--scheduler``: on ``worker``,
``-S`` means ``--statedb``).
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trademaster.settings")

app = Celery("trademaster")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
