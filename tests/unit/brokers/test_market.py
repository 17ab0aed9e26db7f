"""Unit tests for the simulated market: price walk, book building and commissions."""

from __future__ import annotations

import itertools
import random
from decimal import ROUND_DOWN, ROUND_UP, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from brokers.domain.market import (
    Book,
    InstrumentSpec,
    Level,
    VenueSpec,
    build_book,
    commission,
    round_to_tick,
    step_mid,
)
from orders.domain.enums import AssetClass

D = Decimal

EQUITY = InstrumentSpec(
    symbol="ACME",
    asset_class=AssetClass.EQUITY,
    tick_size=D("0.01"),
    lot_size=D("1"),
    base_size=D("100"),
    volatility_ticks=5,
)
CRYPTO = InstrumentSpec(
    symbol="BTC-USD",
    asset_class=AssetClass.CRYPTO,
    tick_size=D("0.01"),
    lot_size=D("0.0001"),
    base_size=D("0.5"),
    volatility_ticks=50,
)
STANDARD = VenueSpec(
    name="standard",
    spread_bps=D("10"),
    depth_levels=5,
    size_factor=D("1"),
    commission_bps=D("0"),
    commission_per_unit=D("0.005"),
    min_commission=D("1"),
)
WIDE = VenueSpec(
    name="wide",
    spread_bps=D("50"),
    depth_levels=3,
    size_factor=D("0.5"),
    commission_bps=D("10"),
    commission_per_unit=D("0"),
    min_commission=D("0"),
)


# --- round_to_tick ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "tick", "rounding", "expected"),
    [
        ("100.004", "0.01", None, "100.00"),
        ("100.005", "0.01", None, "100.00"),  # half-even by default
        ("100.015", "0.01", None, "100.02"),
        ("100.001", "0.01", ROUND_UP, "100.01"),
        ("100.019", "0.01", ROUND_DOWN, "100.01"),
        ("100.12", "0.05", None, "100.10"),
        ("100.13", "0.05", None, "100.15"),
        ("7.9", "1", ROUND_DOWN, "7"),
    ],
)
def test_round_to_tick(value: str, tick: str, rounding: str | None, expected: str) -> None:
    # given a value and a tick / when rounded to the tick grid
    result = (
        round_to_tick(D(value), D(tick)) if rounding is None else round_to_tick(D(value), D(tick), rounding)
    )
    # then it is the expected multiple of the tick
    assert result == D(expected)
    assert result % D(tick) == 0


# --- step_mid --------------------------------------------------------------------------------


def test_step_mid_is_deterministic_for_the_same_seed_and_step() -> None:
    # given the same mid, seed and step / when stepped twice
    first = [step_mid(D("100.00"), EQUITY, seed=7, step=s) for s in range(50)]
    second = [step_mid(D("100.00"), EQUITY, seed=7, step=s) for s in range(50)]
    # then the walk is identical
    assert first == second


def test_step_mid_follows_the_seeded_random_walk_formula() -> None:
    # given the documented rng seeding
    rng = random.Random("42:ACME:3")
    move = rng.randint(-EQUITY.volatility_ticks, EQUITY.volatility_ticks)
    # when stepping / then the move is exactly that many ticks
    assert step_mid(D("100.00"), EQUITY, seed=42, step=3) == D("100.00") + move * D("0.01")


def test_step_mid_differs_between_seeds() -> None:
    # given two seeds / when stepping the same mid over a range of steps
    a = [step_mid(D("100.00"), EQUITY, seed=1, step=s) for s in range(20)]
    b = [step_mid(D("100.00"), EQUITY, seed=2, step=s) for s in range(20)]
    # then the walks differ somewhere
    assert a != b


def test_step_mid_depends_on_symbol() -> None:
    # given two instruments that differ only by symbol
    other = InstrumentSpec("OTHER", AssetClass.EQUITY, D("0.01"), D("1"), D("100"), 5)
    # when walked with the same seed / then the walks differ somewhere
    a = [step_mid(D("100.00"), EQUITY, seed=1, step=s) for s in range(20)]
    b = [step_mid(D("100.00"), other, seed=1, step=s) for s in range(20)]
    assert a != b


