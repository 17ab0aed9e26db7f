"""The relay's Kafka sink: an order placed through the API reaches its topics, keyed by account."""

from __future__ import annotations

import json

import pytest

from tests.integration.kafka.support import envelope_of, read_until, reader
from trademaster.kafka import (
    ORDERS_CREATED,
    ORDERS_FILLED,
    OUTBOX_TOPICS,
    POSITIONS_UPDATED,
    RISK_ALERTS,
    KafkaSink,
)
from trademaster.models import OutboxEvent
from trademaster.relay import envelope, relay_batch

pytestmark = pytest.mark.django_db

ENVELOPE_FIELDS = {"event_id", "type", "occurred_at", "user_id", "account_id", "payload", "schema_version"}


def test_an_api_order_is_published_to_its_topics_keyed_by_its_account(
    api, trader, accounts, set_mid, kafka, kafka_broker
):
    # given a market order placed through the API at venue A, filled at once
    set_mid("AAPL", "100.00")
    account = accounts["PAPER-EQ-A"]
    response = api.post(
        "/api/v1/orders/",
        {"symbol": "AAPL", "side": "BUY", "order_type": "MARKET", "quantity": "10", "broker_id": account.pk},
        format="json",
    )
    assert response.status_code == 201, response.content
    order = response.json()
    assert order["status"] == "FILLED"
    assert order["broker_id"] == account.pk
    pending = list(OutboxEvent.objects.filter(published_at__isnull=True))
    for_kafka = {str(e.event_id): e for e in pending if e.type in OUTBOX_TOPICS}
    # when the relay runs with the Kafka sink
    sink = KafkaSink()
    try:
        assert relay_batch(sinks=[sink], limit=1000) == len(pending)
    finally:
        sink.close()
    # then everything is stamped, and the events with a topic are on Kafka
    assert not OutboxEvent.objects.filter(published_at__isnull=True).exists()
    consumer = reader(kafka_broker, ORDERS_CREATED, ORDERS_FILLED, POSITIONS_UPDATED, RISK_ALERTS)
    try:
        records = read_until(consumer, lambda rs: len(rs) >= len(for_kafka))
    finally:
        consumer.close()
    envelopes = [envelope_of(r) for r in records]
    assert sorted(e["event_id"] for e in envelopes) == sorted(for_kafka)
    assert {(r.topic.removeprefix(kafka), e["type"]) for r, e in zip(records, envelopes, strict=True)} == {
        (ORDERS_CREATED, "ORDER_CREATED"),
        (ORDERS_FILLED, "ORDER_FILLED"),
        (POSITIONS_UPDATED, "POSITION_UPDATED"),
    }
    # stream-only types (ORDER_UPDATED: submitted, accepted) were relayed but not sent to Kafka
    assert {e.type for e in pending} - set(OUTBOX_TOPICS) >= {"ORDER_UPDATED"}
    # keyed by the account; the value is the relay's envelope, amounts as strings
    for record, body in zip(records, envelopes, strict=True):
        assert record.key == str(account.pk).encode()
        assert set(body) == ENVELOPE_FIELDS
        assert body == json.loads(json.dumps(envelope(for_kafka[body["event_id"]])))
        assert (body["user_id"], body["account_id"], body["schema_version"]) == (trader.pk, account.pk, 1)
        assert dict(record.headers)["type"] == body["type"].encode()
    [filled] = [e for e in envelopes if e["type"] == "ORDER_FILLED"]
    assert filled["payload"]["order"]["id"] == order["id"]
    assert filled["payload"]["order"]["status"] == "FILLED"
    assert filled["payload"]["fill"]["quantity"] == "10.00000000"
    [position] = [e for e in envelopes if e["type"] == "POSITION_UPDATED"]
    assert position["payload"]["position"]["quantity"] == "10.00000000"
