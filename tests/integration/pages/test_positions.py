"""The positions page (``/positions/``): per symbol and per broker, close and reduce."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.test import Client

from orders.models import Order, Position
from orders.services import market_tick
from risk.models import RiskProfile
from risk.services import Authority, trading_state_set

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


def toast(response) -> dict:
    return json.loads(response.headers["HX-Trigger"])["tm-toast"]


@pytest.fixture
def book(trader, accounts, fill, set_mid):
    """AAPL long at two equity venues (10 at A, 4 at B), MSFT short 3 at B; marked at new mids."""
    fill(trader, accounts["PAPER-EQ-A"], symbol="AAPL", quantity="10")
    fill(trader, accounts["PAPER-EQ-B"], symbol="AAPL", quantity="4")
    fill(trader, accounts["PAPER-EQ-B"], symbol="MSFT", side="SELL", quantity="3")
    set_mid("AAPL", "105.00")
    set_mid("MSFT", "390.00")
    market_tick(advance=False)
    return {(p.symbol, p.broker_id): p for p in Position.objects.filter(user=trader)}


def test_positions_per_symbol_and_per_broker(client, accounts, book, dom):
    page = dom(client.get("/positions/"))
    by_symbol = page.by_id("positions-by-symbol")
    aapl = by_symbol.find("tr", data_symbol="AAPL")
    legs = [book[("AAPL", accounts["PAPER-EQ-A"].pk)], book[("AAPL", accounts["PAPER-EQ-B"].pk)]]
    assert aapl.find(class_="p-qty").text == "14"
    assert Decimal(aapl.find(class_="p-value").attrs["data-value"]) == sum(p.market_value for p in legs)
    assert Decimal(aapl.find(class_="p-unrealized").attrs["data-value"]) == sum(
        p.unrealized_pnl for p in legs
    )
    assert Decimal(aapl.find(class_="p-realized").attrs["data-value"]) == 0
    assert by_symbol.find("tr", data_symbol="MSFT").find(class_="p-qty").text == "-3"

    by_broker = page.by_id("positions-by-broker")
    for (symbol, broker_id), position in book.items():
        row = by_broker.find("tr", data_symbol=symbol, data_broker=str(broker_id))
        assert Decimal(row.find(class_="p-qty").attrs["data-value"]) == position.quantity
        assert Decimal(row.find(class_="p-avg").attrs["data-value"]) == position.average_cost
        assert Decimal(row.find(class_="p-value").attrs["data-value"]) == position.market_value
        assert Decimal(row.find(class_="p-unrealized").attrs["data-value"]) == position.unrealized_pnl
        assert row.find(class_="p-realized") is not None
        label = str(position.broker)
        close = row.find("button", aria_label=f"Close {symbol} at {label}")
        assert close.text == "Close" and "neon" in close.classes
        assert row.find("button", aria_label=f"Reduce {symbol} at {label}").text == "Reduce"


def test_tables_refetch_live_unless_a_row_is_confirming(client, book, dom):
    tables = dom(client.get("/ui/positions/", headers=HTMX)).by_id("positions-tables")
    trigger = tables.attrs["hx-trigger"]
    assert "tm-positions[" in trigger and "tm-fills[" in trigger and "from:body" in trigger
    assert "tr.confirming" in trigger


def test_close_asks_first_then_sells_the_whole_long(client, trader, accounts, book, dom):
    account = accounts["PAPER-EQ-A"]
    asking = client.get(f"/ui/positions/confirm/?action=close&symbol=AAPL&broker={account.pk}", headers=HTMX)
    row = dom(asking).find("tr", data_symbol="AAPL", data_broker=str(account.pk))
    assert "confirming" in row.classes
    assert "Sell 10 AAPL at market?" in row.text
    assert row.find("button", type="submit").text == "Confirm close"
    assert not Order.objects.filter(side="SELL", symbol="AAPL").exists()  # asking places nothing

    response = client.post(
        "/ui/positions/close/", {"action": "close", "symbol": "AAPL", "broker": account.pk}, headers=HTMX
    )
    order = Order.objects.get(side="SELL", symbol="AAPL")
    assert (order.order_type, order.quantity, order.broker_id) == ("MARKET", Decimal(10), account.pk)
    assert order.status == "FILLED"
    assert Position.objects.get(user=trader, symbol="AAPL", broker=account).quantity == 0
    assert response.headers["HX-Retarget"] == "#positions-tables"
    assert response.headers["HX-Reswap"] == "outerHTML"
    page = dom(response)
    assert (
        page.by_id("positions-by-broker").find("tr", data_symbol="AAPL", data_broker=str(account.pk)) is None
    )
    result = page.by_id("position-result")
    assert f"order {order.pk} FILLED" in result.text
    assert result.attrs["hx-swap-oob"] == "true"  # outside the live tables: the next refresh keeps it
    assert dom(client.get("/positions/")).by_id("position-result").attrs.get("hidden") == ""
    assert toast(response)["kind"] == "info"


def test_close_buys_back_a_short(client, accounts, book):
    account = accounts["PAPER-EQ-B"]
    client.post(
        "/ui/positions/close/", {"action": "close", "symbol": "MSFT", "broker": account.pk}, headers=HTMX
    )
    order = Order.objects.get(symbol="MSFT", side="BUY")
    assert (order.quantity, order.order_type, order.broker_id) == (Decimal(3), "MARKET", account.pk)


def test_reduce_sells_the_amount_asked(client, trader, accounts, book, dom):
    account = accounts["PAPER-EQ-A"]
    asking = dom(client.get(f"/ui/positions/confirm/?action=reduce&symbol=AAPL&broker={account.pk}"))
    quantity = asking.find("input", name="quantity")
    assert asking.find("label").attrs["for"] == quantity.attrs["id"]
    assert asking.find("label").text == "Reduce by"
    assert asking.find("button", type="submit").text == "Confirm reduce"

    client.post(
        "/ui/positions/close/",
        {"action": "reduce", "symbol": "AAPL", "broker": account.pk, "quantity": "4"},
        headers=HTMX,
    )
    order = Order.objects.get(side="SELL", symbol="AAPL")
    assert (order.quantity, order.order_type, order.broker_id) == (Decimal(4), "MARKET", account.pk)
    assert Position.objects.get(user=trader, symbol="AAPL", broker=account).quantity == 6


@pytest.mark.parametrize(
    ("quantity", "message"),
    [
        ("0", "Must be more than zero."),
        ("-2", "Must be more than zero."),
        ("11", "Must be at most the position, 10."),
        ("abc", "Enter a number."),
        ("", "Enter the quantity to reduce by."),
    ],
)
def test_reduce_refuses_bad_quantities_with_a_field_error(client, accounts, book, quantity, message, dom):
    account = accounts["PAPER-EQ-A"]
    response = client.post(
        "/ui/positions/close/",
        {"action": "reduce", "symbol": "AAPL", "broker": account.pk, "quantity": quantity},
        headers=HTMX,
    )
    assert "HX-Retarget" not in response.headers  # the confirming row stays, with the error
    row = dom(response).find("tr", data_symbol="AAPL", data_broker=str(account.pk))
    assert "confirming" in row.classes
    assert row.by_id("error-quantity").text == message
    field = row.find("input", name="quantity")
    assert field.attrs["aria-invalid"] == "true"
    assert field.attrs["value"] == quantity
    assert not Order.objects.filter(side="SELL", symbol="AAPL").exists()


def test_close_all_closes_every_leg_of_a_symbol(client, trader, accounts, book, dom):
    asking = dom(client.get("/ui/positions/confirm/?action=close-all&symbol=AAPL"))
    assert asking.find("tr", data_symbol="AAPL").find("button", type="submit").text == "Confirm close"
    response = client.post("/ui/positions/close-all/", {"symbol": "AAPL"}, headers=HTMX)
    orders = Order.objects.filter(symbol="AAPL", side="SELL").order_by("broker_id")
    assert [(o.broker_id, o.quantity) for o in orders] == [
        (accounts["PAPER-EQ-A"].pk, Decimal(10)),
        (accounts["PAPER-EQ-B"].pk, Decimal(4)),
    ]
    assert not Position.objects.filter(user=trader, symbol="AAPL").exclude(quantity=0).exists()
    assert dom(response).by_id("positions-by-symbol").find("tr", data_symbol="AAPL") is None


def test_a_halted_trader_sees_the_risk_reason(client, trader, accounts, book, dom):
    trading_state_set(user=trader, state="HALTED", actor_label="me", authority=Authority.SELF)
    account = accounts["PAPER-EQ-A"]
    response = client.post(
        "/ui/positions/close/", {"action": "close", "symbol": "AAPL", "broker": account.pk}, headers=HTMX
    )
    order = Order.objects.get(side="SELL", symbol="AAPL")
    assert order.status == "REJECTED"
    result = dom(response).by_id("position-result")
    assert result.attrs["role"] == "alert"
    assert order.status_reason and order.status_reason in result.text
    assert toast(response)["kind"] == "bad"
    assert Position.objects.get(user=trader, symbol="AAPL", broker=account).quantity == 10


def test_reducing_state_allows_closing(client, trader, accounts, book):
    trading_state_set(user=trader, state="REDUCING", actor_label="me", authority=Authority.SELF)
    assert RiskProfile.objects.get(user=trader).trading_state == "REDUCING"
    account = accounts["PAPER-EQ-A"]
    client.post(
        "/ui/positions/close/",
        {"action": "reduce", "symbol": "AAPL", "broker": account.pk, "quantity": "2"},
        headers=HTMX,
    )
    order = Order.objects.get(side="SELL", symbol="AAPL")
    assert order.status == "FILLED", order.status_reason
    assert Position.objects.get(user=trader, symbol="AAPL", broker=account).quantity == 8


def test_someone_elses_or_a_missing_position_is_not_found(client, other_trader, accounts, book, fill, dom):
    theirs = other_trader.broker_accounts.get(account_id="PAPER-EQ-A")
    fill(other_trader, theirs, symbol="AAPL", quantity="7")
    attempts = [
        {"action": "close", "symbol": "AAPL", "broker": theirs.pk},  # their account
        {"action": "close", "symbol": "TSLA", "broker": accounts["PAPER-EQ-A"].pk},  # no such position
        {"action": "close", "symbol": "AAPL", "broker": "x"},
    ]
    for data in attempts:
        result = dom(client.post("/ui/positions/close/", data, headers=HTMX)).by_id("position-result")
        assert result.attrs["role"] == "alert"
        assert "There is no open" in result.text
    asking = client.get(f"/ui/positions/confirm/?action=reduce&symbol=AAPL&broker={theirs.pk}")
    assert "There is no open AAPL position" in dom(asking).by_id("position-result").text
    assert not Order.objects.filter(side="SELL", symbol__in=["AAPL", "TSLA"]).exists()
    assert Position.objects.get(user=other_trader, symbol="AAPL").quantity == 7


@pytest.mark.parametrize(
    "url",
    ["/positions/", "/ui/positions/", "/ui/positions/confirm/?action=close&symbol=AAPL&broker=1"],
)
def test_anonymous_get_redirects_to_login(trader, url):
    response = Client().get(url)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize("url", ["/ui/positions/close/", "/ui/positions/close-all/"])
def test_anonymous_post_redirects_to_login(trader, url):
    response = Client().post(url, {"symbol": "AAPL", "broker": "1", "action": "close"})
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next=")
    assert not Order.objects.exists()
