"""manage.py consume_signals: a signal on trading.signals is an API order request; bad ones go to
trading.signals.dlq with the reasons, and never block the partition."""

from __future__ import annotations

import io
import json
from decimal import Decimal

import pytest
from django.conf import settings
from django.core.management import call_command
from kafka import KafkaConsumer, TopicPartition

from orders.models import Order, OrderEvent
from risk.models import RiskProfile
from risk.services import risk_profile_get
from tests.integration.kafka.support import produce, read_until, reader
from trademaster.kafka import SIGNALS, SIGNALS_DLQ, signal_handle, topic_name

pytestmark = pytest.mark.django_db


def signal(signal_id: str, user: str = "trader", **order) -> bytes:
    body = {"symbol": "AAPL", "side": "BUY", "order_type": "MARKET", "quantity": "10", **order}
    return json.dumps({"signal_id": signal_id, "user": user, "order": body}).encode()


def consume_signals(count: int) -> str:
    out = io.StringIO()
    call_command("consume_signals", max_messages=count, timeout=60, stdout=out)
    return out.getvalue()


def committed(bootstrap: str, group: str, base: str) -> int:
    """The group's committed offsets on the topic, summed over partitions."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        name = topic_name(base)
        return sum(
            consumer.committed(TopicPartition(name, p)) or 0 for p in consumer.partitions_for_topic(name)
        )
    finally:
        consumer.close()


def test_a_signal_becomes_one_order_even_when_delivered_twice(trader, accounts, set_mid, kafka, kafka_broker):
    # given a signal for the trader, for venue A, on the topic twice (a redelivery)
    set_mid("AAPL", "100.00")
    raw = signal("alpha-1", broker_id=accounts["PAPER-EQ-A"].pk)
    produce(kafka_broker, SIGNALS, [(b"alpha-1", raw), (b"alpha-1", raw)])
    # when the consumer handles both messages
    out = consume_signals(2)
    # then one order was placed, named after the signal, and the copy found it
    assert "2 signal(s): 1 placed, 1 already placed, 0 dead-lettered" in out
    order = Order.objects.get(user=trader)
    assert (order.client_order_id, order.status, order.quantity) == ("sig:alpha-1", "FILLED", Decimal("10"))
    assert order.broker_id == accounts["PAPER-EQ-A"].pk
    created = OrderEvent.objects.get(order=order, event_type="CREATED")
    assert (created.actor_type, created.actor_label) == ("AGENT", "signal:alpha-1")
    # and both offsets are committed (the group will not see them again)
    assert committed(kafka_broker, settings.KAFKA_SIGNALS_GROUP, SIGNALS) == 2
    # and handling the signal once more still returns that order
    again = signal_handle(raw)
    assert (again.order.pk, again.created, again.dead_letter) == (order.pk, False, None)


def test_bad_signals_go_to_the_dead_letter_topic_and_the_partition_moves_on(
    trader, accounts, set_mid, kafka, kafka_broker
):
    set_mid("AAPL", "100.00")
    RiskProfile.objects.filter(pk=risk_profile_get(user=trader).pk).update(max_order_quantity=Decimal("50"))
    bad = {
        "not-json": b"{not json",
        "unknown-user": signal("s-unknown", user="nobody"),
        "bad-type": signal("s-type", order_type="BOGUS"),
        "no-price": signal("s-price", order_type="LIMIT"),
    }
    good = signal("s-good")
    too_big = signal("s-big", quantity="100")  # refused by the risk check: a REJECTED order
    # given the bad ones first, all with one key (one partition): they must not block the good ones
    produce(kafka_broker, SIGNALS, [(b"k", raw) for raw in (*bad.values(), good, too_big)])
    # when the consumer handles the six messages
    out = consume_signals(6)
    # then the valid ones became orders, one filled and one rejected by risk (not a dead letter)
    assert "6 signal(s): 2 placed, 0 already placed, 4 dead-lettered" in out
    orders = dict(Order.objects.filter(user=trader).values_list("client_order_id", "status"))
    assert orders == {"sig:s-good": "FILLED", "sig:s-big": "REJECTED"}
    # and the four bad ones are on the DLQ: original key and bytes, with the reasons in headers
    consumer = reader(kafka_broker, SIGNALS_DLQ)
    try:
        letters = read_until(consumer, lambda rs: len(rs) >= 4)
    finally:
        consumer.close()
    assert sorted(r.value for r in letters) == sorted(bad.values())
    by_value = {r.value: r for r in letters}
    errors = {name: json.loads(dict(by_value[raw].headers)["dlq.error"]) for name, raw in bad.items()}
    assert errors["not-json"]["code"] == "bad_json"
    assert (errors["unknown-user"]["code"], errors["unknown-user"]["fields"]) == (
        "unknown_user",
        {"user": ["No such user."]},
    )
    assert errors["bad-type"]["code"] == "validation_error" and "order_type" in errors["bad-type"]["fields"]
    assert errors["no-price"]["code"] == "validation_error" and "price" in errors["no-price"]["fields"]
    for letter in letters:
        headers = dict(letter.headers)
        assert letter.key == b"k"
        assert headers["dlq.topic"] == topic_name(SIGNALS).encode()
        assert int(headers["dlq.offset"]) >= 0 and int(headers["dlq.partition"]) >= 0
    assert dict(by_value[bad["no-price"]].headers)["dlq.signal_id"] == b"s-price"
    assert "dlq.signal_id" not in dict(by_value[bad["not-json"]].headers)


def test_a_signal_names_its_user_by_id_and_may_name_a_broker_account_of_theirs(
    trader, other_trader, accounts, set_mid
):
    set_mid("AAPL", "100.00")
    venue_b = accounts["PAPER-EQ-B"]
    order = {"symbol": "AAPL", "side": "BUY", "order_type": "LIMIT", "quantity": "5", "price": "99.00"}
    raw = json.dumps({"signal_id": "b-1", "user_id": trader.pk, "broker_id": venue_b.pk, "order": order})
    # when a signal names the trader by id and one of their broker accounts
    outcome = signal_handle(raw.encode())
    # then the order rests at that account, exactly as the API would have placed it
    assert outcome.dead_letter is None and outcome.created
    assert (outcome.order.user_id, outcome.order.broker_id, outcome.order.status) == (
        trader.pk,
        venue_b.pk,
        "ACCEPTED",
    )
    # and another user's signal cannot use that account: a dead letter, no order
    stolen = json.dumps({"signal_id": "b-2", "user": "other", "broker_id": venue_b.pk, "order": order})
    refused = signal_handle(stolen.encode())
    assert refused.order is None
    assert refused.dead_letter["code"] == "broker_not_found"
    assert not Order.objects.filter(user=other_trader).exists()
    # and the signal id cannot be reused for another order
    changed = json.dumps({"signal_id": "b-1", "user_id": trader.pk, "order": {**order, "quantity": "6"}})
    assert signal_handle(changed.encode()).dead_letter["code"] == "client_order_id_reused"
