"""The risk book in the database stays in step with positions and orders through every service,
and a pre-trade check reads the order's symbol only, whatever the size of the book."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from brokers.domain.adapter import OrderChange
from orders.services import (
    Actor,
    kill_switch_engage,
    market_tick,
    order_cancel,
    order_place,
    order_replace,
    positions_revalue,
)
from risk.book import risk_book_totals, risk_book_verify
from risk.models import RiskBook, RiskBookLeg
from tests.builders import order_request

pytestmark = pytest.mark.django_db


def place(user, account, **kw):
    return order_place(
        user=user, request=order_request(**kw), actor=Actor.for_user(user), broker_id=account.pk
    ).order


def in_step(user) -> bool:
    return risk_book_verify(user_id=user.pk)


def test_the_book_follows_every_service_that_changes_positions_or_orders(trader, accounts, set_mid):
    eq_a, eq_b, crypto = accounts["PAPER-EQ-A"], accounts["PAPER-EQ-B"], accounts["PAPER-CRYPTO"]
    actor = Actor.for_user(trader)
    set_mid("AAPL", "100.00")
    set_mid("BTC/USD", "50000.00")
    # a resting limit order, a filled market order, at two equity venues and the crypto venue
    resting = place(trader, eq_a, order_type="LIMIT", price="90.00", quantity="10", time_in_force="GTC")
    assert resting.status == "ACCEPTED" and in_step(trader)
    assert place(trader, eq_b, quantity="7").status == "FILLED" and in_step(trader)
    assert place(trader, crypto, symbol="BTC/USD", quantity="0.5").status == "FILLED" and in_step(trader)
    totals = risk_book_totals(user_id=trader.pk)
    assert totals.open_orders == 1
    assert totals.broker_reserved == {eq_a.pk: D("900.00000000")}
    # modified, re-marked, then filled by the market moving through it
    order_replace(user=trader, order_id=resting.pk, change=OrderChange(quantity=D("12")), actor=actor)
    assert in_step(trader)
    assert risk_book_totals(user_id=trader.pk).broker_reserved == {eq_a.pk: D("1080.00000000")}
    positions_revalue(mids={"AAPL": D("95.00"), "BTC/USD": D("48000.00")})
    assert in_step(trader)
    set_mid("AAPL", "89.00")
    market_tick(advance=False)
    assert in_step(trader)
    book = risk_book_totals(user_id=trader.pk)
    assert book.open_orders == 0 and book.broker_reserved == {}
    # a cancelled order leaves the book; the kill switch flattens it
    other = place(trader, eq_a, order_type="LIMIT", price="80.00", quantity="3", time_in_force="GTC")
    order_cancel(user=trader, order_id=other.pk, actor=actor)
    assert in_step(trader)
    kill_switch_engage(user=trader, actor=actor, liquidate=True)
    assert in_step(trader)
    assert risk_book_totals(user_id=trader.pk).gross == 0


def test_a_book_written_around_the_services_is_found_and_rebuilt(trader, accounts, set_mid):
    set_mid("AAPL", "100.00")
    place(trader, accounts["PAPER-EQ-A"], quantity="5")
    assert in_step(trader)
    RiskBook.objects.filter(user=trader).update(gross=D("1"))
    RiskBookLeg.objects.filter(user=trader).delete()
    assert risk_book_verify(user_id=trader.pk) is False
    assert in_step(trader)
    assert risk_book_totals(user_id=trader.pk).gross > 400


def test_a_user_without_a_book_gets_one_built_on_the_first_check(trader, accounts, set_mid):
    set_mid("AAPL", "100.00")
    place(trader, accounts["PAPER-EQ-A"], quantity="5")
    RiskBook.objects.filter(user=trader).delete()
    RiskBookLeg.objects.filter(user=trader).delete()
    # the order being decided is not counted twice when the book is built during its check
    order = place(trader, accounts["PAPER-EQ-A"], order_type="LIMIT", price="90.00", quantity="5")
    assert order.status == "ACCEPTED"
    assert in_step(trader)
    assert risk_book_totals(user_id=trader.pk).open_orders == 1


def test_the_check_costs_the_same_statements_with_a_large_book(trader, accounts, set_mid):
    account = accounts["PAPER-EQ-A"]
    symbols = ["MSFT", "NVDA", "TSLA", "AMZN", "GOOGL", "META", "SPY", "BRK.B"]
    for symbol in ["AAPL", *symbols]:
        set_mid(symbol, "100.00")

    def statements_for_one_order(n: int) -> int:
        """The SQL of one placement; it may read positions of the order's symbol only."""
        with CaptureQueriesContext(connection) as queries:
            place(
                trader,
                account,
                order_type="LIMIT",
                price="1.00",
                quantity="1",
                time_in_force="GTC",
                client_order_id=f"probe-{n}",
            )
        for query in queries.captured_queries:
            if 'FROM "positions"' in query["sql"]:
                assert '"positions"."symbol"' in query["sql"], query["sql"]
        return len(queries.captured_queries)

    statements_for_one_order(0)  # the first order builds the book and marks the day
    small = statements_for_one_order(1)
    for symbol in symbols:  # positions and resting orders in eight other symbols
        place(trader, account, symbol=symbol, quantity="2")
        for i in range(3):
            place(
                trader,
                account,
                symbol=symbol,
                order_type="LIMIT",
                price="50.00",
                quantity=str(i + 1),
                time_in_force="GTC",
            )
    large = statements_for_one_order(2)
    assert large == small
    assert in_step(trader)


def test_a_market_order_in_flight_is_valued_at_what_its_check_reserved(trader, accounts):
    """A MARKET buy between its check and its fill has no price of its own; valued at zero, a
    second order checked meanwhile would not see its exposure (two concurrent orders breached a
    gross limit in the agent bench). It is valued at its reservation per unit instead."""
    from orders.models import Order
    from risk.book import source_legs
    from risk.models import Reservation

    account = accounts["PAPER-EQ-A"]
    order = Order.objects.create(
        user=trader,
        broker=account,
        client_order_id="TM-in-flight",
        symbol="MSFT",
        asset_class="EQUITY",
        order_type="MARKET",
        side="BUY",
        quantity=D("10"),
        status="SUBMITTED",
    )
    Reservation.objects.create(order=order, account=account, amount=D("4040.00"))
    [leg] = source_legs(trader.pk, ["MSFT"])
    assert (leg.open_buy, leg.order_price, leg.reserved) == (D("10"), D("404.00"), D("4040.00"))
