"""Writing domain events to the outbox, inside the caller's transaction."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from trademaster.models import OutboxEvent
from trademaster.relay import outbox_written

SCHEMA_VERSION = 1


def jsonable(value: Any) -> Any:
    """Decimals travel as strings, datetimes as ISO 8601, so no number ever turns into a float."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def outbox_record(
    *,
    type: str,
    user_id: int,
    payload: dict[str, Any],
    account_id: int | None = None,
    occurred_at: dt.datetime | None = None,
) -> OutboxEvent:
    transaction.on_commit(outbox_written)  # wakes this process's relay or stream tail at once
    return OutboxEvent.objects.create(
        type=type,
        occurred_at=occurred_at or timezone.now(),
        user_id=user_id,
        account_id=account_id,
        payload=jsonable(payload),
        schema_version=SCHEMA_VERSION,
    )
