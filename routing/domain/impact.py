"""Market impact and order fragmentation across venues. Plain Python.

* :func:`impact_bps` estimates what an order moves the price, by the square-root model:
  ``coefficient * daily volatility * sqrt(quantity / ADV)``, in basis points.
* :func:`split_by_depth` fragments one order over several venues by their displayed depth. All
  levels of all venues are ranked together by their cost per unit, fees included (a buy pays
  ``price + price * bps / 10000 + per_unit``, a sell receives ``price - ...``, so for a sell the
  highest net price ranks first); ties go to the lower account id, then the better level. The
  order takes levels greedily. What is left beyond all displayed depth goes to the venues in
  proportion to their total displayed size. Each venue's share is then rounded down to whole
  lots, the lots left over go to the venue with the best first level, and children smaller than
  ``min_child`` are merged into the largest one. A venue's minimum fee is not a per-unit cost and
  does not count in the ranking.

Nothing here talks to a database, a broker or a clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from orders.domain.enums import Side
from routing.domain.schedule import largest_remainder
from routing.domain.scoring import BPS, Fees

ZERO = Decimal(0)
BPS_QUANTUM = Decimal("0.01")
NO_ADV_FACTOR = Decimal(10)  # impact with no known ADV: as if the order were 100 x ADV


@dataclass(frozen=True, slots=True)
class Book:
    """One venue's displayed depth on the side the order takes."""

    account_id: int
    levels: Sequence[tuple[Decimal, Decimal]]  # (price, size), best first
    fees: Fees


@dataclass(frozen=True, slots=True)
class Allocation:
    account_id: int
    quantity: Decimal
    expected_price: Decimal | None  # VWAP of the displayed levels it takes; None if it takes none


def impact_bps(
    *, quantity: Decimal, adv: Decimal, daily_volatility_bps: Decimal, coefficient: Decimal = Decimal(1)
) -> Decimal:
    """``coefficient * daily_volatility_bps * sqrt(quantity / adv)``, to 0.01 bps (half up).

    An ADV of 0 or less (unknown or untraded) gives ``coefficient * daily_volatility_bps * 10``,
    the impact of an order 100 times the ADV, so that such an order never looks cheap.
    """
    if quantity < 0:
        raise ValueError("quantity must not be negative")
    if adv <= 0:
        raw = coefficient * daily_volatility_bps * NO_ADV_FACTOR
    else:
        raw = coefficient * daily_volatility_bps * (quantity / adv).sqrt()
    return raw.quantize(BPS_QUANTUM, rounding=ROUND_HALF_UP)


def _net(price: Decimal, fees: Fees, side: Side) -> Decimal:
    """Cost per unit of a buy, or proceeds per unit of a sell, after the venue's per-unit fees."""
    return price + side.sign * (price * fees.bps / BPS + fees.per_unit)


def _displayed_price(levels: Sequence[tuple[Decimal, Decimal]], quantity: Decimal) -> Decimal | None:
    """Volume-weighted price of walking ``levels`` for ``quantity`` (as far as they go)."""
    left, taken, notional = quantity, ZERO, ZERO
    for price, size in levels:
        take = min(left, size)
        if take <= 0:
            continue
        taken += take
        notional += take * price
        left -= take
    return notional / taken if taken else None


def _validate(quantity: Decimal, books: Sequence[Book], lot: Decimal) -> None:
    if not books:
        raise ValueError("no venue to split over")
    if lot <= 0:
        raise ValueError("lot must be positive")
    if quantity <= 0 or quantity % lot != 0:
        raise ValueError(f"quantity {quantity} is not a positive multiple of the lot {lot}")
    if len({b.account_id for b in books}) != len(books):
        raise ValueError("a venue appears twice")
    for book in books:
        if any(price <= 0 or size < 0 for price, size in book.levels):
            raise ValueError(f"account {book.account_id} shows a level with no price or a negative size")


def split_by_depth(
    *,
    quantity: Decimal,
    side: Side,
    books: Sequence[Book],
    lot: Decimal,
    min_child: Decimal | None = None,
) -> list[Allocation]:
    """One child per venue, cheapest displayed depth first (rules in the module docstring).

    Sorted by account id; every quantity is a positive multiple of ``lot`` and they add up to
    ``quantity`` exactly. ``min_child`` defaults to one lot.
    """
    _validate(quantity, books, lot)
    venues = sorted(books, key=lambda b: b.account_id)
    share = {b.account_id: ZERO for b in venues}

    ranked = sorted(
        (side.sign * _net(price, b.fees, side), b.account_id, i, size)
        for b in venues
        for i, (price, size) in enumerate(b.levels)
        if size > 0
    )
    left = quantity
    for _, account_id, _, size in ranked:
        if left <= 0:
            break
        take = min(left, size)
        share[account_id] += take
        left -= take

    if left > 0:  # beyond all displayed depth: in proportion to displayed size (evenly if none)
        shown = [sum((size for _, size in b.levels), ZERO) for b in venues]
        if not any(shown):
            shown = [Decimal(1)] * len(venues)
        for b, lots in zip(venues, largest_remainder(int(left // lot), shown), strict=True):
            share[b.account_id] += lots * lot

    rounded = {a: (q // lot) * lot for a, q in share.items()}
    firsts = [(side.sign * _net(b.levels[0][0], b.fees, side), b.account_id) for b in venues if b.levels]
    best = min(firsts)[1] if firsts else venues[0].account_id
    rounded[best] += quantity - sum(rounded.values(), ZERO)

    smallest = lot if min_child is None else min_child
    largest = max(rounded, key=lambda a: (rounded[a], -a))
    for account_id, q in rounded.items():
        if account_id != largest and 0 < q < smallest:
            rounded[largest] += q
            rounded[account_id] = ZERO

    levels = {b.account_id: b.levels for b in venues}
    return [
        Allocation(account_id, q, _displayed_price(levels[account_id], q))
        for account_id, q in sorted(rounded.items())
        if q > 0
    ]
