"""Celery tasks of the project itself: thin wrappers around trademaster.relay."""

from __future__ import annotations

from celery import shared_task

from trademaster.relay import configured_sinks, relay_batch


@shared_task(ignore_result=True)
def relay_outbox_task(max_batches: int = 20) -> int:
    """Relay pending outbox events (beat runs it every second; the command is the low-latency way)."""
    sinks = configured_sinks()
    total = 0
    for _ in range(max_batches):
        count = relay_batch(sinks=sinks)
        total += count
        if count == 0:
            break
    return total
