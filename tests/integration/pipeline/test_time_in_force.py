"""Time in force on the paper venue: IOC, FOK, DAY expiry at the close (equities) and at the UTC date
change (crypto), GTC staying open.

Venue B (PAPER-EQ-B) at AAPL 100.00: bids 99.97 x120, 99.96 x240, 99.95 x360; asks 100.03 x120,
100.04 x240, 100.05 x360; 720 per side in all; no commission.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from brokers.domain.calendar import EQUITY_CLOSE
from orders.models import Fill, Position
from orders.services import market_tick
from tests.integration.pipeline.support import events, fills, fresh, ny, paper_order, place, utc

pytestmark = pytest.mark.django_db

D = Decimal


def test_ioc_larger_than_the_book_fills_what_is_there_and_cancels_the_rest(trader, accounts, set_mid):
    # given AAPL at 100.00 and 720 bid on venue B
    set_mid("AAPL", "100.00")
    # when the trader sells 1000 at market, IOC
    order = place(
        trader, accounts["PAPER-EQ-B"], side="SELL", order_type="MARKET", quantity="1000", time_in_force="IOC"
    ).order
    # then the three bid levels are taken and the 280 left are cancelled at once
    assert order.status == "CANCELLED"
    assert order.filled_quantity == D("720")
    assert "IOC" in order.status_reason
    assert order.cancelled_at is not None
    assert fills(order) == [
        (D("120"), D("99.97"), D("0"), "TAKER"),
        (D("240"), D("99.96"), D("0"), "TAKER"),
        (D("360"), D("99.95"), D("0"), "TAKER"),
    ]
    # (120*99.97 + 240*99.96 + 360*99.95) / 720 = 71968.80 / 720 = 99.9566666... -> 8 places
    assert order.average_fill_price == D("99.95666667")
    assert events(order)[-1] == ("CANCEL", "CANCELLED")
    assert paper_order(order).status == "CANCELLED"
    # and what filled is in the position
    position = Position.objects.get(user=trader, broker=accounts["PAPER-EQ-B"], symbol="AAPL")
    assert position.quantity == D("-720")


def test_ioc_limit_takes_only_the_levels_within_its_limit(trader, accounts, set_mid):
    # given AAPL at 100.00 on venue B
    set_mid("AAPL", "100.00")
    # when the trader buys 500 with a limit of 100.04, IOC (360 offered at or below 100.04)
    order = place(
        trader,
        accounts["PAPER-EQ-B"],
        side="BUY",
        order_type="LIMIT",
        quantity="500",
        price="100.04",
        time_in_force="IOC",
    ).order
    # then 360 fill and the rest is cancelled instead of resting
    assert order.status == "CANCELLED"
    assert order.filled_quantity == D("360")
    assert "IOC" in order.status_reason
    # (120*100.03 + 240*100.04) / 360 = 36012.00 / 360
    assert order.average_fill_price == D("100.03666667")
    assert paper_order(order).status == "CANCELLED"


def test_fok_that_cannot_fill_in_full_does_not_fill_at_all(trader, accounts, set_mid):
    # given 720 bid on venue B
    set_mid("AAPL", "100.00")
    # when the trader sells 800 at market, FOK
    order = place(
        trader, accounts["PAPER-EQ-B"], side="SELL", order_type="MARKET", quantity="800", time_in_force="FOK"
    ).order
    # then nothing fills and the order is cancelled
    assert order.status == "CANCELLED"
    assert order.filled_quantity == D("0")
    assert order.average_fill_price is None
    assert "FOK" in order.status_reason
    assert not Fill.objects.filter(order=order).exists()
    assert not Position.objects.filter(user=trader, symbol="AAPL").exists()
    assert events(order) == [
        ("CREATED", "PENDING"),
        ("SUBMIT", "SUBMITTED"),
        ("ACCEPT", "ACCEPTED"),
        ("CANCEL", "CANCELLED"),
    ]


def test_fok_that_can_fill_fills_in_full(trader, accounts, set_mid):
    # given 120 @ 100.03 and 240 @ 100.04 offered on venue B
    set_mid("AAPL", "100.00")
    # when the trader buys 300 at market, FOK
    order = place(
        trader, accounts["PAPER-EQ-B"], side="BUY", order_type="MARKET", quantity="300", time_in_force="FOK"
    ).order
    # then it fills in full across two levels
    assert order.status == "FILLED"
    assert fills(order) == [
        (D("120"), D("100.03"), D("0"), "TAKER"),
        (D("180"), D("100.04"), D("0"), "TAKER"),
    ]
    # (120*100.03 + 180*100.04) / 300 = 30010.80 / 300
    assert order.average_fill_price == D("100.036")


def test_day_limit_expires_at_the_new_york_close_while_gtc_stays_open(trader, accounts, set_mid):
    # given two resting buy limits below the market on venue A: one DAY, one GTC
    set_mid("AAPL", "100.00")
    account = accounts["PAPER-EQ-A"]
    day = place(trader, account, side="BUY", order_type="LIMIT", quantity="10", price="99.00").order
    gtc = place(
        trader,
        account,
        side="BUY",
        order_type="LIMIT",
        quantity="10",
        price="99.00",
        time_in_force="GTC",
        client_order_id="gtc-on-purpose",  # same symbol/side/qty/price: a new id says it is no duplicate
    ).order
    assert (day.status, gtc.status) == ("ACCEPTED", "ACCEPTED")
    session = paper_order(day).session_date
    assert session.weekday() < 5
    # when the venue ticks one second before the close of that session
    market_tick(now=ny(session, 15, 59, 59), advance=False)
    # then both are still working
    assert fresh(day).status == "ACCEPTED"
    # when the venue ticks at the 16:00 New York close
    close = ny(session, EQUITY_CLOSE.hour, EQUITY_CLOSE.minute)
    market_tick(now=close, advance=False)
    # then the DAY order expired at that moment, and the GTC one is still open
    day = fresh(day)
    assert day.status == "EXPIRED"
    assert day.cancelled_at == close
    assert day.filled_quantity == D("0")
    assert events(day)[-1] == ("EXPIRE", "EXPIRED")
    assert paper_order(day).status == "EXPIRED"
    gtc = fresh(gtc)
    assert gtc.status == "ACCEPTED"
    assert gtc.cancelled_at is None
    assert paper_order(gtc).status == "OPEN"
    # and a later tick after the close changes nothing for either
    market_tick(now=ny(session, 18), advance=False)
    assert (fresh(day).status, fresh(gtc).status) == ("EXPIRED", "ACCEPTED")
    assert events(day) == [
        ("CREATED", "PENDING"),
        ("SUBMIT", "SUBMITTED"),
        ("ACCEPT", "ACCEPTED"),
        ("EXPIRE", "EXPIRED"),
    ]


def test_crypto_day_order_lives_until_the_utc_date_changes(trader, accounts, set_mid):
    # given a resting DAY buy limit on SOL/USD (crypto venue: 8 bps, mid 200.00 -> ask 200.08)
    set_mid("SOL/USD", "200.00")
    order = place(
        trader,
        accounts["PAPER-CRYPTO"],
        symbol="SOL/USD",
        side="BUY",
        order_type="LIMIT",
        quantity="1",
        price="190.00",
    ).order
    assert order.status == "ACCEPTED"
    session = paper_order(order).session_date
    # when the venue ticks at 23:59:59 UTC that day: long after the New York equity close
    market_tick(now=utc(session, 23, 59, 59), advance=False)
    # then the order is still working: crypto days are UTC dates
    assert fresh(order).status == "ACCEPTED"
    # when the UTC date changes
    midnight = utc(session + dt.timedelta(days=1), 0)
    market_tick(now=midnight, advance=False)
    # then it expires
    order = fresh(order)
    assert order.status == "EXPIRED"
    assert order.cancelled_at == midnight
    assert paper_order(order).status == "EXPIRED"
