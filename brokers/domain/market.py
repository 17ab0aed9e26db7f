"""A deterministic simulated market for the paper venue. Plain Python: no Django, no I/O, no clock.

* :func:`step_mid` moves a mid price by a seeded random walk of whole ticks, so the same
  ``(seed, symbol, step)`` always gives the same move and a replay reproduces the market.
* :func:`build_book` turns a mid into a depth-of-book for one venue: the venue sets the spread,
  the number of levels and the size shown per level.
* :func:`commission` prices one execution at a venue.

Prices and sizes are :class:`~decimal.Decimal` throughout.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, ROUND_UP, Decimal

from orders.domain.enums import AssetClass

BPS = Decimal(10000)
COMMISSION_QUANTUM = Decimal("0.0001")
MIN_MID_TICKS = 10


@dataclass(frozen=True, slots=True)
class InstrumentSpec:
    symbol: str
    asset_class: AssetClass
    tick_size: Decimal  # smallest price increment
    lot_size: Decimal  # smallest quantity increment
    base_size: Decimal  # displayed size per book level at a standard venue
    volatility_ticks: int  # max ticks the mid moves per step


@dataclass(frozen=True, slots=True)
class VenueSpec:
    name: str
    spread_bps: Decimal  # full quoted spread in basis points of mid
    depth_levels: int  # levels per side (>= 1)
    size_factor: Decimal  # multiplies the instrument's base_size
    commission_bps: Decimal  # of notional
    commission_per_unit: Decimal
    min_commission: Decimal  # per execution, when the commission is > 0 but less than this


@dataclass(frozen=True, slots=True)
class Level:
    price: Decimal
    size: Decimal


@dataclass(frozen=True, slots=True)
class Book:
    """Depth of book for one symbol. Both sides are ordered best first."""

    symbol: str
    bids: tuple[Level, ...]  # best (highest) first
    asks: tuple[Level, ...]  # best (lowest) first

    @property
    def best_bid(self) -> Decimal:
        return self.bids[0].price

    @property
    def best_ask(self) -> Decimal:
        return self.asks[0].price

    @property
    def bid_size(self) -> Decimal:
        return self.bids[0].size

    @property
    def ask_size(self) -> Decimal:
        return self.asks[0].size

    @property
    def mid(self) -> Decimal:
        return (self.best_bid + self.best_ask) / 2


def round_to_tick(value: Decimal, tick: Decimal, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """``value`` rounded to a whole multiple of ``tick`` (also used for lot sizes)."""
    return (value / tick).to_integral_value(rounding=rounding) * tick


def step_mid(mid: Decimal, spec: InstrumentSpec, *, seed: int, step: int) -> Decimal:
    """The mid after one step of a seeded random walk.

    The move is a whole number of ticks in ``[-volatility_ticks, volatility_ticks]``, drawn from
    ``random.Random(f"{seed}:{symbol}:{step}")``, so it depends only on seed, symbol and step.
    The result is never below 10 ticks.
    """
    rng = random.Random(f"{seed}:{spec.symbol}:{step}")
    move = rng.randint(-spec.volatility_ticks, spec.volatility_ticks)
    return max(mid + move * spec.tick_size, MIN_MID_TICKS * spec.tick_size)


def build_book(mid: Decimal, spec: InstrumentSpec, venue: VenueSpec) -> Book:
    """The venue's book around ``mid``.

    * half spread = ``max(tick, mid * spread_bps / 20000 rounded UP to tick)``;
    * best bid = mid rounded to tick - half spread, best ask = mid rounded to tick + half spread,
      so the book is never crossed or locked;
    * each further level is one tick worse; bid levels that would not be positive are left out;
    * level ``i`` (0-based) shows ``base_size * size_factor * (i + 1)``, rounded down to the lot
      size but at least one lot.
    """
    tick = spec.tick_size
    half = max(tick, round_to_tick(mid * venue.spread_bps / (2 * BPS), tick, ROUND_UP))
    centre = round_to_tick(mid, tick)
    bids: list[Level] = []
    asks: list[Level] = []
    for i in range(venue.depth_levels):
        shown = spec.base_size * venue.size_factor * (i + 1)
        size = max(spec.lot_size, round_to_tick(shown, spec.lot_size, ROUND_DOWN))
        bid = centre - half - i * tick
        if bid > 0:
            bids.append(Level(bid, size))
        asks.append(Level(centre + half + i * tick, size))
    return Book(symbol=spec.symbol, bids=tuple(bids), asks=tuple(asks))


def commission(venue: VenueSpec, quantity: Decimal, price: Decimal) -> Decimal:
    """Commission on one execution: ``notional * bps / 10000 + per_unit * quantity``.

    A positive commission below ``min_commission`` is raised to it; a zero commission stays zero.
    The result is quantized to 0.0001 (ROUND_HALF_UP).
    """
    fee = quantity * price * venue.commission_bps / BPS + venue.commission_per_unit * quantity
    if 0 < fee < venue.min_commission:
        fee = venue.min_commission
    return fee.quantize(COMMISSION_QUANTUM, rounding=ROUND_HALF_UP)
