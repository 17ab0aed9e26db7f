"""The outbox relay: publishes stored domain events to the live stream and to Kafka.

Every domain event is written to ``outbox_events`` in the transaction that caused it
(``trademaster.outbox``). The relay reads unpublished rows in id order, in batches, hands each
batch to every sink and only then stamps ``published_at``. A relay killed mid-batch publishes
that batch again when it restarts: delivery is at-least-once, and consumers de-duplicate on
``event_id``. Several relays may run at once: on PostgreSQL each claims its batch with
``FOR UPDATE SKIP LOCKED``.

Sinks:

* :class:`ChannelLayerSink`: the live stream. One group per user (:func:`stream_group`), so a
  WebSocket only ever joins its own user's group.
* ``trademaster.kafka.KafkaSink`` when ``KAFKA_BOOTSTRAP_SERVERS`` is set.

Where it runs: ``manage.py relay_outbox`` (a long-running loop), or the Celery task
``trademaster.tasks.relay_outbox_task``. With the in-process channel layer of the embedded
default, no other process can reach daphne's WebSockets, so daphne tails the outbox itself
(:class:`StreamTail`) and changes made in any process (the API, the Celery worker, the market
runner) reach browsers through the shared database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from trademaster.models import OutboxEvent

logger = logging.getLogger(__name__)

BATCH = 500


class Sink(Protocol):
    """Where relayed events go. ``publish`` returns once every event is durably handed over,
    and raises if any was not (the whole batch is then published again later)."""

    name: str

    def publish(self, events: Sequence[OutboxEvent]) -> None: ...


def envelope(event: OutboxEvent) -> dict[str, Any]:
    """The event as it travels (JSON): the same envelope on Kafka and on the live stream."""
    return {
        "event_id": str(event.event_id),
        "type": event.type,
        "occurred_at": event.occurred_at.isoformat(),
        "user_id": event.user_id,
        "account_id": event.account_id,
        "payload": event.payload,
        "schema_version": event.schema_version,
    }


def stream_group(user_id: int) -> str:
    """The channel-layer group carrying one user's events (and nobody else's)."""
    return f"stream.user.{user_id}"


class ChannelLayerSink:
    """Sends each event to its user's group as ``{"type": "stream.event", "id", "envelope"}``."""

    name = "stream"

    def __init__(self, layer=None) -> None:
        from channels.layers import get_channel_layer

        self.layer = layer or get_channel_layer()

    def publish(self, events: Sequence[OutboxEvent]) -> None:
        async_to_sync(self.publish_async)(events)

    async def publish_async(self, events: Sequence[OutboxEvent]) -> None:
        for event in events:
            await self.layer.group_send(
                stream_group(event.user_id),
                {"type": "stream.event", "id": event.pk, "envelope": envelope(event)},
            )


def configured_sinks() -> list[Sink]:
    """The stream when its channel layer reaches other processes (Redis; the in-process layer of
    the embedded default is fed by daphne's own :class:`StreamTail`), and Kafka when configured."""
    sinks: list[Sink] = [] if layer_is_in_process() else [ChannelLayerSink()]
    if getattr(settings, "KAFKA_BOOTSTRAP_SERVERS", ""):
        from trademaster.kafka import KafkaSink

        sinks.append(KafkaSink())
    return sinks


def relay_batch(*, sinks: Sequence[Sink], limit: int = BATCH) -> int:
    """Publish up to ``limit`` unpublished events to every sink, oldest first; the number relayed.

    The batch stays claimed (row locks, PostgreSQL) until it is stamped, so two relays never
    publish the same batch at the same time; if a sink raises, nothing is stamped.
    """
    with transaction.atomic():
        pending = OutboxEvent.objects.filter(published_at__isnull=True).order_by("id")
        if connection.features.has_select_for_update_skip_locked:
            pending = pending.select_for_update(skip_locked=True)
        events = list(pending[:limit])
        if not events:
            return 0
        for sink in sinks:
            sink.publish(events)
        OutboxEvent.objects.filter(pk__in=[e.pk for e in events]).update(published_at=timezone.now())
    return len(events)


def relay_lag_seconds() -> float | None:
    """Age of the oldest unpublished event (None when everything is published)."""
    oldest = (
        OutboxEvent.objects.filter(published_at__isnull=True)
        .order_by("id")
        .values_list("occurred_at")
        .first()
    )
    return None if oldest is None else (timezone.now() - oldest[0]).total_seconds()


