"""Celery tasks of the risk app: thin wrappers around the services."""

from __future__ import annotations

from celery import shared_task

from risk.monitoring import risk_monitor_all


@shared_task(ignore_result=True)
def risk_monitor_all_task() -> int:
    """The periodic live-risk run (CELERY_BEAT_SCHEDULE): every user with positions."""
    return risk_monitor_all()
