"""manage.py consume_risk_events: a fill on trading.orders.filled runs the live risk rules for its
user; a breach opens a RiskAlert, which the relay publishes to trading.risk.alerts. A redelivered
fill is recognised by its event_id."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.core.management import call_command

from orders.services import Actor, order_place
from risk.models import RiskAlert, RiskProfile
from risk.services import risk_profile_get
from tests.builders import order_request
from tests.integration.kafka.support import envelope_of, produce, read_until, reader
from trademaster.kafka import ORDERS_FILLED, RISK_ALERTS, KafkaSink
from trademaster.relay import relay_batch

pytestmark = pytest.mark.django_db


def relay_to_kafka() -> None:
    sink = KafkaSink()
    try:
        while relay_batch(sinks=[sink]):
            pass
    finally:
        sink.close()


def consume_risk_events(count: int) -> str:
    out = io.StringIO()
    call_command("consume_risk_events", max_messages=count, timeout=60, stdout=out)
    return out.getvalue()


def test_a_fill_that_breaches_a_limit_raises_an_alert_once(trader, accounts, set_mid, kafka, kafka_broker):
    # given a filled buy of 10 AAPL at about 100 (about 1,000 gross exposure), already on Kafka
    set_mid("AAPL", "100.00")
    order = order_place(
        user=trader, request=order_request(quantity="10"), actor=Actor.for_user(trader), broker_id=None
    ).order
    assert order.status == "FILLED"
    relay_to_kafka()
    # and a gross exposure limit of 500, set after the fill (no alert yet)
    RiskProfile.objects.filter(pk=risk_profile_get(user=trader).pk).update(max_gross_exposure=Decimal("500"))
    assert not RiskAlert.objects.exists()
    # when the risk consumer handles the fill
    out = consume_risk_events(1)
    # then the rules ran for the trader and opened a critical gross exposure alert
    assert "1 fill event(s), 0 duplicate(s), 1 risk evaluation(s), 1 open alert(s)" in out
    alert = RiskAlert.objects.get(user=trader)
    assert (alert.rule, alert.severity, alert.limit, alert.occurrences) == (
        "GROSS_EXPOSURE",
        "CRITICAL",
        Decimal("500"),
        1,
    )
    # and the relay publishes it to trading.risk.alerts, keyed by the user (an alert has no account)
    relay_to_kafka()
    consumer = reader(kafka_broker, RISK_ALERTS, ORDERS_FILLED)
    try:
        records = read_until(consumer, lambda rs: {r.topic.removeprefix(kafka) for r in rs} >= {RISK_ALERTS})
        records += read_until(consumer, lambda rs: True)
    finally:
        consumer.close()
    [published] = [r for r in records if r.topic.removeprefix(kafka) == RISK_ALERTS]
    body = envelope_of(published)
    assert (body["type"], body["payload"]["id"], body["payload"]["rule"]) == (
        "RISK_ALERT",
        alert.pk,
        "GROSS_EXPOSURE",
    )
    assert published.key == str(trader.pk).encode()
    # when the same fill is delivered again
    [fill] = [r for r in records if r.topic.removeprefix(kafka) == ORDERS_FILLED]
    produce(kafka_broker, ORDERS_FILLED, [(fill.key, fill.value)])
    out = consume_risk_events(1)
    # then it is recognised and not evaluated again
    assert "1 fill event(s), 1 duplicate(s), 0 risk evaluation(s)" in out
    assert RiskAlert.objects.get(user=trader).occurrences == 1
