"""Reading a user's missed events from the outbox for a reconnecting client (synchronous ORM)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from trademaster.models import OutboxEvent
from trademaster.relay import envelope
from trademaster.stream.frames import REPLAY_LIMIT, ProtocolError


def replay_events(
    *, user_id: int, since: uuid.UUID | dt.datetime, limit: int = REPLAY_LIMIT
) -> tuple[list[tuple[int, dict[str, Any]]], bool]:
    """``(outbox id, envelope)`` of the user's events after ``since``, in id order, and whether
    more than ``limit`` were waiting (the client then replays again from the last one it got).

    The outbox, not the channel layer, is the record: it holds events the relay has not published
    yet and events published while the client was away. Only ``user_id``'s rows are read, and an
    event_id of another user is as unknown as one that never existed.
    """
    rows = OutboxEvent.objects.filter(user_id=user_id)
    if isinstance(since, uuid.UUID):
        cursor = rows.filter(event_id=since).values_list("id", flat=True).first()
        if cursor is None:
            raise ProtocolError("unknown_event", f"no event {since} in your stream; nothing was subscribed")
        rows = rows.filter(id__gt=cursor)
    else:
        rows = rows.filter(occurred_at__gt=since)
    events = list(rows.order_by("id")[: limit + 1])
    return [(event.pk, envelope(event)) for event in events[:limit]], len(events) > limit
