"""The paper venue's matching rules for one order against one book. Plain Python, pure functions.

:func:`on_entry` is called once when the order arrives; :func:`on_tick` for each new book while
the order rests OPEN. Both return a :class:`MatchResult` holding the order's new state.

Rules
-----
* Only OPEN orders match; any other order comes back unchanged, with no executions.
* MARKET takes liquidity (TAKER): a BUY consumes ask levels, a SELL bid levels, best first, each
  level up to its size, one :class:`Execution` per level touched at the level's price.
* LIMIT on entry: the marketable part takes the levels within the limit (BUY: ask <= price,
  SELL: bid >= price) as TAKER at the level price. LIMIT resting (on tick): when the book
  crosses the limit it fills as MAKER at its own limit price, up to the total size of the
  levels within the limit.
* Time in force for the part not filled when taking: IOC cancels it; FOK fills all or nothing
  (nothing if the size available within the limit is short); DAY and GTC keep it OPEN. A MARKET
  remainder is taken again on the next tick (liquidity refreshes each tick); a LIMIT remainder
  rests. DAY expiry is the caller's job.
* STOP triggers when (BUY) best ask >= stop price / (SELL) best bid <= stop price, then works
  as MARKET; STOP_LIMIT triggers the same way, then works as a LIMIT at ``price``. The trigger
  call matches at once with entry semantics; later ticks treat a STOP as MARKET and a
  STOP_LIMIT as a resting LIMIT.
* TRAILING_STOP, until triggered, tracks a watermark on entry and on every tick before the
  trigger test: SELL follows the highest best bid, stop = watermark - amount (or
  watermark * (1 - percent/100)) rounded down to tick, triggers when best bid <= stop; BUY
  follows the lowest best ask, stop = watermark + amount (or watermark * (1 + percent/100))
  rounded up to tick, triggers when best ask >= stop. Once triggered it works as MARKET.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from enum import StrEnum

from brokers.domain.market import Book, Level, round_to_tick
from orders.domain.enums import OrderType, Side, TimeInForce

TAKER = "TAKER"
MAKER = "MAKER"
IOC_REASON = "IOC: unfilled remainder cancelled"
FOK_REASON = "FOK: not enough liquidity to fill in full"
_HUNDRED = Decimal(100)
_STOP_TYPES = frozenset({OrderType.STOP, OrderType.STOP_LIMIT, OrderType.TRAILING_STOP})


class VenueOrderStatus(StrEnum):
    OPEN = "OPEN"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"


@dataclass(frozen=True, slots=True)
class VenueOrder:
    order_id: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    time_in_force: TimeInForce
    filled_quantity: Decimal = Decimal(0)
    price: Decimal | None = None  # limit price (LIMIT, STOP_LIMIT)
    stop_price: Decimal | None = None  # STOP, STOP_LIMIT
    trail_amount: Decimal | None = None  # TRAILING_STOP: exactly one of these two
    trail_percent: Decimal | None = None
    triggered: bool = False
    watermark: Decimal | None = None  # trailing stop high (SELL) / low (BUY) water mark
    status: VenueOrderStatus = VenueOrderStatus.OPEN

    def __post_init__(self) -> None:
        if self.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT) and self.price is None:
            raise ValueError(f"{self.order_type} order needs a price")
        if self.order_type in (OrderType.STOP, OrderType.STOP_LIMIT) and self.stop_price is None:
            raise ValueError(f"{self.order_type} order needs a stop_price")
        if self.order_type is OrderType.TRAILING_STOP and (self.trail_amount is None) == (
            self.trail_percent is None
        ):
            raise ValueError("TRAILING_STOP order needs exactly one of trail_amount and trail_percent")

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.filled_quantity


@dataclass(frozen=True, slots=True)
class Execution:
    quantity: Decimal
    price: Decimal
    liquidity: str  # "TAKER" or "MAKER"


@dataclass(frozen=True, slots=True)
class MatchResult:
    order: VenueOrder  # the new state
    executions: tuple[Execution, ...]
    triggered_now: bool  # a stop/trailing stop fired during this call
    reason: str  # why the order closed without filling in full ("" otherwise)


def on_entry(order: VenueOrder, book: Book, *, tick: Decimal) -> MatchResult:
    """Match an order as it arrives at the venue: marketable parts take liquidity."""
    return _match(order, book, tick=tick, resting=False)


def on_tick(order: VenueOrder, book: Book, *, tick: Decimal) -> MatchResult:
    """Match a resting OPEN order against a new book: a working limit fills as MAKER."""
    return _match(order, book, tick=tick, resting=True)


def trailing_stop_price(order: VenueOrder, tick: Decimal) -> Decimal | None:
    """The current stop of a trailing stop (None for other orders or before any watermark)."""
    if order.order_type is not OrderType.TRAILING_STOP or order.watermark is None:
        return None
    wm = order.watermark
    sign = 1 if order.side is Side.BUY else -1  # a buy stop sits above the low, a sell stop below the high
    if order.trail_amount is not None:
        stop = wm + sign * order.trail_amount
    else:
        stop = wm * (1 + sign * order.trail_percent / _HUNDRED)
    return round_to_tick(stop, tick, ROUND_UP if order.side is Side.BUY else ROUND_DOWN)


# --- internals -------------------------------------------------------------------------------


def _match(order: VenueOrder, book: Book, *, tick: Decimal, resting: bool) -> MatchResult:
    if order.status is not VenueOrderStatus.OPEN:
        return MatchResult(order, (), False, "")
    triggered_now = False
    if order.order_type in _STOP_TYPES and not order.triggered:
        if order.order_type is OrderType.TRAILING_STOP:
            order = _track_watermark(order, book)
        if not _stop_reached(order, book, tick):
            return MatchResult(order, (), False, "")
        order = dataclasses.replace(order, triggered=True)
        triggered_now = True
        resting = False  # the trigger call matches with entry semantics
    if order.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT) and resting:
        return _fill_resting_limit(order, book)
    limit = order.price if order.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT) else None
    return _take(order, book, limit, triggered_now)


def _track_watermark(order: VenueOrder, book: Book) -> VenueOrder:
    if order.side is Side.SELL:
        touch = book.best_bid
        watermark = touch if order.watermark is None else max(order.watermark, touch)
    else:
        touch = book.best_ask
        watermark = touch if order.watermark is None else min(order.watermark, touch)
    return dataclasses.replace(order, watermark=watermark)


def _stop_reached(order: VenueOrder, book: Book, tick: Decimal) -> bool:
    stop = order.stop_price
    if order.order_type is OrderType.TRAILING_STOP:
        stop = trailing_stop_price(order, tick)
    if order.side is Side.BUY:
        return book.best_ask >= stop
    return book.best_bid <= stop


def _within(order: VenueOrder, level: Level, limit: Decimal | None) -> bool:
    if limit is None:
        return True
    return level.price <= limit if order.side is Side.BUY else level.price >= limit


def _opposite(order: VenueOrder, book: Book) -> tuple[Level, ...]:
    return book.asks if order.side is Side.BUY else book.bids


def _available(order: VenueOrder, book: Book, limit: Decimal | None) -> Decimal:
    return sum((lv.size for lv in _opposite(order, book) if _within(order, lv, limit)), Decimal(0))


def _take(order: VenueOrder, book: Book, limit: Decimal | None, triggered_now: bool) -> MatchResult:
    """Take liquidity best level first (TAKER, level price), then apply the time in force."""
    if order.time_in_force is TimeInForce.FOK and _available(order, book, limit) < order.remaining:
        return MatchResult(_close(order, VenueOrderStatus.CANCELLED), (), triggered_now, FOK_REASON)
    executions: list[Execution] = []
    reason = ""
    left = order.remaining
    for level in _opposite(order, book):
        if left <= 0 or not _within(order, level, limit):
            break
        quantity = min(left, level.size)
        if quantity > 0:
            executions.append(Execution(quantity, level.price, TAKER))
            left -= quantity
    order = dataclasses.replace(order, filled_quantity=order.quantity - left)
    if left == 0:
        return MatchResult(_close(order, VenueOrderStatus.FILLED), tuple(executions), triggered_now, "")
    if order.time_in_force is TimeInForce.IOC:
        order, reason = _close(order, VenueOrderStatus.CANCELLED), IOC_REASON
    return MatchResult(order, tuple(executions), triggered_now, reason)


def _fill_resting_limit(order: VenueOrder, book: Book) -> MatchResult:
    """A resting limit crossed by the book fills as MAKER at its own price, up to the size within it."""
    quantity = min(order.remaining, _available(order, book, order.price))
    if quantity <= 0:
        return MatchResult(order, (), False, "")
    order = dataclasses.replace(order, filled_quantity=order.filled_quantity + quantity)
    if order.remaining == 0:
        order = _close(order, VenueOrderStatus.FILLED)
    return MatchResult(order, (Execution(quantity, order.price, MAKER),), False, "")


def _close(order: VenueOrder, status: VenueOrderStatus) -> VenueOrder:
    return dataclasses.replace(order, status=status)
