"""What a pre-trade check sees: the limits, the proposed order and a summary of the book.

Plain Python. ``risk.services`` builds a :class:`RiskContext` from the database under the
user's and the account's locks: the order's own symbol in full (its legs at every broker) and
the rest of the book as running totals (``risk.domain.book``), so a check costs the same with
ten positions or ten thousand. The rules in ``risk.domain.rules`` read it and nothing else.
All amounts are Decimal; notional values are in the account currency (USD).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from orders.domain.enums import AssetClass, OrderType, Side
from risk.domain.book import BookLeg, BookTotals, OpenOrder, PositionLeg, legs_from, totals_of

RATE_WINDOW = dt.timedelta(seconds=60)


class TradingState(StrEnum):
    ACTIVE = "ACTIVE"  # everything allowed within the limits
    REDUCING = "REDUCING"  # only orders that reduce the position in their symbol
    HALTED = "HALTED"  # no new orders at all


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """None means "no limit" for that rule."""

    max_position_quantity: Decimal | None = None  # |net quantity| per symbol, across brokers
    max_position_notional: Decimal | None = None  # |net quantity| * price per symbol
    max_gross_exposure: Decimal | None = None  # sum of |position notional| over all symbols
    max_net_exposure: Decimal | None = None  # |sum of signed position notional|
    max_asset_class_exposure: dict[AssetClass, Decimal] = field(default_factory=dict)  # gross per class
    max_broker_exposure: Decimal | None = None  # gross per broker account
    max_order_notional: Decimal | None = None
    max_order_quantity: Decimal | None = None
    max_open_orders: int | None = None  # open orders after this one
    max_orders_per_minute: int | None = None  # orders in the last 60 s, this one included
    daily_loss_limit: Decimal | None = None  # positive amount: refuse new risk once today's P&L <= -limit
    max_drawdown: Decimal | None = None  # positive amount: peak-to-now equity drop
    price_collar_percent: Decimal | None = None  # limit/stop within N% of the reference price
    restricted_symbols: frozenset[str] = frozenset()
    allow_short_selling: bool = True
    duplicate_window_seconds: int = 5
    trading_state: TradingState = TradingState.ACTIVE


@dataclass(frozen=True, slots=True)
class ProposedOrder:
    symbol: str
    asset_class: AssetClass
    side: Side
    order_type: OrderType
    quantity: Decimal
    broker_id: int
    price: Decimal | None = None  # limit price
    stop_price: Decimal | None = None
    client_order_id_given: bool = False  # the client chose its own client_order_id


@dataclass(frozen=True, slots=True)
class Quote:
    bid: Decimal
    ask: Decimal
    last: Decimal


@dataclass(frozen=True, slots=True)
class RecentOrder:
    symbol: str
    side: Side
    quantity: Decimal
    price: Decimal | None
    created_at: dt.datetime


def recent_activity(
    recent: tuple[RecentOrder, ...], order: ProposedOrder, now: dt.datetime, duplicate_window_seconds: int
) -> tuple[int, bool]:
    """From the user's recent orders: how many in the last 60 s, and whether one duplicates ``order``.

    ``risk.services`` asks the database the same two questions; this is their plain-Python form.
    """
    since = now - RATE_WINDOW
    count = sum(1 for r in recent if r.created_at > since)
    dup_since = now - dt.timedelta(seconds=duplicate_window_seconds)
    duplicate = any(
        (r.symbol, r.side, r.quantity, r.price) == (order.symbol, order.side, order.quantity, order.price)
        and r.created_at >= dup_since
        for r in recent
    )
    return count, duplicate


@dataclass(frozen=True, slots=True)
class RiskContext:
    limits: RiskLimits
    order: ProposedOrder
    quote: Quote | None  # the order's symbol at the order's broker; None when no quote is known
    symbol_legs: tuple[BookLeg, ...]  # the order's symbol at every broker (this order not included)
    others: BookTotals  # the rest of the user's book: every other symbol
    open_orders: int  # the user's open orders (this one not included)
    orders_last_minute: int  # orders the user created in the last 60 s (this one not included)
    duplicate: bool  # a recent order, within the duplicate window, with the same symbol, side, qty, price
    buying_power: Decimal  # the order's broker account: buying power before open-order reservations
    reserved: Decimal  # buying power already reserved by that account's open orders
    daily_pnl: Decimal  # today's realized + unrealized P&L of the user (negative is a loss)
    drawdown: Decimal  # today's peak equity minus current equity (>= 0)
    now: dt.datetime


def context_from_book(
    *,
    limits: RiskLimits,
    order: ProposedOrder,
    quote: Quote | None,
    positions: Iterable[PositionLeg],
    open_orders: Iterable[OpenOrder],
    recent_orders: tuple[RecentOrder, ...] = (),
    buying_power: Decimal,
    reserved: Decimal,
    daily_pnl: Decimal,
    drawdown: Decimal,
    now: dt.datetime,
) -> RiskContext:
    """A context from the whole book as plain rows: what ``risk.services`` keeps incrementally."""
    open_orders = tuple(open_orders)
    legs = legs_from(positions, open_orders)
    count, duplicate = recent_activity(recent_orders, order, now, limits.duplicate_window_seconds)
    return RiskContext(
        limits=limits,
        order=order,
        quote=quote,
        symbol_legs=tuple(leg for leg in legs if leg.symbol == order.symbol),
        others=totals_of(leg for leg in legs if leg.symbol != order.symbol),
        open_orders=len(open_orders),
        orders_last_minute=count,
        duplicate=duplicate,
        buying_power=buying_power,
        reserved=reserved,
        daily_pnl=daily_pnl,
        drawdown=drawdown,
        now=now,
    )
