"""Order entry on /trade/: the live dry run, the quote, field errors, confirmation and placement.

Real database, real pipeline (paper venues); the trader has the three paper accounts and AAPL
at 100.00 (``tests/integration/pages/conftest.py``).
"""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest

from orders.models import Order, OrderEvent
from risk.models import RiskProfile
from routing.models import AlgoOrder

TRADE = "/trade/"
PREVIEW = "/ui/trade/preview/"
QUOTE = "/ui/trade/quote/"
HX = {"HTTP_HX_REQUEST": "true"}


def order(**fields) -> dict[str, str]:
    data = {
        "symbol": "AAPL",
        "side": "BUY",
        "order_type": "LIMIT",
        "quantity": "10",
        "price": "99.00",
        "stop_price": "",
        "trail_amount": "",
        "trail_percent": "",
        "time_in_force": "DAY",
        "broker": "",
        "algo": "",
        "duration_minutes": "",
        "slices": "",
        "max_participation": "",
    }
    data.update(fields)
    return data


def html(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def text(fragment: str) -> str:
    """The text a reader sees: tags dropped, whitespace collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", fragment)).strip()


def risk_of(page: str) -> str:
    match = re.search(r'id="order-preview"[^>]*data-risk="(\w+)"', page, re.S)
    assert match, page
    return match.group(1)


def reasons_of(page: str) -> list[str]:
    block = re.search(r'<ul id="risk-reasons"[^>]*>(.*?)</ul>', page, re.S)
    assert block, page
    return [re.sub(r"\s+", " ", r).strip() for r in re.findall(r"<li>(.*?)</li>", block.group(1), re.S)]


def limits(trader, **values) -> None:
    RiskProfile.objects.update_or_create(user=trader, defaults=values)


# --- the page -----------------------------------------------------------------------------------


def test_trade_page_requires_login(anon, db):
    for url in (TRADE, "/orders/new/", QUOTE + "?symbol=AAPL"):
        response = anon.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")
    response = anon.post(PREVIEW, order())
    assert response.status_code == 302
    assert not Order.objects.exists()


def test_trade_page_has_the_form_with_labelled_fields_and_the_tracker(client, accounts):
    page = html(client.get(TRADE))
    assert '<form id="order-form"' in page
    labels = {
        "symbol": "Symbol",
        "side": "Side",
        "order_type": "Order type",
        "quantity": "Quantity",
        "price": "Limit price",
        "stop_price": "Stop price",
        "trail_amount": "Trail amount",
        "trail_percent": "Trail %",
        "time_in_force": "Time in force",
        "broker": "Broker",
        "algo": "Algo",
        "duration_minutes": "Duration (minutes)",
        "slices": "Slices",
        "max_participation": "Max participation %",
    }
    for name, label in labels.items():
        assert f'<label for="id_{name}">{label}</label>' in page, name
        assert f'name="{name}"' in page
    # fields shown per type and per algo
    assert 'data-show-when="order_type=LIMIT,STOP_LIMIT"' in page
    assert 'data-show-when="order_type=STOP,STOP_LIMIT"' in page
    assert page.count('data-show-when="order_type=TRAILING_STOP"') >= 2
    assert 'data-show-when="algo=VWAP"' in page
    # auto-route by default, or one of the accounts with its broker and status
    assert '<option value="" selected>Auto-route</option>' in page
    assert f'<option value="{accounts["PAPER-EQ-A"].pk}">{accounts["PAPER-EQ-A"].label} · Paper' in page
    # known symbols, decimals typed as text with a decimal keyboard, the hooks
    assert '<datalist id="symbol-list">' in page and '<option value="AAPL">' in page
    assert 'inputmode="decimal"' in page
    for hook in (
        'id="quote"',
        'id="order-preview"',
        'data-risk="none"',
        'id="risk-reasons"',
        'id="place-order"',
    ):
        assert hook in page, hook
    assert 'id="tracker-panel"' in page
    # the old address is the same view
    assert 'id="order-form"' in html(client.get("/orders/new/"))


# --- the live dry run ---------------------------------------------------------------------------


def test_preview_green_shows_the_route_and_the_figures(client, accounts):
    page = html(client.post(PREVIEW, order(broker=str(accounts["PAPER-EQ-B"].pk))))
    assert risk_of(page) == "green"
    assert '<span class="badge risk-green">OK</span>' in page
    assert f"Route: {accounts['PAPER-EQ-B'].label}" in page
    assert "named by the client" in page  # the why
    assert 'data-value="990">990.00<' in page  # 10 x 99.00
    assert reasons_of(page) == ["Within every limit."]


def test_preview_auto_route_says_why_and_compares_venues(client, accounts):
    page = html(client.post(PREVIEW, order(order_type="MARKET", price="")))
    assert risk_of(page) == "green"
    route = re.search(r'<div id="route"[^>]*>(.*?)</div>\s*</div>', page, re.S).group(1)
    assert re.search(r"Route: Paper Equities [AB]", route)
    assert "Why:" in route
    assert "Venues compared" in route
    assert "skipped: does not trade EQUITY" in route  # the crypto account


def test_preview_yellow_near_a_limit_lists_the_caution(client, trader):
    limits(trader, max_order_notional=Decimal("1000"))
    page = html(client.post(PREVIEW, order()))  # 990 of 1,000
    assert risk_of(page) == "yellow"
    assert '<span class="badge risk-yellow">Caution</span>' in page
    assert reasons_of(page) == ["Order notional 990.00 is 99% of its 1,000.00 limit."]


def test_preview_yellow_for_a_large_order_says_it_needs_a_confirmation(client, trader):
    page = html(client.post(PREVIEW, order(quantity="600", price="100.00", broker="")))
    assert risk_of(page) == "yellow"
    assert (
        "Large order: 60,000.00 notional is at or above the 50,000.00 confirmation threshold."
        in reasons_of(page)
    )


def test_preview_red_lists_each_failed_rule(client, trader):
    limits(trader, max_order_notional=Decimal("500"), restricted_symbols=["AAPL"])
    page = html(client.post(PREVIEW, order()))
    assert risk_of(page) == "red"
    assert '<span class="badge risk-red">Blocked</span>' in page
    reasons = reasons_of(page)
    assert reasons == [
        "AAPL is on the restricted list (RESTRICTED_SYMBOL).",
        next(r for r in reasons if "(MAX_ORDER_NOTIONAL)" in r),
    ]
    assert not Order.objects.exists()


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"symbol": "", "quantity": ""},
            ["Enter a symbol and a quantity to see the risk check and the route."],
        ),
        ({"quantity": "lots"}, ["Quantity: Enter a number."]),
        ({"price": ""}, ["Limit price: Required for LIMIT orders."]),
        ({"order_type": "STOP_LIMIT", "price": "101"}, ["Stop price: Required for STOP_LIMIT orders."]),
        (
            {"order_type": "TRAILING_STOP", "price": ""},
            ["Trail amount: A trailing stop needs exactly one of a trail amount or a trail %."],
        ),
    ],
)
def test_preview_none_while_incomplete_says_what_is_missing_without_field_errors(client, fields, expected):
    page = html(client.post(PREVIEW, order(**fields)))
    assert risk_of(page) == "none"
    assert '<span class="badge dim">Incomplete</span>' in page
    assert reasons_of(page) == expected
    assert "errorlist" not in page and "aria-invalid" not in page
    assert 'id="route"' not in page


def test_preview_red_when_no_account_can_take_the_order(client, accounts):
    # a STOP order with IOC is refused by validation (none); an unknown instrument has no route
    page = html(client.post(PREVIEW, order(symbol="ZZZZ")))
    assert risk_of(page) == "red"
    assert any("No broker account can take" in r for r in reasons_of(page))


def test_preview_route_to_a_degraded_account_is_a_caution(client, accounts):
    account = accounts["PAPER-EQ-A"]
    account.connection_status = "DEGRADED"
    account.save(update_fields=["connection_status"])
    page = html(client.post(PREVIEW, order(broker=str(account.pk))))
    assert risk_of(page) == "yellow"
    assert f"The route {account.label} is DEGRADED: its broker connection is impaired." in reasons_of(page)
    assert '<span class="badge warn">DEGRADED</span>' in page


# --- the quote ----------------------------------------------------------------------------------


def test_quote_shows_bid_ask_last_and_time_for_the_symbol(client):
    page = html(client.get(QUOTE, {"symbol": "aapl"}))
    assert 'id="quote"' in page and 'data-symbol="AAPL"' in page
    bid = Decimal(re.search(r'class="num q-bid">([\d.,]+)<', page).group(1).replace(",", ""))
    ask = Decimal(re.search(r'class="num q-ask">([\d.,]+)<', page).group(1).replace(",", ""))
    last = Decimal(re.search(r'class="num q-last">([\d.,]+)<', page).group(1).replace(",", ""))
    assert bid < Decimal("100") < ask and bid <= last <= ask
    for word in ("Bid", "Ask", "Last", "<time"):
        assert word in page


def test_quote_for_an_unknown_symbol_says_so(client):
    assert "No quote for ZZZZ." in html(client.get(QUOTE, {"symbol": "ZZZZ"}))
    assert "Pick a symbol" in html(client.get(QUOTE))


# --- submitting ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"price": ""}, "price", "Required for LIMIT orders."),
        ({"order_type": "STOP", "price": ""}, "stop_price", "Required for STOP orders."),
        ({"order_type": "STOP_LIMIT", "stop_price": ""}, "stop_price", "Required for STOP_LIMIT orders."),
        (
            {"order_type": "TRAILING_STOP", "trail_amount": "1", "trail_percent": "2"},
            "trail_amount",
            "A trailing stop needs exactly one of a trail amount or a trail %.",
        ),
        ({"quantity": ""}, "quantity", "This field is required."),
        ({"quantity": "0"}, "quantity", "Must be greater than zero."),
        ({"symbol": "not a symbol"}, "symbol", "Unknown symbol format"),
        ({"algo": "TWAP"}, "duration_minutes", "Required for an algo order."),
        (
            {"algo": "TWAP", "order_type": "STOP", "stop_price": "90", "duration_minutes": "10"},
            "order_type",
            "algo",
        ),
        (
            {"algo": "VWAP", "duration_minutes": "10", "max_participation": "150"},
            "max_participation",
            "at most 100",
        ),
    ],
)
def test_submit_shows_errors_by_field_and_places_nothing(client, fields, field, message):
    page = html(client.post(TRADE, order(**fields), **HX))
    errors = re.search(rf'<ul class="errorlist" id="error-{field}">(.*?)</ul>', page, re.S)
    assert errors, page
    assert message in errors.group(1)
    assert re.search(rf'<(input|select)[^>]*name="{field}"[^>]*aria-invalid="true"', page)
    assert f'aria-describedby="error-{field}"' in page
    assert not Order.objects.exists()


def test_a_value_in_a_field_the_type_does_not_show_is_ignored(client, trader):
    # a browser without JavaScript submits the hidden fields too
    html(client.post(TRADE, order(order_type="MARKET", price="99", stop_price="5", trail_percent="3"), **HX))
    placed = Order.objects.get(user=trader)
    assert (placed.order_type, placed.price, placed.stop_price, placed.trail_percent) == (
        "MARKET",
        None,
        None,
        None,
    )


def test_submit_places_the_order_and_keeps_the_form_for_the_next(client, trader, accounts):
    account = accounts["PAPER-EQ-B"]
    response = client.post(TRADE, order(broker=str(account.pk), quantity="5"), **HX)
    page = html(response)
    placed = Order.objects.get(user=trader)
    assert (placed.status, placed.broker_id, placed.quantity) == ("ACCEPTED", account.pk, Decimal("5"))
    assert OrderEvent.objects.filter(order=placed).first().actor_label == "trader (web)"
    result = re.search(r'<div id="order-result"[^>]*role="status"[^>]*>(.*?)</div>', page, re.S).group(1)
    assert text(result).startswith(f"Order {placed.pk} ACCEPTED")
    assert f'href="/orders/{placed.pk}/"' in result
    assert 'id="order-errors"' not in page
    # a fresh form keeps symbol, side, type and broker, not the quantity or the price
    assert 'name="symbol" value="AAPL"' in page
    assert '<option value="LIMIT" selected>' in page
    assert f'<option value="{account.pk}" selected>' in page
    assert not re.search(r'name="quantity" value="', page)
    # and the page shows a toast
    toast = json.loads(response["HX-Trigger"])["tm-toast"]
    assert toast["title"] == f"Order {placed.pk} placed"
    assert toast["kind"] == "info"


def test_submit_without_javascript_redirects_to_the_placed_order(client, trader):
    response = client.post(TRADE, order(quantity="3"))
    placed = Order.objects.get(user=trader)
    assert (response.status_code, response["Location"]) == (302, f"/orders/{placed.pk}/")
    # errors come back on the full page
    page = html(client.post(TRADE, order(price="")))
    assert "<!doctype html>" in page and 'id="error-price"' in page


def test_a_large_order_needs_a_confirmation_before_anything_is_placed(client, trader, accounts):
    data = order(quantity="600", price="100.00", broker=str(accounts["PAPER-EQ-A"].pk))
    page = html(client.post(TRADE, data, **HX))
    assert not Order.objects.exists()
    panel = re.search(r'<div id="confirm-order"[^>]*>(.*?)</form>', page, re.S).group(1)
    assert "60,000.00 notional is at or above the 50,000.00 confirmation threshold" in panel
    assert '<button type="submit" class="neon" id="confirm-order-button">Confirm order</button>' in panel
    assert '<input type="hidden" name="confirmed" value="1">' in panel
    key = re.search(r'name="confirm_key" value="(\w+)"', panel).group(1)
    assert 'id="place-order"' not in page
    # a confirmation for another order does not count: changed quantity, asked again
    page = html(client.post(TRADE, {**data, "quantity": "700", "confirmed": "1", "confirm_key": key}, **HX))
    assert 'id="confirm-order"' in page and not Order.objects.exists()
    # confirmed: placed
    page = html(client.post(TRADE, {**data, "confirmed": "1", "confirm_key": key}, **HX))
    placed = Order.objects.get(user=trader)
    assert placed.quantity == Decimal("600") and placed.status == "ACCEPTED"
    assert 'id="order-result"' in page and 'id="confirm-order"' not in page


def test_a_quarter_of_equity_needs_a_confirmation_too(client, trader, accounts, settings):
    settings.ORDER_CONFIRM_NOTIONAL = Decimal("1000000")
    # equity 250,000 over the three paper accounts: 62,500 is a quarter
    page = html(
        client.post(TRADE, order(quantity="630", price="100.00", broker=str(accounts["PAPER-EQ-A"].pk)), **HX)
    )
    assert "is 25% of your 250,000.00 equity" in page
    assert not Order.objects.exists()


def test_a_risk_rejection_is_explained_and_the_form_keeps_its_values(client, trader):
    limits(trader, max_order_notional=Decimal("500"))
    response = client.post(TRADE, order(quantity="7"), **HX)
    page = html(response)
    rejected = Order.objects.get(user=trader)
    assert rejected.status == "REJECTED"
    assert 'id="order-result"' not in page
    errors = re.search(r'<div id="order-errors"[^>]*role="alert"[^>]*>(.*?)</div>', page, re.S).group(1)
    assert "REJECTED" in errors
    assert "(MAX_ORDER_NOTIONAL)" in errors and "693" in errors
    assert 'name="quantity" value="7"' in page and 'name="price" value="99.00"' in page
    assert json.loads(response["HX-Trigger"])["tm-toast"]["kind"] == "bad"


def test_no_eligible_broker_is_a_form_error(client, accounts):
    # the crypto account does not trade equities
    page = html(client.post(TRADE, order(broker=str(accounts["PAPER-CRYPTO"].pk)), **HX))
    assert re.search(r'<ul class="errorlist" id="error-broker">.*does not trade EQUITY', page, re.S)
    assert not Order.objects.exists()


def test_a_twap_order_is_placed_as_a_parent_with_its_parameters(client, trader):
    data = order(
        order_type="MARKET", price="", quantity="100", algo="TWAP", duration_minutes="20", slices="4"
    )
    page = html(client.post(TRADE, data, **HX))
    parent = Order.objects.get(user=trader, parent=None)
    assert (parent.algo, parent.quantity, parent.broker_id) == ("TWAP", Decimal("100"), None)
    algo = AlgoOrder.objects.get(parent=parent)
    assert (algo.end_time - algo.start_time).total_seconds() == 20 * 60
    assert algo.slices.count() == 4
    result = re.search(r'<div id="order-result"[^>]*>(.*?)</div>', page, re.S).group(1)
    assert text(result).startswith(f"Order {parent.pk} ")


def test_a_vwap_order_takes_max_participation_in_percent(client, trader):
    data = order(
        order_type="MARKET",
        price="",
        quantity="100",
        algo="VWAP",
        duration_minutes="30",
        max_participation="10",
    )
    html(client.post(TRADE, data, **HX))
    algo = AlgoOrder.objects.get(parent__user=trader)
    assert algo.kind == "VWAP" and algo.max_participation == Decimal("0.1")


def test_another_users_account_cannot_be_chosen(client, other_trader):
    from brokers.models import BrokerAccount

    theirs = BrokerAccount.objects.filter(user=other_trader).first()
    page = html(client.post(TRADE, order(broker=str(theirs.pk)), **HX))
    assert 'id="error-broker"' in page
    assert not Order.objects.exists()


def test_quote_and_preview_are_refetched_as_the_trader_types(client):
    page = html(client.get(TRADE))
    quote = re.search(r'<div id="quote-live"[^>]*>', page, re.S).group(0)
    assert 'hx-get="/ui/trade/quote/"' in quote and "from:#id_symbol" in quote and "every 5s" in quote
    assert 'id="quote" class="entry-quote" data-symbol=""' in page
    preview = re.search(r'<div id="order-preview-live"[^>]*>', page, re.S).group(0)
    assert 'hx-post="/ui/trade/preview/"' in preview and 'hx-sync="this:queue last"' in preview
    assert "input changed delay:300ms from:#order-form" in preview and "change from:#order-form" in preview
    assert "load" not in preview  # nothing to check yet
    # a form that comes back with values checks them again at once
    page = html(client.post(TRADE, order(price=""), **HX))
    assert re.search(r'<div id="order-preview-live"[^>]*hx-trigger="load, ', page, re.S)
    assert re.search(r'<div id="quote-live"[^>]*hx-trigger="load, ', page, re.S)


def test_an_order_no_account_can_take_is_explained_on_the_form(client):
    page = html(client.post(TRADE, order(symbol="ZZZZ"), **HX))
    errors = re.search(r'<div id="order-errors"[^>]*role="alert"[^>]*>(.*?)</div>', page, re.S).group(1)
    assert "The order was not placed" in errors
    assert "No broker account can take a LIMIT DAY equity order for ZZZZ." in errors
    assert "does not list ZZZZ" in errors  # each account's reason
    assert 'id="order-result"' not in page and not Order.objects.exists()
