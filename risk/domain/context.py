"""What a pre-trade check sees: the limits, the proposed order and a snapshot of the book.

Plain Python. ``risk.services`` builds a :class:`RiskContext` from the database under the
account's lock; the rules in ``risk.domain.rules`` read it and never touch anything else.
All amounts are Decimal; notional values are in the account currency (USD).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from orders.domain.enums import AssetClass, OrderType, Side


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
class PositionLeg:
    broker_id: int
    symbol: str
    asset_class: AssetClass
    quantity: Decimal  # signed
    price: Decimal  # mark price


@dataclass(frozen=True, slots=True)
class OpenOrder:
    broker_id: int
    symbol: str
    side: Side
    remaining: Decimal
    price: Decimal  # the price its exposure is valued at (limit, stop, or the quote)


@dataclass(frozen=True, slots=True)
class RecentOrder:
    symbol: str
    side: Side
    quantity: Decimal
    price: Decimal | None
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class RiskContext:
    limits: RiskLimits
    order: ProposedOrder
    quote: Quote | None  # the order's symbol at the order's broker; None when no quote is known
    positions: tuple[PositionLeg, ...]  # every non-zero position of the user, every broker
    open_orders: tuple[OpenOrder, ...]  # every open order of the user (not this one)
    recent_orders: tuple[RecentOrder, ...]  # the user's orders of the last few minutes (not this one)
    buying_power: Decimal  # the order's broker account: buying power before open-order reservations
    reserved: Decimal  # buying power already reserved by that account's open buy orders
    daily_pnl: Decimal  # today's realized + unrealized P&L of the user (negative is a loss)
    drawdown: Decimal  # today's peak equity minus current equity (>= 0)
    now: dt.datetime
