"""Unit tests for the venue matching rules (on_entry / on_tick)."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brokers.domain.market import Book, Level
from brokers.domain.matching import (
    Execution,
    MatchResult,
    VenueOrder,
    VenueOrderStatus,
    on_entry,
    on_tick,
    trailing_stop_price,
)
from orders.domain.enums import OrderType, Side, TimeInForce

D = Decimal
TICK = D("0.01")
BUY, SELL = Side.BUY, Side.SELL
MARKET, LIMIT, STOP = OrderType.MARKET, OrderType.LIMIT, OrderType.STOP
STOP_LIMIT, TRAILING = OrderType.STOP_LIMIT, OrderType.TRAILING_STOP
DAY, GTC, IOC, FOK = TimeInForce.DAY, TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK
OPEN, FILLED, CANCELLED = VenueOrderStatus.OPEN, VenueOrderStatus.FILLED, VenueOrderStatus.CANCELLED
IOC_REASON = "IOC: unfilled remainder cancelled"
FOK_REASON = "FOK: not enough liquidity to fill in full"


def book(bids: list[tuple[str, int | str]], asks: list[tuple[str, int | str]]) -> Book:
    return Book(
        "ACME",
        bids=tuple(Level(D(p), D(s)) for p, s in bids),
        asks=tuple(Level(D(p), D(s)) for p, s in asks),
    )


def touch(bid: str, ask: str, size: int = 1000) -> Book:
    """A one-level book."""
    return book([(bid, size)], [(ask, size)])


# 100 / 200 / 300 on each side: 600 in total per side
STANDARD = book(
    bids=[("99.95", 100), ("99.94", 200), ("99.93", 300)],
    asks=[("100.05", 100), ("100.06", 200), ("100.07", 300)],
)


def order(
    side: Side, order_type: OrderType, quantity: str, tif: TimeInForce = DAY, **kw: object
) -> VenueOrder:
    return VenueOrder(
        order_id="o-1", side=side, order_type=order_type, quantity=D(quantity), time_in_force=tif, **kw
    )


def ex(quantity: str, price: str, liquidity: str = "TAKER") -> Execution:
    return Execution(D(quantity), D(price), liquidity)


def entry(o: VenueOrder, b: Book = STANDARD) -> MatchResult:
    return on_entry(o, b, tick=TICK)


def tick(o: VenueOrder, b: Book = STANDARD) -> MatchResult:
    return on_tick(o, b, tick=TICK)


# --- VenueOrder ------------------------------------------------------------------------------


def test_remaining_is_quantity_less_filled() -> None:
    assert order(BUY, MARKET, "10", filled_quantity=D("3.5")).remaining == D("6.5")


@pytest.mark.parametrize(
    ("order_type", "fields"),
    [
        (LIMIT, {}),
        (STOP, {}),
        (STOP_LIMIT, {"stop_price": D("1")}),
        (STOP_LIMIT, {"price": D("1")}),
        (TRAILING, {}),
        (TRAILING, {"trail_amount": D("1"), "trail_percent": D("1")}),
    ],
)
def test_order_missing_its_prices_is_refused(order_type: OrderType, fields: dict[str, Decimal]) -> None:
    with pytest.raises(ValueError, match=str(order_type)):
        order(BUY, order_type, "1", **fields)


# --- MARKET ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("side", "quantity", "executions"),
    [
        (BUY, "50", [ex("50", "100.05")]),
        (SELL, "50", [ex("50", "99.95")]),
        (BUY, "250", [ex("100", "100.05"), ex("150", "100.06")]),
        (SELL, "600", [ex("100", "99.95"), ex("200", "99.94"), ex("300", "99.93")]),
    ],
)
def test_market_takes_levels_best_first(side: Side, quantity: str, executions: list[Execution]) -> None:
    # given a market order / when it arrives
    result = entry(order(side, MARKET, quantity))
    # then it takes the opposite side level by level as TAKER and is filled
    assert result.executions == tuple(executions)
    assert result.order.status is FILLED
    assert result.order.filled_quantity == D(quantity)
    assert (result.triggered_now, result.reason) == (False, "")


@pytest.mark.parametrize("tif", [DAY, GTC])
def test_market_larger_than_book_rests_and_fills_next_tick(tif: TimeInForce) -> None:
    # given a buy of 700 against 600 offered
    first = entry(order(BUY, MARKET, "700", tif))
    # then all three levels are taken and 100 stays open
    assert first.executions == (ex("100", "100.05"), ex("200", "100.06"), ex("300", "100.07"))
    assert first.order.status is OPEN
    assert first.order.remaining == D("100")
    assert first.reason == ""
    # when the next (refreshed) book arrives
    second = tick(first.order)
    # then the remainder is taken at the new touch
    assert second.executions == (ex("100", "100.05"),)
    assert second.order.status is FILLED
    assert second.order.filled_quantity == D("700")


def test_market_ioc_cancels_the_remainder() -> None:
    # given an IOC sell of 700 against 600 bid / when it arrives
    result = entry(order(SELL, MARKET, "700", IOC))
    # then 600 fill and the rest is cancelled
    assert sum(e.quantity for e in result.executions) == D("600")
    assert result.order.filled_quantity == D("600")
    assert result.order.status is CANCELLED
    assert result.reason == IOC_REASON


def test_market_fok_without_enough_liquidity_does_nothing() -> None:
    # given a FOK buy of 601 against 600 offered / when it arrives
    result = entry(order(BUY, MARKET, "601", FOK))
    # then nothing fills and the order is cancelled
    assert result.executions == ()
    assert result.order.filled_quantity == D("0")
    assert result.order.status is CANCELLED
    assert result.reason == FOK_REASON


def test_market_fok_with_enough_liquidity_fills_in_full() -> None:
    # given a FOK buy of exactly the size offered / when it arrives
    result = entry(order(BUY, MARKET, "600", FOK))
    # then it fills in full across all levels
    assert len(result.executions) == 3
    assert result.order.status is FILLED
    assert result.reason == ""


def test_market_handles_fractional_quantities() -> None:
    # given a crypto-sized book and order
    b = book([("29999.99", 1)], [("30000.01", "0.25"), ("30000.02", "0.5")])
    # when a buy of 0.3 arrives / then it takes 0.25 + 0.05
    result = entry(order(BUY, MARKET, "0.3"), b)
    assert result.executions == (ex("0.25", "30000.01"), ex("0.05", "30000.02"))
    assert result.order.status is FILLED


# --- LIMIT -----------------------------------------------------------------------------------


def test_marketable_limit_takes_within_its_limit() -> None:
    # given a buy limit at 100.06 for 250 / when it arrives
    result = entry(order(BUY, LIMIT, "250", price=D("100.06")))
    # then it takes at the level prices, not its limit
    assert result.executions == (ex("100", "100.05"), ex("150", "100.06"))
    assert result.order.status is FILLED


def test_limit_remainder_rests_after_taking_what_is_within_the_limit() -> None:
    # given a sell limit at 99.94 for 400 / when it arrives
    result = entry(order(SELL, LIMIT, "400", price=D("99.94")))
    # then the two levels at or above 99.94 are taken and 100 rests
    assert result.executions == (ex("100", "99.95"), ex("200", "99.94"))
    assert result.order.status is OPEN
    assert result.order.remaining == D("100")


def test_non_marketable_limit_rests_without_executions() -> None:
    # given a buy limit below the offer / when it arrives / then it just rests
    result = entry(order(BUY, LIMIT, "100", GTC, price=D("100.00")))
    assert result.executions == ()
    assert result.order.status is OPEN
    assert result.reason == ""


@pytest.mark.parametrize(("price", "filled"), [("100.06", "300"), ("100.00", "0")])
def test_limit_ioc_cancels_what_is_not_marketable(price: str, filled: str) -> None:
    # given an IOC buy limit for 500 / when it arrives
    result = entry(order(BUY, LIMIT, "500", IOC, price=D(price)))
    # then only the size within the limit fills and the rest is cancelled
    assert result.order.filled_quantity == D(filled)
    assert result.order.status is CANCELLED
    assert result.reason == IOC_REASON


@pytest.mark.parametrize(
    ("quantity", "status", "filled", "reason"),
    [("300", FILLED, "300", ""), ("301", CANCELLED, "0", FOK_REASON)],
)
def test_limit_fok_is_all_or_none_within_the_limit(
    quantity: str, status: VenueOrderStatus, filled: str, reason: str
) -> None:
    # given 300 offered at or below 100.06 (600 in the whole book)
    # when a FOK buy limit at 100.06 arrives
    result = entry(order(BUY, LIMIT, quantity, FOK, price=D("100.06")))
    # then it fills in full or not at all
    assert result.order.status is status
    assert result.order.filled_quantity == D(filled)
    assert result.reason == reason


def test_resting_buy_limit_fills_as_maker_at_its_own_price_when_crossed() -> None:
    # given a resting buy limit at 100.00 for 500
    resting = entry(order(BUY, LIMIT, "500", price=D("100.00"))).order
    # when the book moves down through the limit with 300 offered at or below it
    crossed = book([("99.96", 1000)], [("99.98", 100), ("99.99", 100), ("100.00", 100), ("100.01", 1000)])
    first = tick(resting, crossed)
    # then it fills 300 as MAKER at its limit and keeps resting
    assert first.executions == (ex("300", "100.00", "MAKER"),)
    assert first.order.status is OPEN
    assert first.order.remaining == D("200")
    # when the next book crosses again / then the rest fills
    second = tick(first.order, crossed)
    assert second.executions == (ex("200", "100.00", "MAKER"),)
    assert second.order.status is FILLED


@pytest.mark.parametrize(
    ("side", "price", "b", "expected"),
    [
        (SELL, "100.10", book([("100.12", 50), ("100.10", 50), ("100.09", 500)], [("100.13", 1)]), "100"),
        (SELL, "100.10", touch("100.10", "100.11"), "100"),  # equal to the limit crosses
        (SELL, "100.10", touch("100.09", "100.11"), "0"),
        (BUY, "100.00", touch("99.99", "100.00"), "100"),
        (BUY, "100.00", touch("99.99", "100.01"), "0"),
    ],
)
def test_resting_limit_crossing(side: Side, price: str, b: Book, expected: str) -> None:
    # given a resting limit for 100 / when a new book arrives
    result = tick(order(side, LIMIT, "100", price=D(price)), b)
    # then it fills at its own price only when the book reaches the limit
    filled = D(expected)
    assert result.order.filled_quantity == filled
    assert result.executions == ((ex(expected, price, "MAKER"),) if filled else ())


# --- STOP ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("side", "stop", "bid", "ask", "fires"),
    [
        (BUY, "100.10", "100.09", "100.10", True),  # ask reaches the stop (mid still below)
        (BUY, "100.10", "100.05", "100.12", True),
        (BUY, "100.10", "100.08", "100.09", False),
        (SELL, "99.90", "99.90", "99.91", True),  # bid reaches the stop (mid still above)
        (SELL, "99.90", "99.85", "99.88", True),
        (SELL, "99.90", "99.91", "99.92", False),
    ],
)
def test_stop_triggers_on_the_right_side_of_the_book(
    side: Side, stop: str, bid: str, ask: str, fires: bool
) -> None:
    # given a resting stop
    resting = order(side, STOP, "100", stop_price=D(stop))
    # when a book arrives
    result = tick(resting, touch(bid, ask))
    # then it fires and fills as a market order at the touch, or stays untouched
    assert result.triggered_now is fires
    assert result.order.triggered is fires
    if fires:
        assert result.executions == (ex("100", ask if side is BUY else bid),)
        assert result.order.status is FILLED
    else:
        assert result.executions == ()
        assert result.order == resting


def test_stop_already_reached_triggers_on_entry() -> None:
    # given a sell stop above the bid / when it arrives
    result = entry(order(SELL, STOP, "50", stop_price=D("100.00")))
    # then it triggers at once and sells at the bid
    assert result.triggered_now
    assert result.executions == (ex("50", "99.95"),)


def test_triggered_stop_remainder_works_as_market_on_later_ticks() -> None:
    # given a buy stop for 700 that triggers against 600 offered
    first = tick(order(BUY, STOP, "700", stop_price=D("100.00")))
    assert first.triggered_now
    assert first.order.remaining == D("100")
    assert first.order.status is OPEN
    # when the next book arrives (below the stop)
    second = tick(first.order, touch("99.00", "99.02"))
    # then the remainder is taken as market, without a new trigger
    assert second.executions == (ex("100", "99.02"),)
    assert second.triggered_now is False
    assert second.order.status is FILLED


def test_triggered_stop_ioc_cancels_remainder() -> None:
    # given an IOC buy stop larger than the book / when it triggers
    result = tick(order(BUY, STOP, "700", IOC, stop_price=D("100.00")))
    # then the remainder is cancelled in the same call
    assert result.triggered_now
    assert result.order.filled_quantity == D("600")
    assert (result.order.status, result.reason) == (CANCELLED, IOC_REASON)


def test_stop_limit_triggers_takes_within_limit_then_rests_as_maker() -> None:
    # given a buy stop-limit: stop 100.10, limit 100.12, 500
    resting = entry(order(BUY, STOP_LIMIT, "500", stop_price=D("100.10"), price=D("100.12")))
    assert (resting.executions, resting.triggered_now) == ((), False)
    # when the offer reaches the stop
    fired = tick(
        resting.order, book([("100.08", 1000)], [("100.10", 100), ("100.11", 100), ("100.13", 1000)])
    )
    # then it triggers and takes what is within the limit, and rests with the rest
    assert fired.triggered_now
    assert fired.executions == (ex("100", "100.10"), ex("100", "100.11"))
    assert (fired.order.status, fired.order.remaining) == (OPEN, D("300"))
    # when the market runs away above the limit / then nothing happens
    away = tick(fired.order, touch("100.14", "100.15"))
    assert away.executions == ()
    assert away.triggered_now is False
    # when the offer comes back into the limit / then it fills as MAKER at its limit
    back = tick(away.order, book([("100.09", 1000)], [("100.11", 50), ("100.12", 100), ("100.13", 1000)]))
    assert back.executions == (ex("150", "100.12", "MAKER"),)
    assert back.order.remaining == D("150")


def test_sell_stop_limit_triggers_but_limit_not_reached_rests() -> None:
    # given a sell stop-limit: stop 99.95, limit 99.97 / when the bid falls to the stop
    result = entry(order(SELL, STOP_LIMIT, "100", stop_price=D("99.95"), price=D("99.97")))
    # then it triggers but nothing is bid at or above the limit, so it rests
    assert result.triggered_now
    assert result.order.triggered
    assert result.executions == ()
    assert result.order.status is OPEN


def test_stop_limit_fok_trigger_is_all_or_none() -> None:
    # given a FOK buy stop-limit larger than the size within its limit / when it triggers
    result = entry(order(BUY, STOP_LIMIT, "301", FOK, stop_price=D("100.00"), price=D("100.06")))
    # then it is cancelled without executions
    assert result.triggered_now
    assert (result.executions, result.order.status, result.reason) == ((), CANCELLED, FOK_REASON)


# --- TRAILING_STOP ---------------------------------------------------------------------------


def _walk(o: VenueOrder, books: list[Book]) -> list[MatchResult]:
    results = [entry(o, books[0])]
    for b in books[1:]:
        results.append(tick(results[-1].order, b))
    return results


def test_sell_trailing_amount_follows_highs_and_triggers() -> None:
    # given a sell trailing 0.50 below the high bid
    o = order(SELL, TRAILING, "10", trail_amount=D("0.50"))
    # when the bid goes 100 -> 101 -> 100.60 (pull back) -> 100.50
    results = _walk(
        o,
        [
            touch("100.00", "100.02"),
            touch("101.00", "101.02"),
            touch("100.60", "100.62"),
            touch("100.50", "100.52"),
        ],
    )
    # then the watermark follows the high and does not move back
    assert [r.order.watermark for r in results] == [D("100.00"), D("101.00"), D("101.00"), D("101.00")]
    assert [trailing_stop_price(r.order, TICK) for r in results] == [
        D("99.50"),
        D("100.50"),
        D("100.50"),
        D("100.50"),
    ]
    # and it triggers only when the bid reaches 100.50, selling at the bid
    assert [r.triggered_now for r in results] == [False, False, False, True]
    assert results[-1].executions == (ex("10", "100.50"),)
    assert results[-1].order.status is FILLED


def test_buy_trailing_amount_follows_lows_and_triggers() -> None:
    # given a buy trailing 0.50 above the low offer
    o = order(BUY, TRAILING, "10", trail_amount=D("0.50"))
    # when the offer goes 100 -> 99 -> 99.40 (bounce) -> 99.50
    results = _walk(
        o,
        [touch("99.98", "100.00"), touch("98.98", "99.00"), touch("99.38", "99.40"), touch("99.48", "99.50")],
    )
    # then the watermark follows the low and does not move back
    assert [r.order.watermark for r in results] == [D("100.00"), D("99.00"), D("99.00"), D("99.00")]
    assert [trailing_stop_price(r.order, TICK) for r in results] == [
        D("100.50"),
        D("99.50"),
        D("99.50"),
        D("99.50"),
    ]
    # and it triggers when the offer reaches 99.50, buying at the offer
    assert [r.triggered_now for r in results] == [False, False, False, True]
    assert results[-1].executions == (ex("10", "99.50"),)


def test_sell_trailing_percent_rounds_down_and_triggers() -> None:
    # given a sell trailing 1% below the high bid
    o = order(SELL, TRAILING, "5", trail_percent=D("1"))
    # when the bid goes 100.05 -> 102.00 -> 101.50 -> 100.98
    results = _walk(
        o,
        [
            touch("100.05", "100.07"),
            touch("102.00", "102.02"),
            touch("101.50", "101.52"),
            touch("100.98", "101.00"),
        ],
    )
    # then the stop is watermark * 0.99 rounded down: 99.0495 -> 99.04, then 100.98
    assert [trailing_stop_price(r.order, TICK) for r in results] == [
        D("99.04"),
        D("100.98"),
        D("100.98"),
        D("100.98"),
    ]
    assert [r.triggered_now for r in results] == [False, False, False, True]
    assert results[-1].executions == (ex("5", "100.98"),)


def test_buy_trailing_percent_rounds_up_and_triggers() -> None:
    # given a buy trailing 2% above the low offer of 99.99
    o = order(BUY, TRAILING, "5", trail_percent=D("2"))
    first = entry(o, touch("99.97", "99.99"))
    # then the stop is 99.99 * 1.02 = 101.9898 rounded up to 101.99
    assert trailing_stop_price(first.order, TICK) == D("101.99")
    # when the offer is just below / then nothing; at the stop / then it triggers
    assert tick(first.order, touch("101.96", "101.98")).triggered_now is False
    fired = tick(first.order, touch("101.97", "101.99"))
    assert fired.triggered_now
    assert fired.executions == (ex("5", "101.99"),)


def test_triggered_trailing_stop_freezes_watermark_and_works_as_market() -> None:
    # given a sell trailing stop that triggers with more than the bid size
    o = order(SELL, TRAILING, "150", trail_amount=D("0.50"))
    armed = entry(o, touch("101.00", "101.02", size=100)).order
    fired = tick(armed, touch("100.40", "100.42", size=100))
    assert fired.triggered_now
    assert fired.order.remaining == D("50")
    # when a higher bid arrives
    later = tick(fired.order, touch("102.00", "102.02", size=100))
    # then the watermark stays put and the remainder sells at market
    assert later.order.watermark == D("101.00")
    assert later.executions == (ex("50", "102.00"),)
    assert later.triggered_now is False


def test_trailing_stop_price_is_none_for_other_orders_and_before_a_watermark() -> None:
    assert trailing_stop_price(order(SELL, STOP, "1", stop_price=D("1")), TICK) is None
    assert trailing_stop_price(order(SELL, TRAILING, "1", trail_amount=D("1")), TICK) is None


# --- non-OPEN orders -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status",
    [
        VenueOrderStatus.FILLED,
        VenueOrderStatus.CANCELLED,
        VenueOrderStatus.EXPIRED,
        VenueOrderStatus.REJECTED,
    ],
)
@pytest.mark.parametrize("call", [entry, tick])
@pytest.mark.parametrize(
    "o",
    [
        order(BUY, MARKET, "10"),
        order(BUY, LIMIT, "10", price=D("101")),
        order(BUY, STOP, "10", stop_price=D("100")),
        order(SELL, TRAILING, "10", trail_amount=D("0.01")),
    ],
)
def test_non_open_orders_are_returned_unchanged(status: VenueOrderStatus, call, o: VenueOrder) -> None:
    # given a closed order / when matched against a crossing book
    closed = dataclasses.replace(o, status=status)
    result = call(closed)
    # then nothing happens
    assert result == MatchResult(closed, (), False, "")


# --- properties ------------------------------------------------------------------------------

PRICED = (LIMIT, STOP_LIMIT)


@st.composite
def books(draw: st.DrawFn) -> Book:
    mid = draw(st.integers(min_value=1_000, max_value=20_000))  # in ticks
    half = draw(st.integers(min_value=1, max_value=20))
    bid_sizes = draw(st.lists(st.integers(min_value=1, max_value=500), min_size=1, max_size=5))
    ask_sizes = draw(st.lists(st.integers(min_value=1, max_value=500), min_size=1, max_size=5))
    return Book(
        "ACME",
        bids=tuple(Level(D(mid - half - i).scaleb(-2), D(s)) for i, s in enumerate(bid_sizes)),
        asks=tuple(Level(D(mid + half + i).scaleb(-2), D(s)) for i, s in enumerate(ask_sizes)),
    )


@st.composite
def orders(draw: st.DrawFn) -> VenueOrder:
    order_type = draw(st.sampled_from(list(OrderType)))
    quantity = draw(st.integers(min_value=1, max_value=2_000))
    fields: dict[str, object] = {
        "filled_quantity": D(draw(st.integers(min_value=0, max_value=quantity - 1))),
    }
    price_ticks = st.integers(min_value=1_000, max_value=20_000).map(lambda n: D(n).scaleb(-2))
    if order_type in PRICED:
        fields["price"] = draw(price_ticks)
    if order_type in (STOP, STOP_LIMIT):
        fields["stop_price"] = draw(price_ticks)
    if order_type is TRAILING:
        if draw(st.booleans()):
            fields["trail_amount"] = D(draw(st.integers(min_value=1, max_value=500))).scaleb(-2)
        else:
            fields["trail_percent"] = D(draw(st.integers(min_value=1, max_value=100))).scaleb(-1)
    return VenueOrder(
        order_id="p",
        side=draw(st.sampled_from(list(Side))),
        order_type=order_type,
        quantity=D(quantity),
        time_in_force=draw(st.sampled_from(list(TimeInForce))),
        **fields,
    )


@settings(max_examples=300, deadline=None)
@given(o=orders(), book_seq=st.lists(books(), min_size=1, max_size=6))
def test_matching_invariants(o: VenueOrder, book_seq: list[Book]) -> None:
    # given any order and a sequence of books
    current = o
    for i, b in enumerate(book_seq):
        # when it is matched (entry first, then ticks)
        result = on_entry(current, b, tick=TICK) if i == 0 else on_tick(current, b, tick=TICK)
        executed = sum((e.quantity for e in result.executions), D(0))
        # then it never executes more than remained, and the fill count adds up
        assert all(e.quantity > 0 for e in result.executions)
        assert executed <= current.remaining
        assert result.order.filled_quantity == current.filled_quantity + executed
        assert (result.order.status is FILLED) == (result.order.remaining == 0)
        # and a limit never executes through its limit
        if o.order_type in PRICED:
            if o.side is BUY:
                assert all(e.price <= o.price for e in result.executions)
            else:
                assert all(e.price >= o.price for e in result.executions)
        current = result.order
