"""The WebSocket consumer of ``/trading/stream``: protocol in, frames out, nothing else.

The socket joins its own user's group (:func:`trademaster.relay.stream_group`) at connect, before
any replay is read, so no event falls between the replay and the live feed; :class:`SentLog`
drops whatever arrives twice. Channels handles one message of a consumer at a time, so live events
that arrive during a replay wait in the channel and are checked against the log afterwards.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.utils import timezone

from trademaster.metrics import stream_connected, stream_disconnected
from trademaster.relay import ensure_stream_tail, stream_group
from trademaster.stream.frames import (
    ProtocolError,
    SentLog,
    check_user,
    error_frame,
    frames_for,
    parse_since,
    parse_topics,
)
from trademaster.stream.replay import replay_events

logger = logging.getLogger(__name__)

UNAUTHORIZED = 4401  # a WebSocket close code in the application range, mirroring HTTP 401


class StreamConsumer(AsyncJsonWebsocketConsumer):
    """One client's live stream: subscribe/unsubscribe to topics, optionally replay, then live."""

    user_id: int | None = None
    closing = False

    async def connect(self) -> None:
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            # accept first so browsers see the code (a rejected handshake is only "1006")
            await self.send_json(error_frame("unauthorized", "log in or present a bearer token"))
            await self.close(code=UNAUTHORIZED, reason="unauthorized")
            return
        self.user_id = user.pk
        self.topics: set[str] = set()
        self.sent = SentLog()
        await self.channel_layer.group_add(stream_group(self.user_id), self.channel_name)
        await ensure_stream_tail()  # embedded default: daphne feeds its own groups from the outbox
        stream_connected()

    async def disconnect(self, code: int) -> None:
        if self.user_id is not None:
            stream_disconnected()
            await self.channel_layer.group_discard(stream_group(self.user_id), self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Bad input gets an ERROR frame and the socket stays open (Channels would raise)."""
        if self.user_id is None or await self.expired():
            return
        try:
            message = json.loads(text_data) if text_data is not None else None
        except json.JSONDecodeError:
            await self.send_json(error_frame("invalid_json", "messages must be JSON text"))
            return
        try:
            await self.handle(message)
        except ProtocolError as error:
            await self.send_json(error.frame())

    async def handle(self, message: Any) -> None:
        if not isinstance(message, dict):
            raise ProtocolError("invalid_message", "a message is a JSON object with an action")
        action = message.get("action")
        if action == "subscribe":
            await self.subscribe(message)
        elif action == "unsubscribe":
            self.topics -= parse_topics(message.get("topics"))
            await self.send_json({"type": "UNSUBSCRIBED", "topics": sorted(self.topics)})
        else:
            raise ProtocolError("unknown_action", "action must be 'subscribe' or 'unsubscribe'")

    async def subscribe(self, message: dict[str, Any]) -> None:
        """Everything is checked (and the replay read) before anything is subscribed."""
        topics = parse_topics(message.get("topics"))
        check_user(message.get("userId"), self.user_id)
        since = parse_since(message.get("since"))
        replay = None
        if since is not None:
            replay = await database_sync_to_async(replay_events)(user_id=self.user_id, since=since)
        self.topics |= topics
        await self.send_json({"type": "SUBSCRIBED", "topics": sorted(self.topics)})
        if replay is not None:
            await self.send_replay(*replay, topics=topics)

    async def send_replay(self, events: list[tuple[int, dict[str, Any]]], truncated: bool, *, topics) -> None:
        """The missed events' frames for the topics just subscribed, then REPLAY_DONE."""
        count = 0
        for outbox_id, envelope in events:
            count += await self.forward(outbox_id, envelope, topics)
        await self.send_json({"type": "REPLAY_DONE", "count": count, "truncated": truncated})

    async def stream_event(self, message: dict[str, Any]) -> None:
        """A relayed outbox event of this user (group message type ``stream.event``)."""
        if await self.expired():
            return
        await self.forward(message["id"], message["envelope"], self.topics)

    async def expired(self) -> bool:
        """A socket opened with a bearer token ends when the token does: nothing more is sent."""
        expires = self.scope.get("token_expires")
        if expires is None or timezone.now() < expires:
            return False
        if not self.closing:
            self.closing = True
            await self.send_json(error_frame("token_expired", "the access token has expired; reconnect"))
            await self.close(code=UNAUTHORIZED, reason="token expired")
        return True

    async def forward(self, outbox_id: int, envelope: dict[str, Any], topics: set[str]) -> int:
        """Send the event's frames for ``topics`` that were not sent before; how many were sent."""
        owner = envelope.get("user_id")
        if owner != self.user_id:  # the group is per user; this is a safety net
            logger.error("event %s of user %s reached user %s's stream", outbox_id, owner, self.user_id)
            return 0
        sent = 0
        for topic, frame in frames_for(envelope, topics):
            if self.sent.first_time(outbox_id, topic):
                await self.send_json(frame)
                sent += 1
        return sent
