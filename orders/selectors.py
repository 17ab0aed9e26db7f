"""Reads of orders, fills and positions. Every selector is scoped to its owner (staff see all)."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from orders.domain.positions import AggregatePosition, BrokerLeg, aggregate
from orders.models import Fill, Order, OrderEvent, OrderQuerySet, Position
from trademaster.errors import NotFound

Q8 = Decimal("0.00000001")


def order_list(*, user) -> OrderQuerySet:
    return Order.objects.for_owner(user)


def order_get(*, user, order_id: int) -> Order:
    order = Order.objects.for_owner(user).filter(pk=order_id).first()
    if order is None:
        raise NotFound("order_not_found", f"Order {order_id} does not exist.")
    return order


def order_list_open(*, user) -> OrderQuerySet:
    return Order.objects.filter(user=user).open()


def order_event_list(*, user, order_id: int) -> list[OrderEvent]:
    order = order_get(user=user, order_id=order_id)
    return list(order.events.order_by("id"))


def fill_list(*, user):
    qs = Fill.objects.all() if user.is_staff else Fill.objects.filter(user=user)
    return qs


def position_list(*, user, include_flat: bool = False):
    qs = Position.objects.all() if user.is_staff else Position.objects.filter(user=user)
    if not include_flat:
        qs = qs.exclude(quantity=0)
    return qs


def position_aggregate(*, user, include_flat: bool = False) -> list[AggregatePosition]:
    """Positions netted per symbol across the user's brokers (their own, even for staff)."""
    legs: dict[str, list[BrokerLeg]] = defaultdict(list)
    qs = Position.objects.filter(user=user)
    if not include_flat:
        qs = qs.exclude(quantity=0)
    for p in qs.order_by("symbol", "broker_id"):
        legs[p.symbol].append(
            BrokerLeg(
                p.broker_id, p.quantity, p.average_cost, p.market_value, p.unrealized_pnl, p.realized_pnl
            )
        )
    result = []
    for symbol, rows in legs.items():
        agg = aggregate(symbol, rows)
        result.append(
            AggregatePosition(
                agg.symbol,
                agg.quantity,
                agg.average_cost.quantize(Q8),
                agg.market_value,
                agg.unrealized_pnl,
                agg.realized_pnl,
                agg.legs,
            )
        )
    return result
