"""The broker adapter interface and the DTOs that cross it. Plain Python.

Every broker (the paper venue now; Alpaca, Binance, Schwab and IB later) is reached through one
:class:`BrokerAdapter`. Adapters never import ``orders``: they return :class:`BrokerOrderUpdate`
values, and the caller (an interface: a request, a task, the market runner) hands those to
``orders.services.order_apply_update``.

Method table (required for every adapter):

============================  ==========================================================
``capabilities``               what the venue supports, natively or by local emulation
``place(request)``             send a new order; returns the updates known at once
``cancel(ref)``                ask to cancel; returns the updates known at once
``replace(ref, change)``       cancel-replace quantity/prices/TIF; returns updates
``get_order(client_order_id,   the broker's view of one order (None if it never arrived);
  broker_order_id=None)``      this is how a timed-out submission is resolved; the broker's
                               id, when the service knows it, lets a broker without client
                               order ids (Schwab) answer in any process
``open_orders()``              the broker's open orders, for reconciliation
``positions()``                the broker's positions, for reconciliation
``account()``                  cash, buying power and total value
``quote(symbol)``              the current top of book
``poll_updates(now)``          order updates since the last poll (fills of resting orders,
                               triggers, expiries); streaming brokers drain their stream here
``health()``                   CONNECTED / DEGRADED / DOWN with a latency figure
============================  ==========================================================

Errors: :class:`BrokerRejected` (the broker refused; final), :class:`BrokerRetryable`
(rate limit or transient; ``retry_after`` seconds), :class:`BrokerUnknownOutcome` (the request
may or may not have arrived: resolve with ``get_order`` before any retry), :class:`BrokerFatal`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from orders.domain.enums import AssetClass, OrderType, Side, TimeInForce


class Support(StrEnum):
    NATIVE = "NATIVE"
    EMULATED = "EMULATED"


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    """What the venue charges per execution: bps of the notional plus per unit, at least ``minimum``."""

    bps: Decimal = Decimal(0)
    per_unit: Decimal = Decimal(0)
    minimum: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class Capabilities:
    asset_classes: frozenset[AssetClass]
    order_types: dict[OrderType, Support]
    time_in_force: frozenset[TimeInForce]
    native_replace: bool = True
    fees: FeeSchedule = FeeSchedule()

    def supports(self, asset_class: AssetClass, order_type: OrderType, tif: TimeInForce) -> str | None:
        """None if the venue can take the order, else the reason it cannot."""
        if asset_class not in self.asset_classes:
            return f"does not trade {asset_class.lower()}"
        if order_type not in self.order_types:
            return f"does not support {order_type} orders"
        if tif not in self.time_in_force:
            return f"does not support time in force {tif}"
        return None


@dataclass(frozen=True, slots=True)
class BrokerOrderRequest:
    client_order_id: str
    symbol: str
    asset_class: AssetClass
    side: Side
    order_type: OrderType
    quantity: Decimal
    time_in_force: TimeInForce
    price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_amount: Decimal | None = None
    trail_percent: Decimal | None = None


@dataclass(frozen=True, slots=True)
class OrderChange:
    """A cancel-replace: the new values (None keeps the old one). Quantity is the new total."""

    quantity: Decimal | None = None
    price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_amount: Decimal | None = None
    trail_percent: Decimal | None = None
    time_in_force: TimeInForce | None = None


@dataclass(frozen=True, slots=True)
class OrderRef:
    client_order_id: str
    broker_order_id: str | None = None


class UpdateKind(StrEnum):
    ACCEPTED = "ACCEPTED"
    TRIGGERED = "TRIGGERED"
    FILL = "FILL"
    CANCELLED = "CANCELLED"
    CANCEL_REJECTED = "CANCEL_REJECTED"
    REPLACED = "REPLACED"
    REPLACE_REJECTED = "REPLACE_REJECTED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"


@dataclass(frozen=True, slots=True)
class FillReport:
    """One execution. A broker that only reports an order's running totals (Alpaca) also gives
    them here: the OMS then books the growth over what it has already booked for the order, so
    two processes that each saw a different part of the fills can never book a share twice."""

    broker_fill_id: str  # unique per broker account; fills are de-duplicated on it
    quantity: Decimal
    price: Decimal
    fee: Decimal
    liquidity: str = "TAKER"  # MAKER | TAKER
    cumulative_quantity: Decimal | None = None  # the order's filled quantity after this fill
    cumulative_notional: Decimal | None = None  # and the sum of quantity x price filled


@dataclass(frozen=True, slots=True)
class BrokerOrderUpdate:
    kind: UpdateKind
    client_order_id: str
    broker_order_id: str
    occurred_at: dt.datetime
    fill: FillReport | None = None
    reason: str = ""
    # for REPLACED: the values now in force at the broker
    change: OrderChange | None = None


class BrokerOrderStatus(StrEnum):
    OPEN = "OPEN"
    TRIGGERED = "TRIGGERED"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"


@dataclass(frozen=True, slots=True)
class BrokerOrderState:
    client_order_id: str
    broker_order_id: str
    symbol: str
    side: Side
    status: BrokerOrderStatus
    quantity: Decimal
    filled_quantity: Decimal
    average_fill_price: Decimal | None
    fills: tuple[FillReport, ...] = ()


@dataclass(frozen=True, slots=True)
class Quote:
    symbol: str
    bid: Decimal
    ask: Decimal
    bid_size: Decimal
    ask_size: Decimal
    last: Decimal
    at: dt.datetime
    # displayed depth where the broker shows it, best first: (price, size)
    bids: tuple[tuple[Decimal, Decimal], ...] = ()
    asks: tuple[tuple[Decimal, Decimal], ...] = ()

    @property
    def mid(self) -> Decimal:
        return (self.bid + self.ask) / 2


@dataclass(frozen=True, slots=True)
class AccountInfo:
    cash: Decimal
    buying_power: Decimal
    total_value: Decimal


@dataclass(frozen=True, slots=True)
class BrokerPosition:
    symbol: str
    quantity: Decimal  # signed: negative is short
    average_cost: Decimal


class Health(StrEnum):
    CONNECTED = "CONNECTED"
    DEGRADED = "DEGRADED"
    DOWN = "DOWN"


@dataclass(frozen=True, slots=True)
class HealthReport:
    status: Health
    latency_ms: Decimal
    detail: str = ""


class BrokerError(Exception):
    def __init__(self, message: str, *, code: str = "BROKER_ERROR") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class BrokerRejected(BrokerError):
    """The broker refused the request; retrying the same request will not help."""


class BrokerRetryable(BrokerError):
    def __init__(self, message: str, *, retry_after: float = 1.0, code: str = "BROKER_RETRYABLE") -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class BrokerUnknownOutcome(BrokerError):
    """The request may have reached the broker (timeout, dropped connection)."""


class BrokerFatal(BrokerError):
    """Credentials or configuration are wrong; the account cannot be used until fixed."""


class BrokerAdapter(Protocol):
    capabilities: Capabilities

    def place(self, request: BrokerOrderRequest) -> list[BrokerOrderUpdate]: ...

    def cancel(self, ref: OrderRef) -> list[BrokerOrderUpdate]: ...

    def replace(self, ref: OrderRef, change: OrderChange) -> list[BrokerOrderUpdate]: ...

    def get_order(
        self, client_order_id: str, broker_order_id: str | None = None
    ) -> BrokerOrderState | None: ...

    def open_orders(self) -> list[BrokerOrderState]: ...

    def positions(self) -> list[BrokerPosition]: ...

    def account(self) -> AccountInfo: ...

    def quote(self, symbol: str) -> Quote: ...

    def poll_updates(self, now: dt.datetime) -> list[BrokerOrderUpdate]: ...

    def health(self) -> HealthReport: ...