def test_step_mid_never_goes_below_ten_ticks() -> None:
    # given a mid at the floor and a volatile instrument
    mid = D("0.10")
    seen = []
    # when walked for many steps
    for step in range(500):
        mid = step_mid(mid, EQUITY, seed=3, step=step)
        seen.append(mid)
    # then it never drops below 10 ticks, and the floor is actually hit
    assert min(seen) == D("0.10")


@given(
    mid_cents=st.integers(min_value=0, max_value=1_000_000),
    seed=st.integers(min_value=0, max_value=2**32),
    step=st.integers(min_value=0, max_value=10_000),
)
def test_step_mid_moves_at_most_volatility_ticks_and_respects_floor(
    mid_cents: int, seed: int, step: int
) -> None:
    # given any on-tick mid / when stepped
    mid = D(mid_cents).scaleb(-2)
    new = step_mid(mid, EQUITY, seed=seed, step=step)
    # then it stays on the tick grid, above the floor, and within the volatility band (or at the floor)
    assert new % EQUITY.tick_size == 0
    assert new >= D("0.10")
    assert abs(new - mid) <= 5 * EQUITY.tick_size or new == D("0.10")


# --- build_book ------------------------------------------------------------------------------


def test_build_book_shape_at_standard_venue() -> None:
    # given a mid of 100 and a 10 bps venue with 5 levels
    # when the book is built
    book = build_book(D("100.00"), EQUITY, STANDARD)
    # then the half spread is 0.05 around the mid, levels are one tick apart, sizes grow by base size
    assert book.symbol == "ACME"
    assert book.bids == tuple(
        Level(D(p), D(s))
        for p, s in [("99.95", 100), ("99.94", 200), ("99.93", 300), ("99.92", 400), ("99.91", 500)]
    )
    assert book.asks == tuple(
        Level(D(p), D(s))
        for p, s in [("100.05", 100), ("100.06", 200), ("100.07", 300), ("100.08", 400), ("100.09", 500)]
    )
    assert (book.best_bid, book.best_ask) == (D("99.95"), D("100.05"))
    assert (book.bid_size, book.ask_size) == (D("100"), D("100"))
    assert book.mid == D("100.00")


def test_wider_venue_quotes_worse_prices_and_smaller_sizes() -> None:
    # given the same mid at a standard and a wide venue
    standard = build_book(D("100.00"), EQUITY, STANDARD)
    wide = build_book(D("100.00"), EQUITY, WIDE)
    # then the wide venue bids lower and offers higher, with its own depth and size factor
    assert (wide.best_bid, wide.best_ask) == (D("99.75"), D("100.25"))
    assert wide.best_bid < standard.best_bid
    assert wide.best_ask > standard.best_ask
    assert [lv.size for lv in wide.asks] == [D("50"), D("100"), D("150")]
    assert len(wide.bids) == len(wide.asks) == 3


@pytest.mark.parametrize(
    ("mid", "spread_bps", "bid", "ask"),
    [
        ("100.00", "0", "99.99", "100.01"),  # half spread is at least one tick
        ("100.00", "3", "99.98", "100.02"),  # 0.015 rounds UP to 0.02
        ("100.004", "0", "99.99", "100.01"),  # mid rounded to tick first
        ("100.015", "10", "99.96", "100.08"),  # mid half-even to 100.02; half 0.0500075 up to 0.06
    ],
)
def test_build_book_spread_rounding(mid: str, spread_bps: str, bid: str, ask: str) -> None:
    # given a venue with the spread / when the book is built
    venue = VenueSpec("v", D(spread_bps), 1, D("1"), D("0"), D("0"), D("0"))
    book = build_book(D(mid), EQUITY, venue)
    # then the touch is as expected and never crossed or locked
    assert (book.best_bid, book.best_ask) == (D(bid), D(ask))
    assert book.best_ask > book.best_bid


