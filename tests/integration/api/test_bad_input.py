"""Bad order input: every case is a 4xx with the offending field named, and nothing is stored."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from orders.models import Order, OrderEvent
from tests.integration.api.conftest import ORDERS
from trademaster.management.commands.issue_token import token_issue
from trademaster.models import OutboxEvent

pytestmark = pytest.mark.django_db

VALID = {"symbol": "AAPL", "side": "BUY", "order_type": "LIMIT", "quantity": "5", "price": "99.00"}
MISSING = object()


def payload(**changes) -> dict:
    """VALID with some fields changed; a field set to MISSING is left out."""
    body = {**VALID, **changes}
    return {k: v for k, v in body.items() if v is not MISSING}


CASES = [
    # quantity
    pytest.param(payload(quantity="-1"), "quantity", id="negative-quantity"),
    pytest.param(payload(quantity="0"), "quantity", id="zero-quantity"),
    pytest.param(payload(quantity=0), "quantity", id="zero-quantity-number"),
    pytest.param(payload(quantity="1.123456789"), "quantity", id="nine-decimals"),
    pytest.param(payload(quantity="1e20"), "quantity", id="huge-quantity"),
    pytest.param(payload(quantity="100000000000000000000"), "quantity", id="huge-quantity-digits"),
    pytest.param(payload(quantity=True), "quantity", id="quantity-true"),
    pytest.param(payload(quantity=False), "quantity", id="quantity-false"),
    pytest.param(payload(quantity="ten"), "quantity", id="quantity-not-a-number"),
    pytest.param(payload(quantity=""), "quantity", id="quantity-empty"),
    pytest.param(payload(quantity=None), "quantity", id="quantity-null"),
    pytest.param(payload(quantity=MISSING), "quantity", id="quantity-missing"),
    pytest.param(payload(quantity="NaN"), "quantity", id="quantity-nan"),
    pytest.param(payload(quantity="Infinity"), "quantity", id="quantity-infinity"),
    pytest.param(payload(quantity="-Infinity"), "quantity", id="quantity-minus-infinity"),
    pytest.param(payload(quantity=["5"]), "quantity", id="quantity-list"),
    pytest.param(payload(quantity={"value": "5"}), "quantity", id="quantity-object"),
    # prices
    pytest.param(payload(price="NaN"), "price", id="price-nan"),
    pytest.param(payload(price="-99.00"), "price", id="price-negative"),
    pytest.param(payload(price="99.123456789"), "price", id="price-nine-decimals"),
    pytest.param(payload(price=MISSING), "price", id="limit-without-price"),
    pytest.param(payload(price=None), "price", id="limit-with-null-price"),
    pytest.param(payload(order_type="MARKET"), "price", id="market-with-price"),
    pytest.param(payload(order_type="STOP", price=MISSING), "stop_price", id="stop-without-stop-price"),
    pytest.param(payload(order_type="STOP_LIMIT"), "stop_price", id="stop-limit-without-stop-price"),
    pytest.param(
        payload(order_type="STOP_LIMIT", price=MISSING, stop_price="98.00"),
        "price",
        id="stop-limit-without-price",
    ),
    pytest.param(
        payload(order_type="TRAILING_STOP", price=MISSING, trail_amount="1.00", trail_percent="1.5"),
        "trail_amount",
        id="trailing-stop-with-both-trails",
    ),
    pytest.param(
        payload(order_type="TRAILING_STOP", price=MISSING), "trail_amount", id="trailing-stop-without-trail"
    ),
    pytest.param(
        payload(order_type="TRAILING_STOP", price=MISSING, trail_percent="51"),
        "trail_percent",
        id="trail-percent-above-50",
    ),
    # enums
    pytest.param(payload(order_type="ICEBERG"), "order_type", id="unknown-order-type"),
    pytest.param(payload(order_type="limit"), "order_type", id="lowercase-order-type"),
    pytest.param(payload(side="HOLD"), "side", id="unknown-side"),
    pytest.param(payload(side="buy"), "side", id="lowercase-side"),
    pytest.param(payload(side=1), "side", id="side-number"),
    pytest.param(payload(time_in_force="GTD"), "time_in_force", id="unknown-time-in-force"),
    pytest.param(payload(time_in_force="day"), "time_in_force", id="lowercase-time-in-force"),
    pytest.param(
        payload(order_type="STOP", price=MISSING, stop_price="105.00", time_in_force="IOC"),
        "time_in_force",
        id="stop-with-ioc",
    ),
    # symbol
    pytest.param(payload(symbol="aapl"), "symbol", id="lowercase-symbol"),
    pytest.param(payload(symbol="123"), "symbol", id="numeric-symbol"),
    pytest.param(payload(symbol="BTC-USD"), "symbol", id="dashed-pair"),
    pytest.param(payload(symbol=""), "symbol", id="empty-symbol"),
    pytest.param(payload(symbol="A" * 21), "symbol", id="long-symbol"),
    pytest.param(payload(symbol=["AAPL"]), "symbol", id="symbol-list"),
    pytest.param(payload(symbol=MISSING), "symbol", id="symbol-missing"),
    # other fields
    pytest.param(payload(client_order_id="has space"), "client_order_id", id="client-order-id-space"),
    pytest.param(payload(client_order_id="x" * 65), "client_order_id", id="client-order-id-too-long"),
    pytest.param(payload(broker_id="first"), "broker_id", id="broker-id-not-a-number"),
]


@pytest.mark.parametrize(("body", "field"), CASES)
def test_bad_order_is_a_400_naming_the_field(api, trader, accounts, body, field):
    # given no orders
    # when the trader posts an order with one bad field
    response = api.post(ORDERS, body, format="json")
    # then it is a 400 validation_error naming exactly that field
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "validation_error"
    assert response.json()["message"] == "The request has invalid fields."
    assert list(response.json()["fields"]) == [field]
    assert all(isinstance(m, str) and m for m in response.json()["fields"][field])
    # and nothing was stored
    assert Order.objects.count() == 0
    assert OrderEvent.objects.count() == 0
    assert OutboxEvent.objects.count() == 0


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        pytest.param('{"quantity": 1.123456789}', "quantity", id="nine-decimals-number"),
        pytest.param('{"quantity": 1e20}', "quantity", id="huge-number"),
        pytest.param('{"quantity": -5}', "quantity", id="negative-number"),
        pytest.param('{"price": 99.001234567}', "price", id="price-nine-decimals-number"),
    ],
)
def test_bad_json_numbers_are_a_400_naming_the_field(api, trader, raw, field):
    # given a valid order whose one field is replaced by a raw JSON number
    body = json.dumps(VALID)[:-1] + ", " + raw[1:]
    # when it is posted
    response = api.post(ORDERS, body, content_type="application/json")
    # then it is refused on that field and nothing was stored
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "validation_error"
    assert list(response.json()["fields"]) == [field]
    assert Order.objects.count() == 0


def test_several_bad_fields_are_all_named(api, trader):
    response = api.post(
        ORDERS, {"symbol": "aapl", "side": "buy", "order_type": "LIMIT", "quantity": "0"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
    # the shape check (side) fails first; the order rules run on well-formed input only
    assert list(response.json()["fields"]) == ["side"]
    response = api.post(
        ORDERS, {"symbol": "aapl", "side": "BUY", "order_type": "LIMIT", "quantity": "0"}, format="json"
    )
    assert response.status_code == 400
    assert sorted(response.json()["fields"]) == ["price", "quantity", "symbol"]
    assert Order.objects.count() == 0


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param('{"symbol": "AAPL", "side": "BUY",', id="truncated"),
        pytest.param("{'symbol': 'AAPL'}", id="single-quotes"),
        pytest.param('{"symbol": "AAPL", "side": "BUY", "order_type": "MARKET", "quantity": NaN}', id="nan"),
        pytest.param(
            '{"symbol": "AAPL", "side": "BUY", "order_type": "MARKET", "quantity": Infinity}', id="infinity"
        ),
        pytest.param("not json at all", id="text"),
    ],
)
def test_malformed_json_is_a_400_parse_error(api, trader, raw):
    # when the body is not valid JSON (or uses JSON's non-standard NaN/Infinity)
    response = api.post(ORDERS, raw, content_type="application/json")
    # then it is a 400 parse_error, not a 500, and nothing was stored
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"
    assert response.json()["message"].startswith("JSON parse error - ")
    assert Order.objects.count() == 0


@pytest.mark.parametrize(
    "raw",
    [pytest.param("[1, 2]", id="list"), pytest.param('"AAPL"', id="string"), pytest.param("null", id="null")],
)
def test_json_that_is_not_an_object_is_a_400(api, trader, raw):
    response = api.post(ORDERS, raw, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
    assert list(response.json()["fields"]) == ["non_field_errors"]
    assert Order.objects.count() == 0


def test_unsupported_content_type_is_a_415(api, trader):
    response = api.post(ORDERS, "symbol=AAPL", content_type="text/plain")
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"
    assert Order.objects.count() == 0


def test_broker_id_of_another_users_account_is_404(api, trader, other_trader, accounts):
    # given an account that belongs to someone else
    theirs = other_trader.broker_accounts.get(account_id="PAPER-EQ-A")
    # when the trader names it
    response = api.post(ORDERS, payload(broker_id=theirs.pk), format="json")
    # then it does not exist for them, and no order was placed for anyone
    assert response.status_code == 404
    assert response.json() == {
        "code": "broker_not_found",
        "message": f"Broker account {theirs.pk} does not exist.",
    }
    assert Order.objects.count() == 0
    assert OrderEvent.objects.count() == 0


def test_broker_id_that_does_not_exist_is_404(api, trader):
    response = api.post(ORDERS, payload(broker_id=987654), format="json")
    assert response.status_code == 404
    assert response.json()["code"] == "broker_not_found"
    assert Order.objects.count() == 0


def test_broker_that_cannot_trade_the_asset_class_is_a_400(api, trader, accounts):
    # when an equity order names the crypto account
    response = api.post(ORDERS, payload(broker_id=accounts["PAPER-CRYPTO"].pk), format="json")
    # then it is refused on broker_id
    assert response.status_code == 400
    assert response.json()["code"] == "broker_ineligible"
    assert list(response.json()["fields"]) == ["broker_id"]
    assert Order.objects.count() == 0


@pytest.fixture
def server_errors_as_responses(trader) -> APIClient:
    """A client that turns an unhandled exception into the 500 response a real client would get."""
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_issue(user=trader, scopes=['read', 'trade'])}")
    return client


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        pytest.param('{"symbol": "AAPL", "quantity": ', "application/json", id="malformed"),
        pytest.param(json.dumps(payload(quantity=True)), "application/json", id="quantity-true"),
        pytest.param(json.dumps(payload(quantity=["5"])), "application/json", id="quantity-list"),
        pytest.param(json.dumps(payload(quantity={"v": 1})), "application/json", id="quantity-object"),
        pytest.param(json.dumps(payload(quantity="NaN")), "application/json", id="quantity-nan"),
        pytest.param(json.dumps(payload(quantity="Infinity")), "application/json", id="quantity-infinity"),
        pytest.param(json.dumps(payload(symbol=None)), "application/json", id="symbol-null"),
        pytest.param(json.dumps(payload(broker_id=10**30)), "application/json", id="broker-id-huge"),
        pytest.param("[]", "application/json", id="empty-list"),
        pytest.param(b"\xff\xfe\x00", "application/json", id="not-utf8"),
    ],
)
def test_bad_input_never_causes_a_server_error(server_errors_as_responses, body, content_type):
    # when bad input reaches the API through a client that would see a 500 as a response
    response = server_errors_as_responses.post(ORDERS, body, content_type=content_type)
    # then it is a 4xx in the error shape, never a 500
    assert 400 <= response.status_code < 500, response.content
    assert set(response.json()) <= {"code", "message", "fields", "extra"}
    assert {"code", "message"} <= set(response.json())
    assert Order.objects.count() == 0


def test_modify_with_bad_input_never_causes_a_server_error(server_errors_as_responses, trader, set_mid):
    # given a resting order
    set_mid("AAPL", "100.00")
    created = server_errors_as_responses.post(ORDERS, VALID, format="json")
    assert created.status_code == 201
    url = f"{ORDERS}{created.json()['id']}/"
    # when malformed or mistyped changes arrive
    for body in ("{", "[]", '{"quantity": [1]}', '{"price": true}', '{"quantity": NaN}'):
        response = server_errors_as_responses.patch(url, body, content_type="application/json")
        # then each is a 400, never a 500
        assert response.status_code == 400, (body, response.content)
    assert server_errors_as_responses.get(url).json() == created.json()
