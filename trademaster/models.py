from __future__ import annotations

import uuid

from django.db import models


class OutboxEvent(models.Model):
    """A domain event stored in the same transaction as the change that caused it.

    A relay publishes unsent rows (Kafka, the live stream) and stamps ``published_at``;
    delivery is at-least-once and consumers de-duplicate on ``event_id``.
    """

    event_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    type = models.CharField(max_length=40)
    occurred_at = models.DateTimeField()
    user_id = models.BigIntegerField()
    account_id = models.BigIntegerField(null=True, blank=True, help_text="the ordering key")
    payload = models.JSONField()
    schema_version = models.PositiveSmallIntegerField(default=1)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "outbox_events"
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["id"], name="outbox_unpublished", condition=models.Q(published_at__isnull=True)
            ),
            models.Index(fields=["user_id", "id"], name="outbox_by_user"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"


class BenchPing(models.Model):
    """One row per call of the bench's floor endpoint."""

    user_id = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"ping {self.pk}"