def test_crypto_sizes_round_down_to_lot() -> None:
    # given a venue showing a third of the base size
    venue = VenueSpec("v", D("10"), 3, D("0.33333"), D("0"), D("0"), D("0"))
    # when the book is built
    book = build_book(D("30000.00"), CRYPTO, venue)
    # then sizes are rounded down to the 0.0001 lot
    assert [lv.size for lv in book.bids] == [D("0.1666"), D("0.3333"), D("0.4999")]


def test_sizes_are_at_least_one_lot() -> None:
    # given a tiny size factor that would round to zero shares
    venue = VenueSpec("v", D("10"), 2, D("0.001"), D("0"), D("0"), D("0"))
    # when the book is built / then each level shows one lot
    book = build_book(D("100.00"), EQUITY, venue)
    assert [lv.size for lv in book.asks] == [D("1"), D("1")]


@given(
    mid_ticks=st.integers(min_value=10, max_value=10_000_000),
    spread_bps=st.integers(min_value=0, max_value=500),
    depth=st.integers(min_value=1, max_value=8),
)
def test_book_is_never_crossed_and_levels_are_one_tick_apart(
    mid_ticks: int, spread_bps: int, depth: int
) -> None:
    # given any mid and venue / when a book is built
    venue = VenueSpec("v", D(spread_bps), depth, D("1"), D("0"), D("0"), D("0"))
    book = build_book(D(mid_ticks).scaleb(-2), EQUITY, venue)
    # then the ask side is strictly above the bid side and each side steps one tick per level
    assert book.best_ask > book.best_bid
    assert len(book.asks) == depth
    assert all(b.price > 0 for b in book.bids)
    for side, step in ((book.asks, D("0.01")), (book.bids, D("-0.01"))):
        assert all(nxt.price - cur.price == step for cur, nxt in itertools.pairwise(side))


def test_book_properties_on_a_hand_built_book() -> None:
    # given a book with uneven sizes / then the touch properties read the first level
    book = Book("X", bids=(Level(D("9.99"), D("7")),), asks=(Level(D("10.03"), D("3")),))
    assert (book.best_bid, book.best_ask, book.bid_size, book.ask_size) == (
        D("9.99"),
        D("10.03"),
        D("7"),
        D("3"),
    )
    assert book.mid == D("10.01")


# --- commission ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("venue", "quantity", "price", "expected"),
    [
        (STANDARD, "1000", "100.00", "5.0000"),  # 1000 * 0.005 per unit
        (STANDARD, "100", "100.00", "1.0000"),  # 0.50 raised to the 1.00 minimum
        (STANDARD, "200", "100.00", "1.0000"),  # exactly the minimum
        (WIDE, "0.5", "30000.00", "15.0000"),  # 10 bps of 15000 notional
        (WIDE, "1", "0.05", "0.0001"),  # 0.00005 rounds half up
        (WIDE, "1", "0.04", "0.0000"),  # 0.00004 rounds down
    ],
)
def test_commission(venue: VenueSpec, quantity: str, price: str, expected: str) -> None:
    # given an execution at a venue / when priced / then the commission is exact
    assert commission(venue, D(quantity), D(price)) == D(expected)


def test_commission_combines_bps_and_per_unit_and_keeps_four_places() -> None:
    # given a venue charging both a rate and a per-unit fee
    venue = VenueSpec("v", D("10"), 1, D("1"), D("2.5"), D("0.0035"), D("0.35"))
    # when an execution of 123 @ 45.67 is priced: 5617.41 * 2.5 / 10000 + 0.4305
    fee = commission(venue, D("123"), D("45.67"))
    # then it is 1.4043525 + 0.4305 rounded half up to 0.0001
    assert fee == D("1.8349")
    assert fee.as_tuple().exponent == -4


def test_zero_commission_is_not_raised_to_the_minimum() -> None:
    # given a free venue with a minimum / when priced / then nothing is charged
    venue = VenueSpec("v", D("10"), 1, D("1"), D("0"), D("0"), D("1"))
    assert commission(venue, D("10"), D("5")) == D("0.0000")
