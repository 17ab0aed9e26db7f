from __future__ import annotations

from decimal import Decimal

import pytest

from orders.models import Fill, Order, OrderEvent, Position
from orders.services import Actor, market_tick, order_cancel, order_place
from tests.builders import order_request
from trademaster.models import OutboxEvent

pytestmark = pytest.mark.django_db


def test_market_buy_fills_at_the_ask_and_opens_a_position(trader, accounts, set_mid):
    # given AAPL at 100.00 on venue A (2 bps spread -> ask 100.01, 200 shown per level)
    set_mid("AAPL", "100.00")
    account = accounts["PAPER-EQ-A"]
    # when the trader buys 10 at market there
    placed = order_place(
        user=trader, request=order_request(quantity="10"), actor=Actor.for_user(trader), broker_id=account.pk
    )
    # then the order filled in full at the ask, with the venue's minimum commission
    order = placed.order
    assert placed.created is True
    assert order.status == "FILLED"
    assert order.filled_quantity == Decimal("10")
    assert order.average_fill_price == Decimal("100.01")
    assert order.commission == Decimal("1.0000")
    # and the position, the fill and the audit trail agree
    position = Position.objects.get(user=trader, broker=account, symbol="AAPL")
    assert (position.quantity, position.average_cost) == (Decimal("10"), Decimal("100.01"))
    assert Fill.objects.filter(order=order).count() == 1
    events = list(OrderEvent.objects.filter(order=order).values_list("event_type", "to_status"))
    assert events == [
        ("CREATED", "PENDING"),
        ("SUBMIT", "SUBMITTED"),
        ("ACCEPT", "ACCEPTED"),
        ("FILL", "FILLED"),
    ]
    assert OutboxEvent.objects.filter(type="ORDER_FILLED", user_id=trader.pk).count() == 1


def test_resting_limit_fills_on_a_later_tick_when_the_market_crosses(trader, accounts, set_mid):
    # given a buy limit below the market
    set_mid("AAPL", "100.00")
    order = order_place(
        user=trader,
        request=order_request(order_type="LIMIT", price="99.00", quantity="5"),
        actor=Actor.for_user(trader),
        broker_id=accounts["PAPER-EQ-A"].pk,
    ).order
    assert order.status == "ACCEPTED"
    # when the market falls through the limit and the venue ticks
    set_mid("AAPL", "98.50")
    market_tick(advance=False)
    # then it filled at its own limit price
    order.refresh_from_db()
    assert order.status == "FILLED"
    assert order.average_fill_price == Decimal("99.00")


def test_cancel_after_fill_is_refused_without_side_effects(trader, accounts, set_mid):
    set_mid("AAPL", "100.00")
    order = order_place(user=trader, request=order_request(), actor=Actor.for_user(trader)).order
    events_before = OrderEvent.objects.filter(order=order).count()
    from trademaster.errors import Conflict

    with pytest.raises(Conflict) as excinfo:
        order_cancel(user=trader, order_id=order.pk, actor=Actor.for_user(trader))
    assert excinfo.value.code == "order_not_cancellable"
    assert Order.objects.get(pk=order.pk).status == "FILLED"
    assert OrderEvent.objects.filter(order=order).count() == events_before
