"""Every order type end to end on the paper venue, at the service level.

Book rules used for the expected prices (brokers.domain.market.build_book):
half spread = max(tick, ceil_to_tick(mid * spread_bps / 20000)); best ask = round_to_tick(mid) + half,
best bid = round_to_tick(mid) - half; each further level one tick worse; level i shows
base_size * size_factor * (i + 1). AAPL: tick 0.01, base size 200.
Venue A (PAPER-EQ-A): 2 bps, 5 levels, factor 1, $0.005/share with a $1 minimum per execution.
Venue B (PAPER-EQ-B): 6 bps, 3 levels, factor 0.6, no commission.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from orders.models import Position
from orders.services import market_tick
from tests.integration.pipeline.support import events, fills, fresh, in_session, paper_order, place

pytestmark = pytest.mark.django_db

D = Decimal


# --- MARKET ---------------------------------------------------------------------------------------


def test_market_buy_fills_at_the_best_ask_as_taker(trader, accounts, set_mid):
    # given AAPL at 100.00: venue A quotes 99.99 / 100.01 (half spread 0.01), 200 shown at the touch
    set_mid("AAPL", "100.00")
    # when the trader buys 10 at market on venue A
    placed = place(trader, accounts["PAPER-EQ-A"], side="BUY", order_type="MARKET", quantity="10")
    # then it fills in full at the ask, paying the $1 minimum commission
    order = placed.order
    assert order.status == "FILLED"
    assert order.filled_quantity == D("10")
    assert order.average_fill_price == D("100.01")
    assert order.commission == D("1.0000")
    assert fills(order) == [(D("10"), D("100.01"), D("1.0000"), "TAKER")]
    assert events(order) == [
        ("CREATED", "PENDING"),
        ("SUBMIT", "SUBMITTED"),
        ("ACCEPT", "ACCEPTED"),
        ("FILL", "FILLED"),
    ]


def test_market_sell_fills_at_the_best_bid(trader, accounts, set_mid):
    # given AAPL at 100.00: venue B quotes 99.97 / 100.03 (6 bps -> half spread 0.03), no commission
    set_mid("AAPL", "100.00")
    # when the trader sells 50 at market on venue B (equities may be sold short on paper)
    order = place(trader, accounts["PAPER-EQ-B"], side="SELL", order_type="MARKET", quantity="50").order
    # then it fills at the bid, free of commission, and opens a short position
    assert order.status == "FILLED"
    assert order.average_fill_price == D("99.97")
    assert order.commission == D("0")
    assert fills(order) == [(D("50"), D("99.97"), D("0"), "TAKER")]
    position = Position.objects.get(user=trader, broker=accounts["PAPER-EQ-B"], symbol="AAPL")
    assert (position.quantity, position.average_cost) == (D("-50"), D("99.97"))


def test_market_order_larger_than_the_touch_walks_the_book(trader, accounts, set_mid):
    # given AAPL at 100.00: venue A shows 200 @ 100.01, 400 @ 100.02, ...
    set_mid("AAPL", "100.00")
    # when the trader buys 500 at market
    order = place(trader, accounts["PAPER-EQ-A"], side="BUY", order_type="MARKET", quantity="500").order
    # then it takes the whole first level and 300 of the second, at worsening prices
    assert order.status == "FILLED"
    assert fills(order) == [
        (D("200"), D("100.01"), D("1.0000"), "TAKER"),  # 200 * 0.005 = 1.00
        (D("300"), D("100.02"), D("1.5000"), "TAKER"),  # 300 * 0.005 = 1.50
    ]
    # (200 * 100.01 + 300 * 100.02) / 500 = 50008.00 / 500
    assert order.average_fill_price == D("100.016")
    assert order.commission == D("2.5000")


def test_day_market_order_larger_than_the_book_partially_fills_then_completes_next_tick(
    trader, accounts, set_mid
):
    # given AAPL at 100.00: venue B shows 120 @ 100.03, 240 @ 100.04, 360 @ 100.05 (720 in all)
    set_mid("AAPL", "100.00")
    # when the trader buys 800 at market, DAY
    order = place(
        trader, accounts["PAPER-EQ-B"], side="BUY", order_type="MARKET", quantity="800", time_in_force="DAY"
    ).order
    # then it sweeps the whole book and waits for the rest
    assert order.status == "PARTIALLY_FILLED"
    assert order.filled_quantity == D("720")
    assert fills(order) == [
        (D("120"), D("100.03"), D("0"), "TAKER"),
        (D("240"), D("100.04"), D("0"), "TAKER"),
        (D("360"), D("100.05"), D("0"), "TAKER"),
    ]
    assert paper_order(order).status == "OPEN"
    # when the venue ticks (liquidity refreshes) within the order's session
    market_tick(now=in_session(order), advance=False)
    # then the remaining 80 fill at the touch and the order is complete
    order = fresh(order)
    assert order.status == "FILLED"
    assert order.filled_quantity == D("800")
    assert fills(order)[-1] == (D("80"), D("100.03"), D("0"), "TAKER")
    # (120*100.03 + 240*100.04 + 360*100.05 + 80*100.03) / 800 = 80033.60 / 800
    assert order.average_fill_price == D("100.042")
    assert order.filled_at is not None
    assert paper_order(order).status == "FILLED"


# --- LIMIT ----------------------------------------------------------------------------------------


def test_marketable_limit_fills_on_entry_at_the_better_ask_as_taker(trader, accounts, set_mid):
    # given AAPL at 100.00 (venue A ask 100.01)
    set_mid("AAPL", "100.00")
    # when the trader buys 10 with a limit of 100.05
    order = place(
        trader, accounts["PAPER-EQ-A"], side="BUY", order_type="LIMIT", quantity="10", price="100.05"
    ).order
    # then it fills at once at the ask, which is better than the limit, taking liquidity
    assert order.status == "FILLED"
    assert order.average_fill_price == D("100.01")
    assert fills(order) == [(D("10"), D("100.01"), D("1.0000"), "TAKER")]


def test_resting_limit_fills_at_its_limit_as_maker_when_crossed(trader, accounts, set_mid):
    # given a buy limit at 99.90 while the ask is 100.01: it rests
    set_mid("AAPL", "100.00")
    order = place(
        trader,
        accounts["PAPER-EQ-A"],
        side="BUY",
        order_type="LIMIT",
        quantity="10",
        price="99.90",
        time_in_force="GTC",
    ).order
    assert order.status == "ACCEPTED"
    assert order.filled_quantity == D("0")
    # when the market drops to 99.95 (ask 99.96, still above the limit) and ticks
    set_mid("AAPL", "99.95")
    market_tick(advance=False)
    # then nothing happens
    assert fresh(order).status == "ACCEPTED"
    # when the market drops to 99.80 (ask 99.81 <= 99.90) and ticks
    set_mid("AAPL", "99.80")
    market_tick(advance=False)
    # then it fills at its own limit price as maker
    order = fresh(order)
    assert order.status == "FILLED"
    assert order.average_fill_price == D("99.90")
    assert fills(order) == [(D("10"), D("99.90"), D("1.0000"), "MAKER")]


# --- STOP -----------------------------------------------------------------------------------------


def test_buy_stop_triggers_when_the_ask_reaches_the_stop_then_fills(trader, accounts, set_mid):
    # given a buy stop at 100.50 while the ask is 100.01
    set_mid("AAPL", "100.00")
    order = place(
        trader,
        accounts["PAPER-EQ-A"],
        side="BUY",
        order_type="STOP",
        quantity="10",
        stop_price="100.50",
        time_in_force="GTC",
    ).order
    assert order.status == "ACCEPTED"
    # when the market rises to 100.47 (half spread 0.02: bid 100.45 / ask 100.49, ask below the stop)
    set_mid("AAPL", "100.47")
    market_tick(advance=False)
    # then it does not trigger
    assert fresh(order).status == "ACCEPTED"
    assert fresh(order).triggered is False
    # when the mid is 100.48, still below the stop, but the ask (100.50) reaches it
    set_mid("AAPL", "100.48")
    market_tick(advance=False)
    # then it triggers and fills at market, at the ask
    order = fresh(order)
    assert order.triggered is True
    assert order.status == "FILLED"
    assert order.average_fill_price == D("100.50")
    assert fills(order) == [(D("10"), D("100.50"), D("1.0000"), "TAKER")]
    assert events(order)[-2:] == [("TRIGGER", "TRIGGERED"), ("FILL", "FILLED")]


def test_sell_stop_triggers_when_the_bid_reaches_the_stop_then_fills(trader, accounts, set_mid):
    # given a sell stop at 99.50 while the bid is 99.99
    set_mid("AAPL", "100.00")
    order = place(
        trader,
        accounts["PAPER-EQ-A"],
        side="SELL",
        order_type="STOP",
        quantity="10",
        stop_price="99.50",
        time_in_force="GTC",
    ).order
    assert order.status == "ACCEPTED"
    # when the market falls to 99.52 (bid 99.51 / ask 99.53): the bid is still above the stop
    set_mid("AAPL", "99.52")
    market_tick(advance=False)
    # then it does not trigger
    assert fresh(order).status == "ACCEPTED"
    # when the mid is 99.51, above the stop, but the bid (99.50) reaches it
    set_mid("AAPL", "99.51")
    market_tick(advance=False)
    # then it triggers and sells at the bid
    order = fresh(order)
    assert order.status == "FILLED"
    assert order.average_fill_price == D("99.50")
    assert fills(order) == [(D("10"), D("99.50"), D("1.0000"), "TAKER")]
    assert events(order)[-2:] == [("TRIGGER", "TRIGGERED"), ("FILL", "FILLED")]


def test_stop_limit_triggers_then_rests_as_a_limit_when_the_market_moved_past_it(trader, accounts, set_mid):
    # given a buy stop-limit: stop 100.50, limit 100.52, while the ask is 100.01
    set_mid("AAPL", "100.00")
    order = place(
        trader,
        accounts["PAPER-EQ-A"],
        side="BUY",
        order_type="STOP_LIMIT",
        quantity="10",
        stop_price="100.50",
        price="100.52",
        time_in_force="GTC",
    ).order
    assert order.status == "ACCEPTED"
    # when the market gaps up to 101.00 (half spread 0.02: ask 101.02, beyond both stop and limit)
    set_mid("AAPL", "101.00")
    market_tick(advance=False)
    # then it triggers but cannot fill: it rests as a limit at 100.52
    order = fresh(order)
    assert order.status == "TRIGGERED"
    assert order.triggered is True
    assert order.filled_quantity == D("0")
    assert events(order)[-1] == ("TRIGGER", "TRIGGERED")
    assert paper_order(order).status == "OPEN"
    # when the market comes back to 100.40 (ask 100.42 <= 100.52) and ticks
    set_mid("AAPL", "100.40")
    market_tick(advance=False)
    # then the resting limit fills at its limit price as maker
    order = fresh(order)
    assert order.status == "FILLED"
    assert order.average_fill_price == D("100.52")
    assert fills(order) == [(D("10"), D("100.52"), D("1.0000"), "MAKER")]


# --- TRAILING_STOP --------------------------------------------------------------------------------


def test_trailing_stop_sell_by_amount_follows_the_high_and_triggers_on_the_fall(trader, accounts, set_mid):
    # given a sell trailing stop 0.50 below the best bid; the bid is 99.99 -> stop 99.49
    set_mid("AAPL", "100.00")
    order = place(
        trader,
        accounts["PAPER-EQ-A"],
        side="SELL",
        order_type="TRAILING_STOP",
        quantity="10",
        trail_amount="0.50",
        time_in_force="GTC",
    ).order
    assert order.status == "ACCEPTED"
    assert paper_order(order).watermark == D("99.99")
    # when the market rises to 101.00 (bid 100.98)
    set_mid("AAPL", "101.00")
    market_tick(advance=False)
    # then the watermark follows the bid up: the stop is now 100.48
    assert paper_order(order).watermark == D("100.98")
    assert fresh(order).status == "ACCEPTED"
    # when it falls to 100.60 (bid 100.58): down 0.40, less than the trail
    set_mid("AAPL", "100.60")
    market_tick(advance=False)
    # then nothing triggers and the watermark stays at the high
    assert fresh(order).status == "ACCEPTED"
    assert paper_order(order).watermark == D("100.98")
    # when it falls to 100.40 (bid 100.38 <= 100.48)
    set_mid("AAPL", "100.40")
    market_tick(advance=False)
    # then it triggers and sells at the bid
    order = fresh(order)
    assert order.status == "FILLED"
    assert order.average_fill_price == D("100.38")
    assert fills(order) == [(D("10"), D("100.38"), D("1.0000"), "TAKER")]
    assert events(order)[-2:] == [("TRIGGER", "TRIGGERED"), ("FILL", "FILLED")]


def test_trailing_stop_sell_by_percent_follows_the_high_and_triggers_on_the_fall(trader, accounts, set_mid):
    # given a sell trailing stop 1% below the best bid; bid 99.99 -> stop 98.9901 rounded down 98.99
    set_mid("AAPL", "100.00")
    order = place(
        trader,
        accounts["PAPER-EQ-A"],
        side="SELL",
        order_type="TRAILING_STOP",
        quantity="10",
        trail_percent="1",
        time_in_force="GTC",
    ).order
    assert order.status == "ACCEPTED"
    assert paper_order(order).watermark == D("99.99")
    # when the market rises to 110.00 (half spread 0.02: bid 109.98)
    set_mid("AAPL", "110.00")
    market_tick(advance=False)
    # then the watermark follows: stop = 109.98 * 0.99 = 108.8802 -> 108.88
    assert paper_order(order).watermark == D("109.98")
    # when it falls to 109.00 (bid 108.98): down 1.00, less than 1% of 109.98
    set_mid("AAPL", "109.00")
    market_tick(advance=False)
    # then nothing triggers
    assert fresh(order).status == "ACCEPTED"
    assert paper_order(order).watermark == D("109.98")
    # when it falls to 108.80 (bid 108.78 <= 108.88)
    set_mid("AAPL", "108.80")
    market_tick(advance=False)
    # then it triggers and sells at the bid
    order = fresh(order)
    assert order.status == "FILLED"
    assert order.average_fill_price == D("108.78")
    assert fills(order) == [(D("10"), D("108.78"), D("1.0000"), "TAKER")]
    assert events(order)[-2:] == [("TRIGGER", "TRIGGERED"), ("FILL", "FILLED")]


def test_trailing_stop_buy_follows_the_low_and_triggers_on_the_rise(trader, accounts, set_mid):
    # given a buy trailing stop 0.50 above the best ask; ask 100.01 -> stop 100.51
    set_mid("AAPL", "100.00")
    order = place(
        trader,
        accounts["PAPER-EQ-A"],
        side="BUY",
        order_type="TRAILING_STOP",
        quantity="10",
        trail_amount="0.50",
        time_in_force="GTC",
    ).order
    assert order.status == "ACCEPTED"
    assert paper_order(order).watermark == D("100.01")
    # when the market falls to 99.00 (ask 99.01)
    set_mid("AAPL", "99.00")
    market_tick(advance=False)
    # then the watermark follows the ask down: the stop is now 99.51
    assert paper_order(order).watermark == D("99.01")
    assert fresh(order).status == "ACCEPTED"
    # when it rises to 99.40 (ask 99.41): up 0.40, less than the trail
    set_mid("AAPL", "99.40")
    market_tick(advance=False)
    # then nothing triggers and the watermark stays at the low
    assert fresh(order).status == "ACCEPTED"
    assert paper_order(order).watermark == D("99.01")
    # when it rises to 99.60 (ask 99.61 >= 99.51)
    set_mid("AAPL", "99.60")
    market_tick(advance=False)
    # then it triggers and buys at the ask
    order = fresh(order)
    assert order.status == "FILLED"
    assert order.average_fill_price == D("99.61")
    assert fills(order) == [(D("10"), D("99.61"), D("1.0000"), "TAKER")]
    assert events(order)[-2:] == [("TRIGGER", "TRIGGERED"), ("FILL", "FILLED")]
