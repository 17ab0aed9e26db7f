"""Modify (cancel-replace) and cancel through the service, and broker reports that race them.

Venue A (PAPER-EQ-A) at AAPL 100.00: bid 99.99 / ask 100.01, 200 shown at the touch,
$0.005/share with a $1 minimum. Venue B (PAPER-EQ-B) at 100.00: asks 100.03 x120, 100.04 x240.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone

from brokers.domain.adapter import BrokerOrderUpdate, FillReport, OrderChange, UpdateKind
from orders.domain.state import OrderEventType
from orders.models import Fill, Order, OrderEvent, Position
from orders.services import (
    Actor,
    _lock,
    _transition,
    market_tick,
    order_apply_updates,
    order_cancel,
    order_replace,
)
from tests.integration.pipeline.support import events, fills, fresh, paper_order, place
from trademaster.errors import Conflict, ValidationFailed
from trademaster.models import OutboxEvent

pytestmark = pytest.mark.django_db

D = Decimal


def resting_buy(trader, account, *, quantity="10", price="99.00"):
    return place(
        trader,
        account,
        side="BUY",
        order_type="LIMIT",
        quantity=quantity,
        price=price,
        time_in_force="GTC",
    ).order


def replace(trader, order, **change):
    return order_replace(
        user=trader, order_id=order.pk, change=OrderChange(**change), actor=Actor.for_user(trader)
    )


def cancel(trader, order):
    return order_cancel(user=trader, order_id=order.pk, actor=Actor.for_user(trader))


def fill_update(order, broker_fill_id, quantity, price, fee="0.0000"):
    return BrokerOrderUpdate(
        kind=UpdateKind.FILL,
        client_order_id=order.client_order_id,
        broker_order_id=order.broker_order_id or "",
        occurred_at=timezone.now(),
        fill=FillReport(
            broker_fill_id=broker_fill_id, quantity=D(quantity), price=D(price), fee=D(fee), liquidity="MAKER"
        ),
    )


def position_quantity(trader, account, symbol="AAPL"):
    position = Position.objects.filter(user=trader, broker=account, symbol=symbol).first()
    return None if position is None else position.quantity


# --- modify ---------------------------------------------------------------------------------------


def test_modify_a_resting_limit_to_a_marketable_price_fills_it_at_once(trader, accounts, set_mid):
    # given a buy limit resting at 99.00 while the ask is 100.01
    set_mid("AAPL", "100.00")
    order = resting_buy(trader, accounts["PAPER-EQ-A"])
    assert order.status == "ACCEPTED"
    # when its price is raised to 100.05
    order = replace(trader, order, price=D("100.05"))
    # then the new price is in force and the order fills at once at the ask, taking liquidity
    assert order.status == "FILLED"
    assert order.price == D("100.05")
    assert order.average_fill_price == D("100.01")
    assert fills(order) == [(D("10"), D("100.01"), D("1.0000"), "TAKER")]
    assert events(order)[-3:] == [
        ("REQUEST_REPLACE", "PENDING_REPLACE"),
        ("REPLACE", "ACCEPTED"),
        ("FILL", "FILLED"),
    ]
    assert paper_order(order).price == D("100.05")
    assert paper_order(order).status == "FILLED"


def test_modify_quantity_up_and_down(trader, accounts, set_mid):
    # given a resting buy limit for 10
    set_mid("AAPL", "100.00")
    order = resting_buy(trader, accounts["PAPER-EQ-A"])
    # when the quantity is raised to 20
    order = replace(trader, order, quantity=D("20"))
    # then the order and the venue both hold 20, and it keeps working with the same id
    assert (order.status, order.quantity) == ("ACCEPTED", D("20"))
    assert paper_order(order).quantity == D("20")
    # when it is cut to 5
    order = replace(trader, order, quantity=D("5"))
    # then both hold 5
    assert (order.status, order.quantity) == ("ACCEPTED", D("5"))
    assert paper_order(order).quantity == D("5")
    assert Order.objects.filter(user=trader).count() == 1
    # and the audit trail keeps the before/after of each replace
    replaced = list(OrderEvent.objects.filter(order=order, event_type="REPLACE").order_by("id"))
    assert [(D(e.data["before"]["quantity"]), D(e.data["after"]["quantity"])) for e in replaced] == [
        (D("10"), D("20")),
        (D("20"), D("5")),
    ]
    # and the new quantity is what fills when the market crosses
    set_mid("AAPL", "98.50")
    market_tick(advance=False)
    order = fresh(order)
    assert (order.status, order.filled_quantity) == ("FILLED", D("5"))


def test_modify_quantity_of_a_partially_filled_order_below_what_filled_is_refused(trader, accounts, set_mid):
    # given a buy limit for 200 at 100.03 on venue B: 120 offered there fill, 80 rest
    set_mid("AAPL", "100.00")
    order = resting_buy(trader, accounts["PAPER-EQ-B"], quantity="200", price="100.03")
    assert order.status == "PARTIALLY_FILLED"
    assert order.filled_quantity == D("120")
    trail = events(order)
    # when the trader asks to cut it to 100, then to exactly the 120 filled
    for quantity in ("100", "120"):
        with pytest.raises(ValidationFailed) as excinfo:
            replace(trader, order, quantity=D(quantity))
        # then it is a validation error on the quantity, and nothing changed
        assert "quantity" in excinfo.value.fields
    order = fresh(order)
    assert (order.status, order.quantity, order.filled_quantity) == ("PARTIALLY_FILLED", D("200"), D("120"))
    assert events(order) == trail
    assert paper_order(order).quantity == D("200")
    # and a cut to a quantity above the filled part is accepted; the venue re-matches the 30 left
    # against the refreshed touch (120 @ 100.03, within the limit), so the order completes
    order = replace(trader, order, quantity=D("150"))
    assert (order.status, order.quantity, order.filled_quantity) == ("FILLED", D("150"), D("150"))
    assert order.average_fill_price == D("100.03")


def test_modify_a_trailing_stop_from_an_amount_to_a_percent(trader, accounts, set_mid):
    # given a sell trailing stop 0.50 below the bid of 99.99 (stop 99.49)
    set_mid("AAPL", "100.00")
    order = place(
        trader,
        accounts["PAPER-EQ-A"],
        side="SELL",
        order_type="TRAILING_STOP",
        quantity="10",
        trail_amount="0.50",
        time_in_force="GTC",
    ).order
    # when the trail is changed to 1%
    order = replace(trader, order, trail_percent=D("1"))
    # then the amount is gone and the percent is in force, at the service and at the venue
    assert order.status == "ACCEPTED"
    assert (order.trail_amount, order.trail_percent) == (None, D("1"))
    venue = paper_order(order)
    assert (venue.trail_amount, venue.trail_percent) == (None, D("1"))
    assert venue.watermark == D("99.99")
    # when the bid falls to 99.29: through the old stop (99.49), not the new one (99.99*0.99 -> 98.99)
    set_mid("AAPL", "99.30")
    market_tick(advance=False)
    # then it does not trigger
    assert fresh(order).status == "ACCEPTED"
    # when the bid falls to 98.98
    set_mid("AAPL", "98.99")
    market_tick(advance=False)
    # then the percent stop triggers and the order sells at the bid
    order = fresh(order)
    assert order.status == "FILLED"
    assert order.average_fill_price == D("98.98")


# --- cancel ---------------------------------------------------------------------------------------


def test_cancel_a_resting_order(trader, accounts, set_mid):
    # given a resting buy limit
    set_mid("AAPL", "100.00")
    order = resting_buy(trader, accounts["PAPER-EQ-A"])
    # when the trader cancels it
    order = cancel(trader, order)
    # then it went through PENDING_CANCEL to CANCELLED, at the service and at the venue
    assert order.status == "CANCELLED"
    assert order.cancelled_at is not None
    assert events(order)[-2:] == [("REQUEST_CANCEL", "PENDING_CANCEL"), ("CANCEL", "CANCELLED")]
    assert paper_order(order).status == "CANCELLED"
    # and it no longer fills when the market crosses its price
    set_mid("AAPL", "98.50")
    market_tick(advance=False)
    assert fresh(order).filled_quantity == D("0")


def test_cancel_twice_the_second_is_a_conflict_without_a_new_event(trader, accounts, set_mid):
    # given a cancelled order
    set_mid("AAPL", "100.00")
    order = cancel(trader, resting_buy(trader, accounts["PAPER-EQ-A"]))
    trail = events(order)
    # when it is cancelled again
    with pytest.raises(Conflict) as excinfo:
        cancel(trader, order)
    # then it is a 409: the order is already CANCELLED; nothing is recorded
    assert excinfo.value.status_code == 409
    assert excinfo.value.code == "order_not_cancellable"
    assert excinfo.value.extra == {"status": "CANCELLED"}
    assert events(order) == trail
    assert fresh(order).status == "CANCELLED"


def test_cancel_after_fill_is_refused_cleanly(trader, accounts, set_mid):
    # given a filled market order
    set_mid("AAPL", "100.00")
    order = place(trader, accounts["PAPER-EQ-A"], side="BUY", order_type="MARKET", quantity="10").order
    assert order.status == "FILLED"
    trail = events(order)
    outbox = OutboxEvent.objects.count()
    # when the trader tries to cancel it
    with pytest.raises(Conflict) as excinfo:
        cancel(trader, order)
    # then it is refused with a 409 and nothing changes
    assert excinfo.value.code == "order_not_cancellable"
    assert excinfo.value.extra == {"status": "FILLED"}
    order = fresh(order)
    assert (order.status, order.filled_quantity, order.cancelled_at) == ("FILLED", D("10"), None)
    assert events(order) == trail
    assert OutboxEvent.objects.count() == outbox


# --- broker reports racing a cancel ---------------------------------------------------------------


def request_cancel_only(trader, order) -> Order:
    """Put ``order`` in PENDING_CANCEL the way order_cancel does, before it calls the broker."""
    with transaction.atomic():
        locked = _lock(order.pk)
        _transition(locked, OrderEventType.REQUEST_CANCEL, actor=Actor.for_user(trader))
    return locked


def test_fill_arriving_after_a_cancel_was_requested_is_applied(trader, accounts, set_mid):
    # given a resting buy limit for 10 with a cancel in flight
    set_mid("AAPL", "100.00")
    account = accounts["PAPER-EQ-A"]
    order = request_cancel_only(trader, resting_buy(trader, account))
    assert order.status == "PENDING_CANCEL"
    # when the venue reports a fill of 4 before it answers the cancel
    order_apply_updates(account=account, updates=[fill_update(order, "race-1", "4", "99.00", "1.0000")])
    # then the fill is booked; the order keeps waiting for the cancel answer
    order = fresh(order)
    assert (order.status, order.filled_quantity) == ("PENDING_CANCEL", D("4"))
    assert order.average_fill_price == D("99.00")
    assert order.commission == D("1.0000")
    assert events(order)[-1] == ("FILL", "PENDING_CANCEL")
    assert position_quantity(trader, account) == D("4")
    # when the cancel is confirmed
    confirm = BrokerOrderUpdate(
        UpdateKind.CANCELLED, order.client_order_id, order.broker_order_id, timezone.now(), reason="cancelled"
    )
    order_apply_updates(account=account, updates=[confirm])
    # then the order is cancelled with what filled kept
    order = fresh(order)
    assert (order.status, order.filled_quantity) == ("CANCELLED", D("4"))


def test_fill_arriving_after_cancelled_is_applied(trader, accounts, set_mid):
    # given a resting buy limit for 10 that was cancelled
    set_mid("AAPL", "100.00")
    account = accounts["PAPER-EQ-A"]
    order = cancel(trader, resting_buy(trader, account))
    assert order.status == "CANCELLED"
    # when the venue reports a late fill of 3 it executed before it saw the cancel
    order_apply_updates(account=account, updates=[fill_update(order, "late-1", "3", "99.00", "1.0000")])
    # then the fill is applied: the order stays CANCELLED with 3 filled, and the position moved
    order = fresh(order)
    assert (order.status, order.filled_quantity) == ("CANCELLED", D("3"))
    assert order.average_fill_price == D("99.00")
    assert events(order)[-1] == ("FILL", "CANCELLED")
    assert Fill.objects.filter(order=order).count() == 1
    position = Position.objects.get(user=trader, broker=account, symbol="AAPL")
    assert (position.quantity, position.average_cost, position.total_fees) == (D("3"), D("99.00"), D("1"))


def test_duplicate_fill_is_applied_once(trader, accounts, set_mid):
    # given a resting buy limit for 10
    set_mid("AAPL", "100.00")
    account = accounts["PAPER-EQ-A"]
    order = resting_buy(trader, account)
    update = fill_update(order, "dup-1", "4", "99.00", "1.0000")
    # when the same fill is delivered twice in one batch and once more later
    order_apply_updates(account=account, updates=[update, update])
    order_apply_updates(account=account, updates=[update])
    # then it is booked once
    order = fresh(order)
    assert (order.status, order.filled_quantity, order.commission) == ("PARTIALLY_FILLED", D("4"), D("1"))
    assert Fill.objects.filter(order=order).count() == 1
    assert [e for e in events(order) if e[0] == "FILL"] == [("FILL", "PARTIALLY_FILLED")]
    assert position_quantity(trader, account) == D("4")
    assert OutboxEvent.objects.filter(type="ORDER_FILLED", user_id=trader.pk).count() == 1


def test_over_fill_is_refused_and_recorded_as_an_anomaly(trader, accounts, set_mid):
    # given a resting buy limit for 10 with 4 already filled
    set_mid("AAPL", "100.00")
    account = accounts["PAPER-EQ-A"]
    order = resting_buy(trader, account)
    order_apply_updates(account=account, updates=[fill_update(order, "ok-1", "4", "99.00")])
    # when the venue reports a fill of 7, more than the 6 remaining
    order_apply_updates(account=account, updates=[fill_update(order, "over-1", "7", "99.00")])
    # then no fill is booked, the order and position are unchanged, and an anomaly is recorded
    order = fresh(order)
    assert (order.status, order.filled_quantity) == ("PARTIALLY_FILLED", D("4"))
    assert not Fill.objects.filter(broker=account, broker_fill_id="over-1").exists()
    assert Fill.objects.filter(order=order).count() == 1
    assert position_quantity(trader, account) == D("4")
    anomaly = OrderEvent.objects.filter(order=order).order_by("id").last()
    assert (anomaly.event_type, anomaly.from_status, anomaly.to_status) == (
        "BROKER_ANOMALY",
        "PARTIALLY_FILLED",
        "PARTIALLY_FILLED",
    )
    assert anomaly.data["update"] == "FILL"
    assert "exceeds" in anomaly.data["problem"]


def test_update_for_an_unknown_client_order_id_changes_nothing(trader, accounts, set_mid):
    # given an account with one resting order
    set_mid("AAPL", "100.00")
    account = accounts["PAPER-EQ-A"]
    order = resting_buy(trader, account)
    counts = (
        Order.objects.count(),
        Fill.objects.count(),
        OrderEvent.objects.count(),
        Position.objects.count(),
        OutboxEvent.objects.count(),
    )
    # when the broker reports a fill for a client_order_id nobody knows
    ghost = BrokerOrderUpdate(
        UpdateKind.FILL,
        "NO-SUCH-ORDER",
        "P-ghost",
        timezone.now(),
        fill=FillReport("ghost-1", D("5"), D("99.00"), D("0")),
    )
    result = order_apply_updates(account=account, updates=[ghost])
    # then no order, fill, event or position changes
    assert result is None
    assert (
        Order.objects.count(),
        Fill.objects.count(),
        OrderEvent.objects.count(),
        Position.objects.count(),
    ) == counts[:4]
    # and the anomaly is kept (not only logged): one BROKER_ANOMALY outbox event naming the order
    assert OutboxEvent.objects.count() == counts[4] + 1
    anomaly = OutboxEvent.objects.order_by("-id").first()
    assert (anomaly.type, anomaly.user_id, anomaly.account_id) == ("BROKER_ANOMALY", trader.pk, account.pk)
    assert anomaly.payload["client_order_id"] == "NO-SUCH-ORDER"
    assert anomaly.payload["update"] == "FILL"
    assert fresh(order).filled_quantity == D("0")
