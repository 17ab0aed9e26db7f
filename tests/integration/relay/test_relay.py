"""The outbox relay: every event reaches every sink at least once, in order, and is stamped only
after every sink took it; the stream tail feeds an in-process layer without stamping anything."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer

from trademaster.models import OutboxEvent
from trademaster.outbox import outbox_record
from trademaster.relay import ChannelLayerSink, StreamTail, envelope, relay_batch, stream_group

pytestmark = pytest.mark.django_db


class Recorder:
    """A sink that keeps what it was given (the relay's contract, not a stand-in for Kafka)."""

    name = "recorder"

    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.fail = fail

    def publish(self, events) -> None:
        if self.fail:
            raise ConnectionError("sink down")
        self.batches.append([str(e.event_id) for e in events])


def record(n: int, user_id: int = 1) -> list[OutboxEvent]:
    return [
        outbox_record(type="ORDER_UPDATED", user_id=user_id, account_id=7, payload={"n": i}) for i in range(n)
    ]


def test_events_go_to_every_sink_in_order_in_batches_then_are_stamped():
    events = record(5)
    first, second = Recorder(), Recorder()
    assert relay_batch(sinks=[first, second], limit=3) == 3
    assert relay_batch(sinks=[first, second], limit=3) == 2
    assert relay_batch(sinks=[first, second], limit=3) == 0
    ids = [str(e.event_id) for e in events]
    assert first.batches == second.batches == [ids[:3], ids[3:]]
    assert not OutboxEvent.objects.filter(published_at__isnull=True).exists()


def test_a_failing_sink_leaves_the_batch_unstamped_for_the_next_run():
    events = record(2)
    healthy = Recorder()
    with pytest.raises(ConnectionError):
        relay_batch(sinks=[healthy, Recorder(fail=True)])
    assert OutboxEvent.objects.filter(published_at__isnull=True).count() == 2
    assert relay_batch(sinks=[healthy]) == 2  # at least once: the healthy sink sees them again
    assert healthy.batches == [[str(e.event_id) for e in events]] * 2


def test_the_envelope_carries_the_agreed_fields():
    (event,) = record(1)
    assert envelope(event) == {
        "event_id": str(event.event_id),
        "type": "ORDER_UPDATED",
        "occurred_at": event.occurred_at.isoformat(),
        "user_id": 1,
        "account_id": 7,
        "payload": {"n": 0},
        "schema_version": 1,
    }


def test_the_channel_layer_sink_reaches_only_the_events_users_group():
    layer = InMemoryChannelLayer()
    mine = async_to_sync(layer.new_channel)()
    theirs = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(stream_group(1), mine)
    async_to_sync(layer.group_add)(stream_group(2), theirs)
    (event,) = record(1, user_id=1)
    ChannelLayerSink(layer).publish([event])
    message = async_to_sync(layer.receive)(mine)
    assert message == {"type": "stream.event", "id": event.pk, "envelope": envelope(event)}
    assert async_to_sync(_nothing)(layer, theirs)


async def _nothing(layer, channel) -> bool:
    import asyncio

    try:
        await asyncio.wait_for(layer.receive(channel), 0.2)
    except TimeoutError:
        return True
    return False


def test_the_stream_tail_sends_new_events_once_and_stamps_nothing():
    record(2)  # before the tail started: served by replay, not by the tail
    tail = StreamTail(InMemoryChannelLayer())
    assert tail.fetch() == []
    new = record(3)
    assert [e.pk for e in tail.fetch()] == [e.pk for e in new]
    assert tail.fetch() == []
    late = record(1)
    assert [e.pk for e in tail.fetch()] == [late[0].pk]
    assert OutboxEvent.objects.filter(published_at__isnull=True).count() == 6


def test_the_stream_tail_picks_up_a_row_committed_out_of_id_order():
    tail = StreamTail(InMemoryChannelLayer())
    tail.fetch()
    first, second = record(2)
    assert [e.pk for e in tail.fetch()] == [first.pk, second.pk]
    # a row with a lower id that only becomes visible now (a slower concurrent transaction)
    hidden = OutboxEvent.objects.get(pk=first.pk)
    tail.sent.pop(hidden.pk)
    assert [e.pk for e in tail.fetch()] == [hidden.pk]
