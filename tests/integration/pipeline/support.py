"""Helpers shared by the pipeline integration tests (service level, paper venue)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

from brokers.models import BrokerAccount, PaperOrder
from orders.models import Order, OrderEvent
from orders.services import Actor, Placed, order_place
from tests.builders import order_request

NEW_YORK = ZoneInfo("America/New_York")


def place(user, account: BrokerAccount, **request) -> Placed:
    """Place ``order_request(**request)`` for ``user`` at ``account`` (named by broker_id)."""
    return order_place(
        user=user, request=order_request(**request), actor=Actor.for_user(user), broker_id=account.pk
    )


def fresh(order: Order) -> Order:
    return Order.objects.get(pk=order.pk)


def events(order: Order) -> list[tuple[str, str]]:
    """The order's audit trail as (event_type, to_status), oldest first."""
    return list(OrderEvent.objects.filter(order=order).order_by("id").values_list("event_type", "to_status"))


def fills(order: Order) -> list[tuple[Decimal, Decimal, Decimal, str]]:
    """The order's fills as (quantity, price, fee, liquidity), oldest first."""
    return [(f.quantity, f.price, f.fee, f.liquidity) for f in order.fills.order_by("id")]


def paper_order(order: Order) -> PaperOrder:
    """The venue's own record of ``order``."""
    return PaperOrder.objects.get(account_id=order.broker_id, client_order_id=order.client_order_id)


def ny(day: dt.date, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute, second), tzinfo=NEW_YORK)


def utc(day: dt.date, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute, second), tzinfo=dt.UTC)


def in_session(order: Order) -> dt.datetime:
    """Noon New York on the trading day the venue assigned to ``order``: safely inside its session."""
    return ny(paper_order(order).session_date, 12)