# --- running it ---------------------------------------------------------------------------------

_wake = threading.Event()  # set after a commit that wrote outbox rows, in this process


def outbox_written() -> None:
    """Called on commit of a transaction that wrote outbox rows: wake this process's relay."""
    _wake.set()
    for loop, event in list(_async_wakers):
        loop.call_soon_threadsafe(event.set)


_async_wakers: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()


def relay_run(
    *,
    sinks: Sequence[Sink],
    idle_seconds: float = 0.05,
    should_stop: Callable[[], bool] = lambda: False,
    batch: int = BATCH,
) -> int:
    """Relay until ``should_stop()``: full batches back to back, otherwise wait for a commit in
    this process or ``idle_seconds`` (another process's commit). Returns the events relayed."""
    total = 0
    while not should_stop():
        try:
            count = relay_batch(sinks=sinks, limit=batch)
        except Exception:
            logger.exception("outbox relay batch failed; retrying")
            count = 0
            _wake.wait(1)
        total += count
        if count < batch:
            _wake.wait(idle_seconds)
            _wake.clear()
    return total


# --- the embedded default: a stream tail inside daphne -------------------------------------------

LOOKBACK_IDS = 1000  # rows committed out of id order (concurrent writers) are still picked up


class StreamTail:
    """Feeds this process's WebSockets from the outbox, without touching ``published_at``.

    The embedded default's channel layer lives in one process, so events written by another
    process (the Celery worker, the market runner) can only reach daphne's WebSockets if daphne
    reads them itself. It reads new rows by id, looking back :data:`LOOKBACK_IDS` ids so that a
    transaction that committed after a later id was seen is not missed, and remembers what it
    sent so nothing goes out twice.
    """

    def __init__(self, layer=None) -> None:
        self.sink = ChannelLayerSink(layer)
        self.cursor: int | None = None
        self.sent: dict[int, None] = {}  # recently sent ids, oldest first
        self.ready = asyncio.Event()  # set once the starting point is known

    def fetch(self) -> list[OutboxEvent]:
        if self.cursor is None:  # start at the end: the past is served by replay on request
            self.cursor = OutboxEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
            past = OutboxEvent.objects.filter(id__gt=self.cursor - LOOKBACK_IDS).values_list("id", flat=True)
            self.sent = dict.fromkeys(past)
            return []
        rows = [
            e
            for e in OutboxEvent.objects.filter(id__gt=self.cursor - LOOKBACK_IDS).order_by("id")
            if e.pk not in self.sent
        ]
        for event in rows:
            self.sent[event.pk] = None
            self.cursor = max(self.cursor, event.pk)
        while len(self.sent) > 4 * LOOKBACK_IDS:
            del self.sent[next(iter(self.sent))]
        return rows

    async def run(self, *, idle_seconds: float = 0.05) -> None:
        from asgiref.sync import sync_to_async

        wake = asyncio.Event()
        waker = (asyncio.get_running_loop(), wake)
        _async_wakers.add(waker)
        fetch = sync_to_async(self.fetch, thread_sensitive=False)
        try:
            await fetch()  # the starting point: everything after it is live
            self.ready.set()
            while True:
                try:
                    events = await fetch()
                    if events:
                        await self.sink.publish_async(events)
                except Exception:
                    logger.exception("stream tail failed; retrying")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), idle_seconds)
                wake.clear()
        finally:
            _async_wakers.discard(waker)


_tail: tuple[asyncio.Task, StreamTail] | None = None


def layer_is_in_process() -> bool:
    return "InMemoryChannelLayer" in settings.CHANNEL_LAYERS["default"]["BACKEND"]


async def ensure_stream_tail() -> None:
    """Start a :class:`StreamTail` once per process when the channel layer is in-process, and
    return once it knows where it starts: every event committed after that reaches the groups.

    Call it from daphne's WebSocket connect, after joining the group. With a cross-process layer
    (Redis) the relay delivers to the stream, and this does nothing.
    """
    global _tail
    if not layer_is_in_process():
        return
    loop = asyncio.get_running_loop()
    if _tail is None or _tail[0].done() or _tail[0].get_loop() is not loop:  # a new loop: tests, reloads
        tail = StreamTail()
        _tail = (loop.create_task(tail.run()), tail)
    await _tail[1].ready.wait()
