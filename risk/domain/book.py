"""The risk book: a user's worst-case exposure, kept per symbol and broker with running totals.

Plain Python: no Django, no I/O. A pre-trade check must not read the user's whole book (a user
may hold thousands of positions and orders), so ``risk.book`` keeps it summarised:

* one :class:`BookLeg` per (broker account, symbol) with a position or an open order: the net
  position, the unfilled quantity of open buys and sells, the prices to value them at, the
  buying power its open orders reserve and the position's market value;
* one :class:`BookTotals` per user: the sums of every symbol's :class:`Contribution`.

A change to a symbol (an order placed, filled, cancelled or replaced, a position re-marked) is
folded in with :meth:`BookTotals.swap`: totals minus what the symbol's old legs contributed plus
what its new legs contribute. A symbol's contribution depends on its legs alone (they carry their
own prices), so taking the old legs out removes exactly what was put in, and the totals never
drift. Amounts are exact Decimals: nothing here rounds except :func:`reserved_remaining`, which
rounds once, to 16 places, before the amount is stored.

How a symbol counts (the worst case: any open order may fill):

* long case: net position + every open buy; short case: net position - every open sell;
* gross: max(|long case|, |short case|) * price; its long and short values: case * price;
* net exposure of the book: the larger of |sum of long values| and |sum of short values|;
* per broker account: the same gross over that account's own legs only;
* price: the highest mark of its positions; with no position, the highest price of its open
  orders (limit, stop, or average fill); zero when nothing gives a price;
* asset class: its positions', else its open orders'; None when unknown, which counts toward
  every asset class limit.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_EVEN, Decimal

from orders.domain.enums import AssetClass, Side
from orders.domain.validation import asset_class_of

ZERO = Decimal(0)
EXACT = Decimal("1e-16")  # the precision derived amounts are stored with
# products of two DECIMAL(18,8) values have 36 digits; the default context keeps 28
PRECISE = decimal.Context(prec=60, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True, slots=True)
class PositionLeg:
    """A position at one broker account (the rules' input when built by hand)."""

    broker_id: int
    symbol: str
    asset_class: AssetClass
    quantity: Decimal  # signed
    price: Decimal  # mark price (average cost when not marked yet)
    market_value: Decimal | None = None  # as stored with the position; quantity * price if None


@dataclass(frozen=True, slots=True)
class OpenOrder:
    """The unfilled part of a working order."""

    broker_id: int
    symbol: str
    side: Side
    remaining: Decimal
    price: Decimal  # the price its exposure is valued at (limit, stop, or the average fill)
    asset_class: AssetClass | None = None  # None: taken from the symbol
    reserved: Decimal = ZERO  # buying power it holds (see reserved_remaining)


@dataclass(frozen=True, slots=True)
class BookLeg:
    """What one broker account holds and has on order in one symbol."""

    broker_id: int
    symbol: str
    asset_class: AssetClass | None = None
    net: Decimal = ZERO  # signed position quantity
    open_buy: Decimal = ZERO  # unfilled quantity of open buy orders
    open_sell: Decimal = ZERO  # unfilled quantity of open sell orders
    open_orders: int = 0
    mark: Decimal | None = None  # the position's mark price; None without a position
    order_price: Decimal | None = None  # the highest price of its open orders; None without one
    reserved: Decimal = ZERO  # buying power its open orders hold
    market_value: Decimal = ZERO  # the position's market value


def reserved_remaining(amount: Decimal, quantity: Decimal, filled: Decimal) -> Decimal:
    """The part of an order's reservation still held: pro rata to what is left unfilled."""
    if quantity <= 0 or filled >= quantity:
        return ZERO
    with decimal.localcontext(PRECISE):
        return (amount * (quantity - filled) / quantity).quantize(EXACT)


def _with_position(leg: BookLeg, p: PositionLeg) -> BookLeg:
    value = p.market_value if p.market_value is not None else p.quantity * p.price
    return replace(
        leg,
        asset_class=p.asset_class,
        net=leg.net + p.quantity,
        mark=p.price if leg.mark is None else max(leg.mark, p.price),
        market_value=leg.market_value + value,
    )


def _with_order(leg: BookLeg, o: OpenOrder) -> BookLeg:
    buy = o.side == Side.BUY
    return replace(
        leg,
        asset_class=leg.asset_class or o.asset_class or asset_class_of(o.symbol),
        open_buy=leg.open_buy + (o.remaining if buy else ZERO),
        open_sell=leg.open_sell + (ZERO if buy else o.remaining),
        open_orders=leg.open_orders + 1,
        order_price=o.price if leg.order_price is None else max(leg.order_price, o.price),
        reserved=leg.reserved + o.reserved,
    )


def legs_from(positions: Iterable[PositionLeg], open_orders: Iterable[OpenOrder]) -> list[BookLeg]:
    """Fold positions and open orders into one leg per (broker, symbol), sorted."""
    legs: dict[tuple[int, str], BookLeg] = {}
    with decimal.localcontext(PRECISE):
        for p in positions:
            if p.quantity != 0:
                key = (p.broker_id, p.symbol)
                legs[key] = _with_position(legs.get(key) or BookLeg(p.broker_id, p.symbol), p)
        for o in open_orders:
            key = (o.broker_id, o.symbol)
            legs[key] = _with_order(legs.get(key) or BookLeg(o.broker_id, o.symbol), o)
    return [legs[k] for k in sorted(legs)]


def with_open_order(legs: Iterable[BookLeg], order: OpenOrder) -> list[BookLeg]:
    """``legs`` (one symbol's) with a new open order folded in: what legs_from would give."""
    by_key = {(leg.broker_id, leg.symbol): leg for leg in legs}
    key = (order.broker_id, order.symbol)
    with decimal.localcontext(PRECISE):
        by_key[key] = _with_order(by_key.get(key) or BookLeg(order.broker_id, order.symbol), order)
    return [by_key[k] for k in sorted(by_key)]


def symbol_price(legs: Iterable[BookLeg]) -> Decimal:
    """The price a symbol's exposure is valued at: highest mark, else highest open-order price."""
    legs = list(legs)
    marks = [leg.mark for leg in legs if leg.mark is not None]
    if marks:
        return max(marks)
    prices = [leg.order_price for leg in legs if leg.order_price is not None]
    return max(prices) if prices else ZERO


@dataclass(frozen=True, slots=True)
class Extra:
    """An order not yet in the book, added to its symbol's worst case."""

    broker_id: int
    side: Side
    quantity: Decimal


def _gross(long: Decimal, short: Decimal, price: Decimal) -> Decimal:
    return max(abs(long), abs(short)) * price


@dataclass(frozen=True, slots=True)
class Contribution:
    """What one symbol adds to the book's figures."""

    gross: Decimal = ZERO
    long_value: Decimal = ZERO
    short_value: Decimal = ZERO
    broker_gross: Mapping[int, Decimal] = field(default_factory=dict)


def contribution(legs: Iterable[BookLeg], price: Decimal, extra: Extra | None = None) -> Contribution:
    """One symbol's worst-case figures at ``price``, with ``extra`` added on its side."""
    cases: dict[int, tuple[Decimal, Decimal]] = {}  # broker -> (long case, short case)
    with decimal.localcontext(PRECISE):
        for leg in legs:
            long, short = cases.get(leg.broker_id, (ZERO, ZERO))
            cases[leg.broker_id] = (long + leg.net + leg.open_buy, short + leg.net - leg.open_sell)
        if extra is not None:
            long, short = cases.get(extra.broker_id, (ZERO, ZERO))
            if extra.side == Side.BUY:
                long += extra.quantity
            else:
                short -= extra.quantity
            cases[extra.broker_id] = (long, short)
        long = sum((c[0] for c in cases.values()), ZERO)
        short = sum((c[1] for c in cases.values()), ZERO)
        return Contribution(
            gross=_gross(long, short, price),
            long_value=long * price,
            short_value=short * price,
            broker_gross={b: _gross(lc, sc, price) for b, (lc, sc) in cases.items()},
        )


def _asset_class(legs: Iterable[BookLeg]) -> AssetClass | None:
    classes = [leg.asset_class for leg in legs if leg.asset_class is not None]
    return classes[0] if classes else None


def _add(into: dict, key: object, amount: Decimal) -> None:
    total = into.get(key, ZERO) + amount
    if total:
        into[key] = total
    else:
        into.pop(key, None)


@dataclass(frozen=True, slots=True)
class BookTotals:
    """The sums over every symbol of a user's book (or of a part of it)."""

    gross: Decimal = ZERO
    long_value: Decimal = ZERO
    short_value: Decimal = ZERO
    asset_class_gross: Mapping[AssetClass | None, Decimal] = field(default_factory=dict)
    broker_gross: Mapping[int, Decimal] = field(default_factory=dict)
    broker_reserved: Mapping[int, Decimal] = field(default_factory=dict)
    open_orders: int = 0
    market_value: Decimal = ZERO

    @property
    def net(self) -> Decimal:
        return max(abs(self.long_value), abs(self.short_value))

    def in_asset_class(self, asset_class: AssetClass) -> Decimal:
        """Gross over ``asset_class``; symbols of unknown class count toward every class."""
        return self.asset_class_gross.get(asset_class, ZERO) + self.asset_class_gross.get(None, ZERO)

    def swap(self, old: Iterable[BookLeg], new: Iterable[BookLeg]) -> BookTotals:
        """These totals with one symbol's legs ``old`` replaced by ``new`` (either may be empty)."""
        totals = self
        for legs, sign in ((list(old), -1), (list(new), 1)):
            if legs:
                totals = totals._fold(legs, sign)
        return totals

    def _fold(self, legs: list[BookLeg], sign: int) -> BookTotals:
        part = contribution(legs, symbol_price(legs))
        classes, brokers, reserved = (
            dict(self.asset_class_gross),
            dict(self.broker_gross),
            dict(self.broker_reserved),
        )
        with decimal.localcontext(PRECISE):
            _add(classes, _asset_class(legs), sign * part.gross)
            for broker_id, gross in part.broker_gross.items():
                _add(brokers, broker_id, sign * gross)
            for leg in legs:
                _add(reserved, leg.broker_id, sign * leg.reserved)
            return BookTotals(
                gross=self.gross + sign * part.gross,
                long_value=self.long_value + sign * part.long_value,
                short_value=self.short_value + sign * part.short_value,
                asset_class_gross=classes,
                broker_gross=brokers,
                broker_reserved=reserved,
                open_orders=self.open_orders + sign * sum(leg.open_orders for leg in legs),
                market_value=self.market_value + sign * sum((leg.market_value for leg in legs), ZERO),
            )


def totals_of(legs: Iterable[BookLeg]) -> BookTotals:
    """The totals of a whole book, from scratch."""
    by_symbol: dict[str, list[BookLeg]] = {}
    for leg in legs:
        by_symbol.setdefault(leg.symbol, []).append(leg)
    totals = BookTotals()
    for symbol in sorted(by_symbol):
        totals = totals.swap((), by_symbol[symbol])
    return totals
