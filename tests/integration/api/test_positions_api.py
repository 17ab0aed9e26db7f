"""Positions per broker and netted per symbol, fills, and quotes through the API."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orders.models import Fill
from orders.services import market_tick
from tests.integration.api.conftest import PAPER_ORDER_ID, is_timestamp

pytestmark = pytest.mark.django_db

POSITIONS = "/api/v1/positions/"
AGGREGATE = "/api/v1/positions/aggregate/"
FILLS = "/api/v1/fills/"
QUOTES = "/api/v1/quotes/"


def without_volatile(row: dict) -> dict:
    row = dict(row)
    assert isinstance(row.pop("id"), int)
    assert is_timestamp(row.pop("updated_at"))
    return row


@pytest.fixture
def two_venues(api, accounts, set_mid, place) -> dict[str, int]:
    """10 AAPL bought at venue A (ask 100.01, $1 minimum fee) and 20 at venue B (ask 100.03, no fee)."""
    set_mid("AAPL", "100.00")
    a, b = accounts["PAPER-EQ-A"].pk, accounts["PAPER-EQ-B"].pk
    for broker_id, quantity in ((a, "10"), (b, "20")):
        order = place(
            api, symbol="AAPL", side="BUY", order_type="MARKET", quantity=quantity, broker_id=broker_id
        )
        assert order["status"] == "FILLED"
    return {"A": a, "B": b}


def leg(broker_id, quantity, average_cost, market_value, unrealized="0.00000000", realized="0.00000000"):
    return {
        "broker_id": broker_id,
        "quantity": quantity,
        "average_cost": average_cost,
        "market_value": market_value,
        "unrealized_pnl": unrealized,
        "realized_pnl": realized,
    }


def test_positions_list_one_row_per_broker(api, two_venues):
    # when the trader lists positions
    response = api.get(POSITIONS)
    # then there is one AAPL row per venue, each at its own fill price and fees
    assert response.status_code == 200
    assert response.json()["count"] == 2
    assert [without_volatile(row) for row in response.json()["results"]] == [
        {
            "broker_id": two_venues["A"],
            "symbol": "AAPL",
            "asset_class": "EQUITY",
            "quantity": "10.00000000",
            "average_cost": "100.01000000",
            "market_price": "100.01000000",
            "market_value": "1000.10000000",
            "unrealized_pnl": "0.00000000",
            "realized_pnl": "0.00000000",
            "total_fees": "1.00000000",
        },
        {
            "broker_id": two_venues["B"],
            "symbol": "AAPL",
            "asset_class": "EQUITY",
            "quantity": "20.00000000",
            "average_cost": "100.03000000",
            "market_price": "100.03000000",
            "market_value": "2000.60000000",
            "unrealized_pnl": "0.00000000",
            "realized_pnl": "0.00000000",
            "total_fees": "0.00000000",
        },
    ]
    # and the list filters by broker and symbol
    only_b = api.get(POSITIONS, {"broker_id": two_venues["B"]}).json()["results"]
    assert [(row["broker_id"], row["quantity"]) for row in only_b] == [(two_venues["B"], "20.00000000")]
    assert api.get(POSITIONS, {"symbol": "MSFT"}).json()["count"] == 0


def test_aggregate_nets_the_symbol_across_brokers(api, two_venues):
    # when the trader asks for the aggregate
    response = api.get(AGGREGATE)
    # then AAPL is one row: 30 shares at (10 * 100.01 + 20 * 100.03) / 30, with a leg per venue
    assert response.status_code == 200
    assert response.json() == [
        {
            "symbol": "AAPL",
            "quantity": "30.00000000",
            "average_cost": "100.02333333",
            "market_value": "3000.70000000",
            "unrealized_pnl": "0.00000000",
            "realized_pnl": "0.00000000",
            "legs": [
                leg(two_venues["A"], "10.00000000", "100.01000000", "1000.10000000"),
                leg(two_venues["B"], "20.00000000", "100.03000000", "2000.60000000"),
            ],
        }
    ]


def test_aggregate_after_the_market_marks_positions(api, two_venues):
    # given the venues tick without moving the mid (100.00): positions are marked to it
    market_tick(advance=False)
    # when the trader asks for the aggregate
    row = api.get(AGGREGATE).json()[0]
    # then values and unrealized P&L are at 100.00
    assert (row["market_value"], row["unrealized_pnl"]) == ("3000.00000000", "-0.70000000")
    assert row["legs"] == [
        leg(two_venues["A"], "10.00000000", "100.01000000", "1000.00000000", unrealized="-0.10000000"),
        leg(two_venues["B"], "20.00000000", "100.03000000", "2000.00000000", unrealized="-0.60000000"),
    ]


def test_closed_positions_are_hidden_unless_include_flat(api, two_venues, place):
    # given the position at venue A sold out at the bid 99.99 (realizing (99.99 - 100.01) * 10)
    sold = place(
        api, symbol="AAPL", side="SELL", order_type="MARKET", quantity="10", broker_id=two_venues["A"]
    )
    assert (sold["status"], sold["average_fill_price"]) == ("FILLED", "99.99000000")
    # when the trader lists positions
    default = api.get(POSITIONS).json()["results"]
    flat_too = api.get(POSITIONS, {"include_flat": "true"}).json()["results"]
    # then the flat one is left out by default and listed on request
    assert [(row["broker_id"], row["quantity"]) for row in default] == [(two_venues["B"], "20.00000000")]
    assert without_volatile(flat_too[0]) == {
        "broker_id": two_venues["A"],
        "symbol": "AAPL",
        "asset_class": "EQUITY",
        "quantity": "0.00000000",
        "average_cost": "0.00000000",
        "market_price": "99.99000000",
        "market_value": "0.00000000",
        "unrealized_pnl": "0.00000000",
        "realized_pnl": "-0.20000000",
        "total_fees": "2.00000000",
    }
    assert len(flat_too) == 2
    # and the aggregate does the same with its legs
    assert api.get(AGGREGATE).json() == [
        {
            "symbol": "AAPL",
            "quantity": "20.00000000",
            "average_cost": "100.03000000",
            "market_value": "2000.60000000",
            "unrealized_pnl": "0.00000000",
            "realized_pnl": "0.00000000",
            "legs": [leg(two_venues["B"], "20.00000000", "100.03000000", "2000.60000000")],
        }
    ]
    assert api.get(AGGREGATE, {"include_flat": "true"}).json() == [
        {
            "symbol": "AAPL",
            "quantity": "20.00000000",
            "average_cost": "100.03000000",
            "market_value": "2000.60000000",
            "unrealized_pnl": "0.00000000",
            "realized_pnl": "-0.20000000",
            "legs": [
                leg(two_venues["A"], "0.00000000", "0.00000000", "0.00000000", realized="-0.20000000"),
                leg(two_venues["B"], "20.00000000", "100.03000000", "2000.60000000"),
            ],
        }
    ]


def test_a_fully_closed_symbol_appears_only_with_include_flat(api, accounts, set_mid, place):
    # given MSFT bought and sold out at venue B (bid 199.94, ask 200.06)
    set_mid("MSFT", "200.00")
    b = accounts["PAPER-EQ-B"].pk
    place(api, symbol="MSFT", side="BUY", order_type="MARKET", quantity="5", broker_id=b)
    place(api, symbol="MSFT", side="SELL", order_type="MARKET", quantity="5", broker_id=b)
    # then it is gone from the default views and flat in the include_flat ones
    assert api.get(AGGREGATE).json() == []
    assert api.get(POSITIONS).json()["count"] == 0
    assert api.get(AGGREGATE, {"include_flat": "1"}).json() == [
        {
            "symbol": "MSFT",
            "quantity": "0.00000000",
            "average_cost": "0.00000000",
            "market_value": "0.00000000",
            "unrealized_pnl": "0.00000000",
            "realized_pnl": "-0.60000000",
            "legs": [leg(b, "0.00000000", "0.00000000", "0.00000000", realized="-0.60000000")],
        }
    ]


# --- fills ----------------------------------------------------------------------------------------


def test_fills_filter_by_order(api, accounts, set_mid, place):
    # given a 300-share buy at venue A that takes two levels (200 at 100.01, 100 at 100.02)
    set_mid("AAPL", "100.00")
    a = accounts["PAPER-EQ-A"].pk
    sweep = place(api, symbol="AAPL", side="BUY", order_type="MARKET", quantity="300", broker_id=a)
    other = place(api, symbol="AAPL", side="BUY", order_type="MARKET", quantity="1", broker_id=a)
    assert (sweep["average_fill_price"], sweep["commission"]) == ("100.01333333", "2.0000")
    # when the trader lists the fills of the first order
    response = api.get(FILLS, {"order_id": sweep["id"]})
    # then exactly its two fills come back, newest first, with the venue's ids and fees
    assert response.status_code == 200
    rows = response.json()["results"]
    venue_id = sweep["broker_order_id"]
    assert PAPER_ORDER_ID.fullmatch(venue_id)
    for row in rows:
        assert isinstance(row.pop("id"), int)
        assert is_timestamp(row.pop("executed_at"))
    common = {"order_id": sweep["id"], "broker_id": a, "symbol": "AAPL", "side": "BUY", "liquidity": "TAKER"}
    assert rows == [
        {
            **common,
            "broker_fill_id": f"{venue_id}-2",
            "quantity": "100.00000000",
            "price": "100.02000000",
            "fee": "1.0000",
        },
        {
            **common,
            "broker_fill_id": f"{venue_id}-1",
            "quantity": "200.00000000",
            "price": "100.01000000",
            "fee": "1.0000",
        },
    ]
    # and the unfiltered list has all three, the other order's too
    everything = api.get(FILLS).json()
    assert everything["count"] == 3
    assert {row["order_id"] for row in everything["results"]} == {sweep["id"], other["id"]}
    assert Fill.objects.filter(order_id=sweep["id"]).count() == 2


def test_fills_filter_by_symbol_and_broker(api, two_venues):
    assert api.get(FILLS, {"symbol": "AAPL"}).json()["count"] == 2
    assert api.get(FILLS, {"symbol": "MSFT"}).json()["count"] == 0
    only_b = api.get(FILLS, {"broker_id": two_venues["B"]}).json()["results"]
    assert [(row["broker_id"], row["quantity"], row["price"]) for row in only_b] == [
        (two_venues["B"], "20.00000000", "100.03000000")
    ]


# --- quotes ---------------------------------------------------------------------------------------


def test_quotes_per_equity_account(api, accounts, set_mid):
    # given AAPL at 100.00
    set_mid("AAPL", "100.00")
    # when the trader asks for quotes
    response = api.get(QUOTES, {"symbol": "AAPL"})
    # then each equity account quotes it: venue A 2 bps wide, venue B 6 bps with 0.6x the size
    assert response.status_code == 200
    quotes = response.json()
    for quote in quotes:
        assert is_timestamp(quote.pop("at"))
    assert quotes == [
        {
            "broker_id": accounts["PAPER-EQ-A"].pk,
            "broker": "Paper Equities A (tight spread, per-share fee)",
            "symbol": "AAPL",
            "bid": "99.99000000",
            "ask": "100.01000000",
            "bid_size": "200.00000000",
            "ask_size": "200.00000000",
            "last": "100.00000000",
        },
        {
            "broker_id": accounts["PAPER-EQ-B"].pk,
            "broker": "Paper Equities B (wider spread, no commission)",
            "symbol": "AAPL",
            "bid": "99.97000000",
            "ask": "100.03000000",
            "bid_size": "120.00000000",
            "ask_size": "120.00000000",
            "last": "100.00000000",
        },
    ]
    spreads = [Decimal(q["ask"]) - Decimal(q["bid"]) for q in quotes]
    assert all(Decimal(q["bid"]) < Decimal(q["ask"]) for q in quotes)
    assert spreads[1] > spreads[0]


def test_quotes_for_crypto_come_from_the_crypto_account(api, accounts, set_mid):
    set_mid("BTC/USD", "50000.00")
    quotes = api.get(QUOTES, {"symbol": "BTC/USD"}).json()
    assert [(q["broker_id"], q["bid"], q["ask"], q["bid_size"]) for q in quotes] == [
        (accounts["PAPER-CRYPTO"].pk, "49980.00000000", "50020.00000000", "0.50000000")
    ]


@pytest.mark.parametrize("symbol", ["aapl", "123", "BTC-USD", "", "AAPL;DROP"])
def test_quotes_for_a_bad_symbol_is_400(api, accounts, symbol):
    response = api.get(QUOTES, {"symbol": symbol})
    assert response.status_code == 400
    assert response.json() == {
        "code": "validation_error",
        "message": "The request has invalid fields.",
        "fields": {"symbol": ["Unknown symbol format."]},
    }


def test_quotes_without_symbol_is_400(api, accounts):
    response = api.get(QUOTES)
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["symbol"]


def test_quotes_for_an_unlisted_symbol_is_404(api, accounts):
    response = api.get(QUOTES, {"symbol": "ZZZZ"})
    assert response.status_code == 404
    assert response.json() == {"code": "no_quote", "message": "None of your broker accounts quotes ZZZZ."}
