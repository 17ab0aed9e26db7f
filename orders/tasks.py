"""Celery tasks of the orders app: thin wrappers around the services."""

from __future__ import annotations

from celery import shared_task

from orders.reconcile import reconcile_all
from orders.services import orders_resend_due


@shared_task(ignore_result=True)
def reconcile_all_task() -> int:
    """Reconcile every account's open orders with its broker (CELERY_BEAT_SCHEDULE; beat's first
    run comes right after it starts, so a restart is reconciled at once). Returns the repairs."""
    return sum(len(report.repaired) for report in reconcile_all())


@shared_task(ignore_result=True)
def resend_due_task() -> int:
    """Send again the placements a busy broker deferred, once due (CELERY_BEAT_SCHEDULE, every
    second). Returns how many were sent."""
    return orders_resend_due()
