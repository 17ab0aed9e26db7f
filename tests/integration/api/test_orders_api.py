"""The orders REST API: create, idempotency, list and filters, retrieve, modify, cancel, audit trail."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.db import connection

from orders.models import Fill, Order, OrderEvent
from tests.integration.api.conftest import ORDERS, TIMESTAMP, expected_order, is_timestamp, stable

pytestmark = pytest.mark.django_db

TOKEN_ACTOR = "trader via TradeMaster command-line tokens"


def post_raw(client, body: str):
    """POST a JSON document exactly as written (numbers stay JSON numbers)."""
    return client.post(ORDERS, body, content_type="application/json")


def events_of(client, order_id: int) -> list[dict]:
    response = client.get(f"{ORDERS}{order_id}/events/")
    assert response.status_code == 200
    return response.json()


def event_summary(events: list[dict]) -> list[tuple[str, str, str, str]]:
    return [(e["event_type"], e["from_status"], e["to_status"], e["actor_type"]) for e in events]


@pytest.fixture
def market(set_mid):
    set_mid("AAPL", "100.00")  # venue A: 99.99 / 100.01, venue B: 99.97 / 100.03
    set_mid("MSFT", "200.00")  # venue B: 199.94 / 200.06
    set_mid("BTC/USD", "50000.00")  # crypto: 49980.00 / 50020.00


# --- create ---------------------------------------------------------------------------------------


def test_market_order_fills_in_the_request_at_the_ask(api, trader, accounts, market, place):
    # given AAPL at 100.00: venue A asks 100.01 but charges 0.005/share with a 1.00 minimum,
    # venue B asks 100.03 with no commission
    # when the trader buys 10 at market without naming a broker
    body = place(api, symbol="AAPL", side="BUY", order_type="MARKET", quantity="10")
    # then best execution routed it to venue B (10 x 100.03 = 1000.30 all-in beats A's
    # 10 x 100.01 + max(10 x 0.005, 1.00) = 1001.10) and it filled there, at B's ask, commission-free
    assert stable(body) == expected_order(
        user_id=trader.pk,
        broker_id=accounts["PAPER-EQ-B"].pk,
        order_type="MARKET",
        quantity="10.00000000",
        status="FILLED",
        filled_quantity="10.00000000",
        remaining_quantity="0.00000000",
        average_fill_price="100.03000000",
        commission="0.0000",
        filled_at=TIMESTAMP,
    )
    order = Order.objects.get(pk=body["id"])
    assert (order.status, order.filled_quantity, order.average_fill_price) == (
        "FILLED",
        Decimal("10"),
        Decimal("100.03"),
    )


def test_limit_order_below_the_market_rests(api, trader, accounts, market, place):
    # when the trader bids 99.00 for 5 AAPL at venue B with a client order id and GTC
    body = place(
        api,
        symbol="AAPL",
        side="BUY",
        order_type="LIMIT",
        quantity="5",
        price="99.00",
        time_in_force="GTC",
        client_order_id="my-limit-1",
        broker_id=accounts["PAPER-EQ-B"].pk,
    )
    # then it rests, accepted, with its terms echoed as 8-decimal strings
    assert stable(body) == expected_order(
        user_id=trader.pk,
        broker_id=accounts["PAPER-EQ-B"].pk,
        client_order_id="my-limit-1",
        quantity="5.00000000",
        price="99.00000000",
        time_in_force="GTC",
        remaining_quantity="5.00000000",
    )


def test_stop_order_rests_until_triggered(api, trader, accounts, market, place):
    # when the trader places a buy stop above the market at venue A
    body = place(
        api,
        symbol="AAPL",
        side="BUY",
        order_type="STOP",
        quantity="5",
        stop_price="105.00",
        broker_id=accounts["PAPER-EQ-A"].pk,
    )
    # then it is accepted and not triggered
    assert stable(body) == expected_order(
        user_id=trader.pk,
        broker_id=accounts["PAPER-EQ-A"].pk,
        order_type="STOP",
        quantity="5.00000000",
        stop_price="105.00000000",
        remaining_quantity="5.00000000",
    )
    assert Order.objects.get(pk=body["id"]).triggered is False


def test_stop_limit_order_rests_until_triggered(api, trader, accounts, market, place):
    # when the trader places a sell stop-limit below the market at venue A
    body = place(
        api,
        symbol="AAPL",
        side="SELL",
        order_type="STOP_LIMIT",
        quantity="5",
        stop_price="95.00",
        price="94.50",
        broker_id=accounts["PAPER-EQ-A"].pk,
    )
    # then it is accepted with both prices
    assert stable(body) == expected_order(
        user_id=trader.pk,
        broker_id=accounts["PAPER-EQ-A"].pk,
        order_type="STOP_LIMIT",
        side="SELL",
        quantity="5.00000000",
        price="94.50000000",
        stop_price="95.00000000",
        remaining_quantity="5.00000000",
    )


def test_trailing_stop_by_amount(api, trader, accounts, market, place):
    # when the trader places a sell trailing stop 2.50 below the bid at venue A
    body = place(
        api,
        symbol="AAPL",
        side="SELL",
        order_type="TRAILING_STOP",
        quantity="5",
        trail_amount="2.50",
        broker_id=accounts["PAPER-EQ-A"].pk,
    )
    # then it rests (A's bid 99.99 is above the stop 97.49)
    assert stable(body) == expected_order(
        user_id=trader.pk,
        broker_id=accounts["PAPER-EQ-A"].pk,
        order_type="TRAILING_STOP",
        side="SELL",
        quantity="5.00000000",
        trail_amount="2.50000000",
        remaining_quantity="5.00000000",
    )


def test_trailing_stop_by_percent_sent_as_json_numbers(api, trader, accounts, market):
    # when the trader sends the quantity and the trail percent as JSON numbers (to venue A)
    response = post_raw(
        api,
        '{"symbol": "AAPL", "side": "SELL", "order_type": "TRAILING_STOP",'
        f' "quantity": 7, "trail_percent": 1.5, "broker_id": {accounts["PAPER-EQ-A"].pk}}}',
    )
    # then they are read exactly (trail_percent has 4 decimals)
    assert response.status_code == 201
    assert stable(response.json()) == expected_order(
        user_id=trader.pk,
        broker_id=accounts["PAPER-EQ-A"].pk,
        order_type="TRAILING_STOP",
        side="SELL",
        quantity="7.00000000",
        trail_percent="1.5000",
        remaining_quantity="7.00000000",
    )
    assert Order.objects.get(pk=response.json()["id"]).trail_percent == Decimal("1.5")


def test_crypto_limit_with_json_number_decimals(api, trader, accounts, market):
    # when the trader bids for 0.0015 BTC at 49000.5, both as JSON numbers
    response = post_raw(
        api,
        '{"symbol": "BTC/USD", "side": "BUY", "order_type": "LIMIT",'
        ' "quantity": 0.0015, "price": 49000.5, "time_in_force": "GTC"}',
    )
    # then the crypto account took it, with the amounts exact
    assert response.status_code == 201
    assert stable(response.json()) == expected_order(
        user_id=trader.pk,
        broker_id=accounts["PAPER-CRYPTO"].pk,
        symbol="BTC/USD",
        asset_class="CRYPTO",
        quantity="0.00150000",
        price="49000.50000000",
        time_in_force="GTC",
        remaining_quantity="0.00150000",
    )
    order = Order.objects.get(pk=response.json()["id"])
    assert (order.quantity, order.price) == (Decimal("0.0015"), Decimal("49000.5"))


# 18 significant digits: a float keeps 17 (1234567890.1234567), SQLite's NUMERIC keeps 15
EIGHTEEN_DIGITS = "1234567890.12345678"


def test_json_numbers_beyond_float_precision_are_parsed_exactly(api, market, place):
    # given a resting sell trailing stop
    order = place(
        api, symbol="AAPL", side="SELL", order_type="TRAILING_STOP", quantity="3", trail_amount="2.50"
    )
    # when its trail is changed to an amount with 18 significant digits, sent as a JSON number
    response = api.patch(
        f"{ORDERS}{order['id']}/", f'{{"trail_amount": {EIGHTEEN_DIGITS}}}', content_type="application/json"
    )
    # then the change was read with every digit (the audit trail keeps what was asked, as text)
    assert response.status_code == 200
    request_replace, replace = events_of(api, order["id"])[-2:]
    assert request_replace["data"]["requested"] == {"trail_amount": EIGHTEEN_DIGITS}
    assert replace["data"]["after"]["trail_amount"] == EIGHTEEN_DIGITS


# SQLite (the embedded default) stores DECIMAL with NUMERIC affinity and keeps 15 significant
# digits; PostgreSQL keeps all 18. Each database is held to what it can do.
FIFTEEN_DIGITS = "1234567.12345678"


def test_json_numbers_beyond_float_precision_are_stored_exactly(api, market):
    digits = EIGHTEEN_DIGITS if connection.vendor == "postgresql" else FIFTEEN_DIGITS
    # when a trail amount with that many significant digits is sent as a JSON number
    response = post_raw(
        api,
        '{"symbol": "AAPL", "side": "SELL", "order_type": "TRAILING_STOP",'
        f' "quantity": 3, "trail_amount": {digits}}}',
    )
    # then every digit survives, in the response and in the database
    assert response.status_code == 201
    assert (response.json()["status"], response.json()["trail_amount"]) == ("ACCEPTED", digits)
    assert Order.objects.get(pk=response.json()["id"]).trail_amount == Decimal(digits)


def test_immediate_or_cancel_limit_that_cannot_fill_is_cancelled(api, trader, accounts, market, place):
    # when an IOC bid below the ask arrives at venue A
    body = place(
        api,
        symbol="AAPL",
        side="BUY",
        order_type="LIMIT",
        quantity="5",
        price="99.00",
        time_in_force="IOC",
        broker_id=accounts["PAPER-EQ-A"].pk,
    )
    # then the venue cancels it at once
    assert stable(body) == expected_order(
        user_id=trader.pk,
        broker_id=accounts["PAPER-EQ-A"].pk,
        quantity="5.00000000",
        price="99.00000000",
        time_in_force="IOC",
        status="CANCELLED",
        status_reason="IOC: unfilled remainder cancelled",
        remaining_quantity="5.00000000",
        cancelled_at=TIMESTAMP,
    )


# --- idempotency ------------------------------------------------------------------------------------


def test_resubmitting_the_same_client_order_id_returns_the_same_order(api, trader, market, place):
    # given a filled market order with the client's own id
    first = place(
        api, symbol="AAPL", side="BUY", order_type="MARKET", quantity="10", client_order_id="abc-123"
    )
    events = OrderEvent.objects.count()
    # when the same request arrives again, once with the quantity as a JSON number
    again = place(
        api,
        expect=200,
        symbol="AAPL",
        side="BUY",
        order_type="MARKET",
        quantity="10",
        client_order_id="abc-123",
    )
    response = post_raw(
        api,
        '{"symbol": "AAPL", "side": "BUY", "order_type": "MARKET", "quantity": 10.0,'
        ' "client_order_id": "abc-123"}',
    )
    # then both answers are 200 with the same order, and nothing new was placed or booked
    assert response.status_code == 200
    assert again == first
    assert response.json() == first
    assert Order.objects.filter(user=trader).count() == 1
    assert Fill.objects.filter(user=trader).count() == 1
    assert OrderEvent.objects.count() == events


def test_reusing_a_client_order_id_with_other_parameters_is_a_conflict(api, trader, accounts, market, place):
    # given a resting limit with the client's id, at venue A
    first = place(
        api,
        symbol="AAPL",
        side="BUY",
        order_type="LIMIT",
        quantity="5",
        price="99.00",
        client_order_id="dup-1",
        broker_id=accounts["PAPER-EQ-A"].pk,
    )
    # when the id comes back with another quantity, another price, or another broker
    variants = [
        {"quantity": "6"},
        {"price": "98.99"},
        {"broker_id": accounts["PAPER-EQ-B"].pk},
    ]
    for change in variants:
        payload = {
            "symbol": "AAPL",
            "side": "BUY",
            "order_type": "LIMIT",
            "quantity": "5",
            "price": "99.00",
            "client_order_id": "dup-1",
            **change,
        }
        response = api.post(ORDERS, payload, format="json")
        # then each is a 409 naming the order that owns the id
        assert response.status_code == 409, change
        assert response.json() == {
            "code": "client_order_id_reused",
            "message": f"client_order_id 'dup-1' already names order {first['id']} with other parameters.",
            "extra": {"order_id": first["id"]},
        }
    # and the first order is the only one, unchanged
    assert list(Order.objects.filter(user=trader).values_list("id", "quantity", "price")) == [
        (first["id"], Decimal("5"), Decimal("99.00"))
    ]


# --- list, filters, retrieve ---------------------------------------------------------------------


@pytest.fixture
def book_of_orders(api, accounts, market, place) -> dict[str, dict]:
    """Five orders in different states, symbols, sides and accounts."""
    a, b = accounts["PAPER-EQ-A"].pk, accounts["PAPER-EQ-B"].pk
    orders = {
        "filled_buy": place(api, symbol="AAPL", side="BUY", order_type="MARKET", quantity="10", broker_id=a),
        "resting_buy_b": place(
            api, symbol="AAPL", side="BUY", order_type="LIMIT", quantity="5", price="99.00", broker_id=b
        ),
        "resting_sell": place(
            api, symbol="AAPL", side="SELL", order_type="LIMIT", quantity="5", price="101.00", broker_id=a
        ),
        "crypto": place(
            api, symbol="BTC/USD", side="BUY", order_type="LIMIT", quantity="0.01", price="40000.00"
        ),
        "filled_sell_b": place(
            api, symbol="MSFT", side="SELL", order_type="MARKET", quantity="3", broker_id=b
        ),
    }
    cancelled = api.post(f"{ORDERS}{orders['crypto']['id']}/cancel/")
    assert cancelled.status_code == 200
    orders["crypto"] = cancelled.json()
    statuses = {name: o["status"] for name, o in orders.items()}
    assert statuses == {
        "filled_buy": "FILLED",
        "resting_buy_b": "ACCEPTED",
        "resting_sell": "ACCEPTED",
        "crypto": "CANCELLED",
        "filled_sell_b": "FILLED",
    }
    return orders


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [o["id"] for o in response.json()["results"]]


def test_list_is_paginated_newest_first(api, book_of_orders):
    # given five orders
    newest_first = sorted((o["id"] for o in book_of_orders.values()), reverse=True)
    # when the trader pages through them two at a time
    page1 = api.get(ORDERS, {"page_size": 2})
    page2 = api.get(page1.json()["next"])
    page3 = api.get(page2.json()["next"])
    # then the pages hold 2, 2 and 1 orders, newest first, linked by next/previous
    assert page1.status_code == 200
    assert page1.json()["count"] == 5
    assert page1.json()["previous"] is None
    assert page1.json()["next"] == "http://testserver/api/v1/orders/?page=2&page_size=2"
    assert [ids(page1), ids(page2), ids(page3)] == [newest_first[:2], newest_first[2:4], newest_first[4:]]
    assert page3.json()["next"] is None
    assert page3.json()["previous"] == "http://testserver/api/v1/orders/?page=2&page_size=2"
    # and without page_size every order is on one page, rendered as on creation
    everything = api.get(ORDERS).json()
    assert (everything["count"], everything["next"]) == (5, None)
    by_id = {o["id"]: o for o in everything["results"]}
    assert by_id[book_of_orders["crypto"]["id"]] == book_of_orders["crypto"]


def test_list_filters(api, accounts, book_of_orders):
    o = {name: order["id"] for name, order in book_of_orders.items()}
    # status is repeatable
    assert ids(api.get(ORDERS, {"status": "FILLED"})) == [o["filled_sell_b"], o["filled_buy"]]
    assert ids(api.get(f"{ORDERS}?status=FILLED&status=CANCELLED")) == [
        o["filled_sell_b"],
        o["crypto"],
        o["filled_buy"],
    ]
    # open=true: working orders; open=false: closed ones
    assert ids(api.get(ORDERS, {"open": "true"})) == [o["resting_sell"], o["resting_buy_b"]]
    assert ids(api.get(ORDERS, {"open": "false"})) == [o["filled_sell_b"], o["crypto"], o["filled_buy"]]
    # symbol (a crypto pair too), side, broker_id
    assert ids(api.get(ORDERS, {"symbol": "BTC/USD"})) == [o["crypto"]]
    assert ids(api.get(ORDERS, {"symbol": "AAPL"})) == [
        o["resting_sell"],
        o["resting_buy_b"],
        o["filled_buy"],
    ]
    assert ids(api.get(ORDERS, {"side": "SELL"})) == [o["filled_sell_b"], o["resting_sell"]]
    assert ids(api.get(ORDERS, {"broker_id": accounts["PAPER-EQ-B"].pk})) == [
        o["filled_sell_b"],
        o["resting_buy_b"],
    ]
    # filters combine
    assert ids(api.get(ORDERS, {"symbol": "AAPL", "open": "true", "side": "BUY"})) == [o["resting_buy_b"]]
    # a filter matching nothing is an empty page
    empty = api.get(ORDERS, {"symbol": "NVDA"})
    assert empty.json() == {"count": 0, "next": None, "previous": None, "results": []}


def test_list_filter_with_an_unknown_status_is_a_400(api, book_of_orders):
    # when the status filter names no status
    response = api.get(ORDERS, {"status": "DONE"})
    # then it is refused, naming the filter
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
    assert list(response.json()["fields"]) == ["status"]


def test_retrieve(api, book_of_orders):
    # when the trader fetches one order
    order = book_of_orders["resting_buy_b"]
    response = api.get(f"{ORDERS}{order['id']}/")
    # then it is the order as created
    assert response.status_code == 200
    assert response.json() == order


def test_retrieve_unknown_order_is_404(api, trader):
    response = api.get(f"{ORDERS}999999/")
    assert response.status_code == 404
    assert response.json() == {"code": "order_not_found", "message": "Order 999999 does not exist."}


# --- modify ---------------------------------------------------------------------------------------


def test_modify_a_resting_limit_price_and_quantity(api, accounts, market, place):
    # given a resting bid for 5 at 99.00
    order = place(api, symbol="AAPL", side="BUY", order_type="LIMIT", quantity="5", price="99.00")
    # when the trader changes it to 8 at 98.50 (quantity as a JSON number)
    response = api.patch(
        f"{ORDERS}{order['id']}/", '{"price": "98.50", "quantity": 8}', content_type="application/json"
    )
    # then the order works on with the new terms
    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["status"], body["quantity"], body["price"], body["remaining_quantity"]) == (
        order["id"],
        "ACCEPTED",
        "8.00000000",
        "98.50000000",
        "8.00000000",
    )
    assert body["broker_order_id"] == order["broker_order_id"]
    # and the audit trail shows the request and the replacement with before and after
    events = events_of(api, order["id"])
    assert event_summary(events) == [
        ("CREATED", "", "PENDING", "USER"),
        ("SUBMIT", "PENDING", "SUBMITTED", "USER"),
        ("ACCEPT", "SUBMITTED", "ACCEPTED", "BROKER"),
        ("REQUEST_REPLACE", "ACCEPTED", "PENDING_REPLACE", "USER"),
        ("REPLACE", "PENDING_REPLACE", "ACCEPTED", "BROKER"),
    ]
    assert events[3]["actor_label"] == TOKEN_ACTOR
    assert events[3]["data"] == {
        "reason": "",
        "requested": {"quantity": "8.00000000", "price": "98.50000000"},
    }
    unchanged = {"stop_price": None, "trail_amount": None, "trail_percent": None, "time_in_force": "DAY"}
    assert events[4]["data"] == {
        "reason": "",
        "before": {"quantity": "5.00000000", "price": "99.00000000", **unchanged},
        "after": {"quantity": "8.00000000", "price": "98.50000000", **unchanged},
    }
    stored = Order.objects.get(pk=order["id"])
    assert (stored.quantity, stored.price) == (Decimal("8"), Decimal("98.50"))


def test_modify_time_in_force(api, market, place):
    # given a resting DAY bid
    order = place(api, symbol="AAPL", side="BUY", order_type="LIMIT", quantity="5", price="99.00")
    # when the trader makes it GTC
    response = api.patch(f"{ORDERS}{order['id']}/", {"time_in_force": "GTC"}, format="json")
    # then only the time in force changed
    assert response.status_code == 200
    assert (response.json()["time_in_force"], response.json()["price"]) == ("GTC", "99.00000000")


def test_modify_a_filled_order_is_a_conflict(api, market, place):
    # given a filled order
    order = place(api, symbol="AAPL", side="BUY", order_type="MARKET", quantity="10")
    events = len(events_of(api, order["id"]))
    # when the trader tries to change its quantity
    response = api.patch(f"{ORDERS}{order['id']}/", {"quantity": "20"}, format="json")
    # then it is a 409 and nothing happened
    assert response.status_code == 409
    assert response.json() == {
        "code": "order_not_modifiable",
        "message": f"Order {order['id']} is FILLED and cannot be modified now.",
        "extra": {"status": "FILLED"},
    }
    assert len(events_of(api, order["id"])) == events
    assert Order.objects.get(pk=order["id"]).quantity == Decimal("10")


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "non_field_errors"),
        ({"symbol": "MSFT"}, "symbol"),
        ({"symbol": "MSFT", "price": "98.00"}, "symbol"),
        ({"side": "SELL"}, "side"),
        ({"price": "abc"}, "price"),
        ({"price": None}, "price"),
        ({"quantity": "-1"}, "quantity"),
        ({"quantity": True}, "quantity"),
        ({"price": "98.123456789"}, "price"),
        ({"time_in_force": "day"}, "time_in_force"),
        ({"trail_amount": "1.00"}, "trail_amount"),
    ],
)
def test_modify_with_bad_fields_is_a_400(api, market, place, payload, field):
    # given a resting limit
    order = place(api, symbol="AAPL", side="BUY", order_type="LIMIT", quantity="5", price="99.00")
    events = len(events_of(api, order["id"]))
    # when the change is empty, names a field that cannot change, or holds a bad value
    response = api.patch(f"{ORDERS}{order['id']}/", payload, format="json")
    # then it is a 400 naming the field, and the order is as it was
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
    assert list(response.json()["fields"]) == [field]
    assert api.get(f"{ORDERS}{order['id']}/").json() == order
    assert len(events_of(api, order["id"])) == events


def test_modify_quantity_to_at_most_the_filled_quantity_is_a_400(api, accounts, market, place):
    # given a bid for 300 at the ask: venue A shows 200 there, so 200 fill and 100 rest
    order = place(
        api,
        symbol="AAPL",
        side="BUY",
        order_type="LIMIT",
        quantity="300",
        price="100.01",
        broker_id=accounts["PAPER-EQ-A"].pk,
    )
    assert (order["status"], order["filled_quantity"], order["remaining_quantity"]) == (
        "PARTIALLY_FILLED",
        "200.00000000",
        "100.00000000",
    )
    events = len(events_of(api, order["id"]))
    for quantity in ("150", "200"):
        # when the trader cuts the quantity to or below what already filled
        response = api.patch(f"{ORDERS}{order['id']}/", {"quantity": quantity}, format="json")
        # then it is refused on the quantity field
        assert response.status_code == 400, quantity
        assert response.json() == {
            "code": "validation_error",
            "message": "The request has invalid fields.",
            "fields": {"quantity": ["Must exceed the quantity already filled (200)."]},
        }
    # and the order and its trail are untouched
    assert api.get(f"{ORDERS}{order['id']}/").json() == order
    assert len(events_of(api, order["id"])) == events
    # while a cut that stays above the filled quantity works (the replaced order re-enters the
    # book, where the remaining 50 meet the ask at its limit and fill)
    response = api.patch(f"{ORDERS}{order['id']}/", {"quantity": "250"}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["quantity"], body["filled_quantity"], body["remaining_quantity"]) == (
        "FILLED",
        "250.00000000",
        "250.00000000",
        "0.00000000",
    )


# --- cancel ---------------------------------------------------------------------------------------


def test_cancel_a_resting_order(api, market, place):
    # given a resting bid
    order = place(api, symbol="AAPL", side="BUY", order_type="LIMIT", quantity="5", price="99.00")
    # when the trader cancels it
    response = api.post(f"{ORDERS}{order['id']}/cancel/")
    # then it is cancelled with a time stamp
    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["status"], body["status_reason"]) == (
        order["id"],
        "CANCELLED",
        "cancelled on request",
    )
    assert is_timestamp(body["cancelled_at"])
    assert api.get(f"{ORDERS}{order['id']}/").json() == body
    assert event_summary(events_of(api, order["id"]))[-2:] == [
        ("REQUEST_CANCEL", "ACCEPTED", "PENDING_CANCEL", "USER"),
        ("CANCEL", "PENDING_CANCEL", "CANCELLED", "BROKER"),
    ]
    # and a second cancel is a conflict, not a second cancellation
    again = api.post(f"{ORDERS}{order['id']}/cancel/")
    assert again.status_code == 409
    assert again.json()["code"] == "order_not_cancellable"


def test_cancel_a_filled_order_is_a_conflict_without_a_new_event(api, market, place):
    # given a filled order
    order = place(api, symbol="AAPL", side="BUY", order_type="MARKET", quantity="10")
    events = events_of(api, order["id"])
    # when the trader tries to cancel it
    response = api.post(f"{ORDERS}{order['id']}/cancel/")
    # then it is a 409 and the audit trail has no new entry
    assert response.status_code == 409
    assert response.json() == {
        "code": "order_not_cancellable",
        "message": f"Order {order['id']} is FILLED and can no longer be cancelled.",
        "extra": {"status": "FILLED"},
    }
    assert events_of(api, order["id"]) == events
    assert Order.objects.get(pk=order["id"]).status == "FILLED"


def test_cancel_unknown_order_is_404(api, trader):
    response = api.post(f"{ORDERS}999999/cancel/")
    assert response.status_code == 404
    assert response.json()["code"] == "order_not_found"


# --- audit trail ------------------------------------------------------------------------------------


def test_events_list_the_audit_trail_oldest_first(api, accounts, market, place):
    # given a market order filled at venue A (which charges a commission)
    order = place(
        api,
        symbol="AAPL",
        side="BUY",
        order_type="MARKET",
        quantity="10",
        broker_id=accounts["PAPER-EQ-A"].pk,
    )
    # when the trader reads its events
    events = events_of(api, order["id"])
    # then they run from creation to the fill, oldest first, with who did what
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    assert [
        (e["event_type"], e["from_status"], e["to_status"], e["actor_type"], e["actor_label"]) for e in events
    ] == [
        ("CREATED", "", "PENDING", "USER", TOKEN_ACTOR),
        ("SUBMIT", "PENDING", "SUBMITTED", "USER", TOKEN_ACTOR),
        ("ACCEPT", "SUBMITTED", "ACCEPTED", "BROKER", "broker"),
        ("FILL", "ACCEPTED", "FILLED", "BROKER", "broker"),
    ]
    assert events[0]["data"] == {
        "routed_to": "Paper Equities A (tight spread, per-share fee)",
        "parent": None,  # a plain order, not the child of an algo or split
    }
    fill = Fill.objects.get(order_id=order["id"])
    assert events[3]["data"] == {
        "fill_id": fill.pk,
        "broker_fill_id": fill.broker_fill_id,
        "quantity": "10.00000000",
        "price": "100.01000000",
        "fee": "1.0000",
    }
    assert all(is_timestamp(e["created_at"]) for e in events)
    assert set(events[0]) == {
        "id",
        "event_type",
        "from_status",
        "to_status",
        "actor_type",
        "actor_label",
        "data",
        "created_at",
    }


def test_events_of_unknown_order_is_404(api, trader):
    response = api.get(f"{ORDERS}999999/events/")
    assert response.status_code == 404
    assert response.json()["code"] == "order_not_found"


def test_response_is_json_with_decimals_as_strings(api, accounts, market, place):
    # the raw body: decimals are JSON strings, never JSON numbers (a fill at venue A's ask, 100.01)
    order = place(
        api,
        symbol="AAPL",
        side="BUY",
        order_type="MARKET",
        quantity="10",
        broker_id=accounts["PAPER-EQ-A"].pk,
    )
    raw = api.get(f"{ORDERS}{order['id']}/")
    assert raw["Content-Type"] == "application/json"
    assert '"average_fill_price":"100.01000000"' in raw.content.decode()
    assert json.loads(raw.content)["quantity"] == "10.00000000"
