"""Celery tasks of the routing app: thin wrappers around the services."""

from __future__ import annotations

from celery import shared_task

from routing.algos import algo_release_due
from trademaster.clock import clock_now


@shared_task(ignore_result=True)
def algo_release_due_task() -> int:
    """Release the TWAP/VWAP slices that are due (CELERY_BEAT_SCHEDULE, every second)."""
    return algo_release_due(now=clock_now())
