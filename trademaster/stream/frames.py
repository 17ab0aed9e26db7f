"""What the live stream sends: outbox envelopes turned into topic frames, and the client protocol.

Plain Python (no Django, no Channels) so the mapping and the message checks are unit-testable.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

TOPICS = ("orders", "positions", "fills", "risk", "brokers")
REPLAY_LIMIT = 1000

Payload = dict[str, Any]


@dataclass(frozen=True)
class Route:
    """One frame an outbox event produces: its topic, its frame type and what goes in ``data``."""

    topic: str
    frame_type: str
    data: Callable[[Payload], Payload] = lambda payload: payload


def _order_of_fill(payload: Payload) -> Payload:
    """A fill changes its order: the order topic gets the order in the ORDER_UPDATED shape."""
    return {"order": payload.get("order"), "event": "FILL"}


ORDER_UPDATE = Route("orders", "ORDER_UPDATE")
RISK_ALERT = Route("risk", "RISK_ALERT")
BROKER_STATUS = Route("brokers", "BROKER_STATUS")

ROUTES: dict[str, tuple[Route, ...]] = {
    "ORDER_CREATED": (ORDER_UPDATE,),
    "ORDER_UPDATED": (ORDER_UPDATE,),
    "ORDER_FILLED": (Route("fills", "FILL_NOTIFICATION"), Route("orders", "ORDER_UPDATE", _order_of_fill)),
    "POSITION_UPDATED": (Route("positions", "POSITION_UPDATE"),),
    # the market re-marked positions (throttled per user): market value and unrealized P&L
    "POSITIONS_MARKED": (Route("positions", "POSITIONS_MARKED"),),
    "RISK_ALERT": (RISK_ALERT,),
    "TRADING_STATE_CHANGED": (RISK_ALERT,),
    "BROKER_STATUS": (BROKER_STATUS,),
    "BROKER_ANOMALY": (BROKER_STATUS,),
    # a TWAP/VWAP/split parent: filled against schedule, on every slice, fill and control action
    "ALGO_PROGRESS": (Route("orders", "ALGO_PROGRESS"),),
}


def frames_for(envelope: Payload, topics: Iterable[str]) -> list[tuple[str, Payload]]:
    """The ``(topic, frame)`` pairs of one outbox envelope, restricted to ``topics``.

    An event type with no route (a type added later) produces nothing rather than an error:
    the stream only promises the frame types it documents.
    """
    wanted = set(topics)
    return [
        (route.topic, frame(route, envelope))
        for route in ROUTES.get(envelope["type"], ())
        if route.topic in wanted
    ]


def frame(route: Route, envelope: Payload) -> Payload:
    return {
        "type": route.frame_type,
        "event_id": envelope["event_id"],
        "occurred_at": envelope["occurred_at"],
        "data": route.data(envelope["payload"]),
    }


# --- the client protocol ------------------------------------------------------------------------


class ProtocolError(Exception):
    """A client message the server refuses; becomes an ERROR frame, the socket stays open."""

    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.extra = extra

    def frame(self) -> Payload:
        return error_frame(self.code, str(self), **self.extra)


def error_frame(code: str, message: str, **extra: Any) -> Payload:
    return {"type": "ERROR", "error": {"code": code, "message": message, **extra}}


def parse_topics(value: Any) -> set[str]:
    """The topics of a (un)subscribe message: a non-empty list of known topic names."""
    if not isinstance(value, list) or not value or not all(isinstance(t, str) for t in value):
        raise ProtocolError(
            "invalid_topics", "topics must be a non-empty list of strings", allowed=list(TOPICS)
        )
    unknown = sorted(set(value) - set(TOPICS))
    if unknown:
        raise ProtocolError(
            "unknown_topic", f"unknown topic(s): {', '.join(unknown)}", unknown=unknown, allowed=list(TOPICS)
        )
    return set(value)


def check_user(value: Any, user_id: int) -> None:
    """``userId`` is optional; when given it must be the authenticated user (never a way to switch)."""
    if value is not None and str(value) != str(user_id):
        raise ProtocolError("user_mismatch", "userId is not the authenticated user; nothing was subscribed")


def parse_since(value: Any) -> uuid.UUID | dt.datetime | None:
    """``since``: an outbox ``event_id`` (UUID) or an ISO 8601 timestamp (naive means UTC)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ProtocolError("invalid_since", "since must be an event_id or an ISO 8601 timestamp")
    try:
        return uuid.UUID(value)
    except ValueError:
        pass
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ProtocolError("invalid_since", "since must be an event_id or an ISO 8601 timestamp") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


class SentLog:
    """Which (outbox id, topic) frames this socket already sent, so none goes out twice.

    Replay and live delivery overlap (the group is joined before the replay is read, and the
    relay delivers at least once), so every frame is checked here. Memory is bounded: the oldest
    keys are forgotten, and everything at or below the highest forgotten id counts as sent.
    """

    def __init__(self, capacity: int = 4 * REPLAY_LIMIT) -> None:
        self.capacity = capacity
        self.keys: dict[tuple[int, str], None] = {}
        self.floor = 0

    def first_time(self, outbox_id: int, topic: str) -> bool:
        """True (and remembered) if this frame was not sent yet."""
        key = (outbox_id, topic)
        if outbox_id <= self.floor or key in self.keys:
            return False
        self.keys[key] = None
        while len(self.keys) > self.capacity:
            oldest = next(iter(self.keys))
            del self.keys[oldest]
            self.floor = max(self.floor, oldest[0])
        return True
