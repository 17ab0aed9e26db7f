"""Builders for risk contexts: a plain, valid, limit-free context unless told otherwise."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from decimal import Decimal

from orders.domain.enums import AssetClass, OrderType, Side
from risk.domain.book import OpenOrder, PositionLeg
from risk.domain.context import (
    ProposedOrder,
    Quote,
    RecentOrder,
    RiskContext,
    RiskLimits,
    context_from_book,
)

D = Decimal
NOW = dt.datetime(2026, 3, 2, 15, 30, tzinfo=dt.UTC)
BROKER = 1
OTHER_BROKER = 2
QUOTE = Quote(bid=D("99"), ask=D("100"), last=D("99.50"))


def proposed(**overrides: object) -> ProposedOrder:
    """A LIMIT BUY of 10 AAPL at 100 on broker 1."""
    fields: dict[str, object] = {
        "symbol": "AAPL",
        "asset_class": AssetClass.EQUITY,
        "side": Side.BUY,
        "order_type": OrderType.LIMIT,
        "quantity": D("10"),
        "broker_id": BROKER,
        "price": D("100"),
    }
    fields.update(overrides)
    return ProposedOrder(**fields)  # type: ignore[arg-type]


def proposed_market(**overrides: object) -> ProposedOrder:
    """A MARKET BUY of 10 AAPL on broker 1."""
    return proposed(order_type=OrderType.MARKET, price=None, **overrides)


def leg(
    symbol: str = "AAPL",
    quantity: str | Decimal = "0",
    price: str | Decimal = "100",
    broker_id: int = BROKER,
    asset_class: AssetClass = AssetClass.EQUITY,
) -> PositionLeg:
    return PositionLeg(
        broker_id=broker_id, symbol=symbol, asset_class=asset_class, quantity=D(quantity), price=D(price)
    )


def open_order(
    symbol: str = "AAPL",
    side: Side = Side.BUY,
    remaining: str | Decimal = "1",
    price: str | Decimal = "100",
    broker_id: int = BROKER,
) -> OpenOrder:
    return OpenOrder(broker_id=broker_id, symbol=symbol, side=side, remaining=D(remaining), price=D(price))


def recent(
    age: dt.timedelta | int = 1,
    symbol: str = "AAPL",
    side: Side = Side.BUY,
    quantity: str | Decimal = "10",
    price: str | Decimal | None = "100",
) -> RecentOrder:
    return RecentOrder(
        symbol=symbol,
        side=side,
        quantity=D(quantity),
        price=None if price is None else D(price),
        created_at=NOW - (age if isinstance(age, dt.timedelta) else dt.timedelta(seconds=age)),
    )


def context(
    *,
    limits: RiskLimits | None = None,
    order: ProposedOrder | None = None,
    quote: Quote | None = QUOTE,
    positions: tuple[PositionLeg, ...] = (),
    open_orders: tuple[OpenOrder, ...] = (),
    recent_orders: tuple[RecentOrder, ...] = (),
    buying_power: str | Decimal = "1000000",
    reserved: str | Decimal = "0",
    daily_pnl: str | Decimal = "0",
    drawdown: str | Decimal = "0",
    **limit_overrides: object,
) -> RiskContext:
    """A context for ``order`` (default: :func:`proposed`); ``limit_overrides`` set RiskLimits fields."""
    return context_from_book(
        limits=replace(limits or RiskLimits(), **limit_overrides),
        order=order if order is not None else proposed(),
        quote=quote,
        positions=positions,
        open_orders=open_orders,
        recent_orders=recent_orders,
        buying_power=D(buying_power),
        reserved=D(reserved),
        daily_pnl=D(daily_pnl),
        drawdown=D(drawdown),
        now=NOW,
    )
