"""Celery tasks of the brokers app: thin wrappers around the services."""

from __future__ import annotations

from celery import shared_task

from brokers.services import broker_health_check_all


@shared_task(ignore_result=True)
def broker_health_check_all_task() -> int:
    """Ask every active account's broker how it is (CELERY_BEAT_SCHEDULE): status and latency,
    which routing weighs."""
    return broker_health_check_all()
