"""The embedded default (in-process channel layer, no Redis, no relay process): daphne tails the
outbox itself, so an event written by another process (the Celery worker, the market runner)
still reaches the socket."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.utils import timezone

from trademaster.management.commands.issue_token import token_issue
from trademaster.models import OutboxEvent
from trademaster.relay import layer_is_in_process

from .support import WAIT, stream, subscribe

# like the other stream tests: reference data restored after the flush, or their set-up collides
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def write_elsewhere(user_id: int) -> OutboxEvent:
    """A row as another process writes it: no relay of this process is told about it."""
    return OutboxEvent.objects.create(
        type="ORDER_UPDATED",
        occurred_at=timezone.now(),
        user_id=user_id,
        account_id=None,
        payload={"order": {"id": 1, "status": "ACCEPTED"}, "event": "ACCEPT"},
    )


def test_an_event_written_by_another_process_reaches_the_socket(settings, trader):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    assert layer_is_in_process()
    raw = token_issue(user=trader, scopes=["read"])

    async def scenario():
        async with stream(token=raw) as client:
            assert (await subscribe(client, ["orders"]))["type"] == "SUBSCRIBED"
            event = await database_sync_to_async(write_elsewhere)(trader.pk)
            frame = await client.receive_json_from(timeout=WAIT)
            return event, frame

    event, frame = async_to_sync(scenario)()
    assert (frame["type"], frame["event_id"]) == ("ORDER_UPDATE", str(event.event_id))
    # the tail only reads: the relay's delivery stamp is left for the relay (and Kafka)
    assert OutboxEvent.objects.get(pk=event.pk).published_at is None
