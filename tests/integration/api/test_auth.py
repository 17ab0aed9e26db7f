"""Authentication and token scopes for the API, the token command, and the server-rendered pages."""

from __future__ import annotations

import datetime as dt
import io
import re

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone
from oauth2_provider.models import AccessToken
from rest_framework.test import APIClient

from orders.models import Order, OrderEvent
from tests.conftest import bearer_client
from tests.integration.api.conftest import ORDERS
from trademaster.management.commands.issue_token import token_issue

pytestmark = pytest.mark.django_db

LIMIT = {"symbol": "AAPL", "side": "BUY", "order_type": "LIMIT", "quantity": "5", "price": "99.00"}
READ_ENDPOINTS = [
    ORDERS,
    "/api/v1/fills/",
    "/api/v1/positions/",
    "/api/v1/positions/aggregate/",
    "/api/v1/brokers/",
    "/api/v1/quotes/?symbol=AAPL",
]


@pytest.fixture
def resting(api, set_mid, place) -> dict:
    set_mid("AAPL", "100.00")
    return place(api, **LIMIT)


# --- bearer tokens ------------------------------------------------------------------------------


@pytest.mark.parametrize("url", READ_ENDPOINTS)
def test_no_credentials_is_401(trader, url):
    # when an anonymous client reads
    response = APIClient().get(url)
    # then it is a 401 that asks for a bearer token
    assert response.status_code == 401
    assert response.json() == {
        "code": "not_authenticated",
        "message": "Authentication credentials were not provided.",
    }
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_no_credentials_cannot_write(trader, resting):
    anonymous = APIClient()
    responses = [
        anonymous.post(ORDERS, LIMIT, format="json"),
        anonymous.patch(f"{ORDERS}{resting['id']}/", {"price": "98.00"}, format="json"),
        anonymous.post(f"{ORDERS}{resting['id']}/cancel/"),
    ]
    assert [r.status_code for r in responses] == [401, 401, 401]
    assert Order.objects.count() == 1
    assert Order.objects.get().status == "ACCEPTED"


@pytest.mark.parametrize(
    "header",
    ["Bearer not-a-real-token", "Bearer ", "Basic dHJhZGVyOnB3LWZvci10ZXN0cy0x", "Token abc"],
)
def test_unknown_or_malformed_credentials_are_401(trader, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get(ORDERS)
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


@pytest.mark.parametrize("url", READ_ENDPOINTS)
def test_read_token_can_read(trader, set_mid, url):
    set_mid("AAPL", "100.00")
    response = bearer_client(trader, scopes=("read",)).get(url)
    assert response.status_code == 200


def test_read_token_cannot_write(trader, resting):
    # given a token with only the read scope
    reader = bearer_client(trader, scopes=("read",))
    events = OrderEvent.objects.count()
    # when it places, modifies and cancels
    responses = {
        "place": reader.post(ORDERS, {**LIMIT, "price": "98.00"}, format="json"),
        "modify": reader.patch(f"{ORDERS}{resting['id']}/", {"price": "98.00"}, format="json"),
        "cancel": reader.post(f"{ORDERS}{resting['id']}/cancel/"),
    }
    # then each is a 403 naming the missing scope
    for action, response in responses.items():
        assert response.status_code == 403, action
        assert response.json() == {
            "code": "permission_denied",
            "message": "This token lacks the 'trade' scope.",
        }, action
    # and nothing changed
    assert Order.objects.count() == 1
    stored = Order.objects.get()
    assert (stored.status, str(stored.price)) == ("ACCEPTED", "99.00000000")
    assert OrderEvent.objects.count() == events


def test_trade_only_token_cannot_read(trader, set_mid, place):
    # given a token with only the trade scope
    trader_only = bearer_client(trader, scopes=("trade",))
    set_mid("AAPL", "100.00")
    # when it places an order and then reads
    placed = place(trader_only, **LIMIT)
    response = trader_only.get(f"{ORDERS}{placed['id']}/")
    # then the write worked and the read is a 403 naming 'read'
    assert placed["status"] == "ACCEPTED"
    assert response.status_code == 403
    assert response.json()["message"] == "This token lacks the 'read' scope."


def test_expired_token_is_401(trader):
    # given a token that expired a second ago
    client = bearer_client(trader)
    AccessToken.objects.filter(user=trader).update(expires=timezone.now() - dt.timedelta(seconds=1))
    # when it is used
    response = client.get(ORDERS)
    # then it is refused as unauthenticated, for writes too
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert client.post(ORDERS, LIMIT, format="json").status_code == 401
    assert Order.objects.count() == 0


def test_token_of_a_deactivated_user_is_401(trader, set_mid):
    # given a trader whose token was issued before their account was deactivated
    client = bearer_client(trader)
    trader.is_active = False
    trader.save(update_fields=["is_active"])
    set_mid("AAPL", "100.00")
    # when the token is used to read or to trade
    read = client.get(ORDERS)
    write = client.post(ORDERS, LIMIT, format="json")
    # then both are refused as unauthenticated, and nothing was placed
    for response in (read, write):
        assert response.status_code == 401
        assert response.json() == {"code": "authentication_failed", "message": "User inactive or deleted."}
        assert response["WWW-Authenticate"].startswith("Bearer")
    assert Order.objects.count() == 0


# --- the issue_token command ------------------------------------------------------------------------


def test_issue_token_prints_a_token_that_works(trader, set_mid):
    # when a token is issued on the command line
    out = io.StringIO()
    call_command("issue_token", "trader", "--scopes", "read,trade", stdout=out)
    token = out.getvalue().strip()
    # then it is one bearer token with both scopes, valid for 30 days
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)
    stored = AccessToken.objects.get(token=token)
    assert (stored.user_id, stored.scope) == (trader.pk, "read trade")
    assert dt.timedelta(days=29, hours=23) < stored.expires - timezone.now() <= dt.timedelta(days=30)
    # and it can read and trade through the API
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    set_mid("AAPL", "100.00")
    assert client.get(ORDERS).status_code == 200
    response = client.post(ORDERS, LIMIT, format="json")
    assert response.status_code == 201
    assert response.json()["user_id"] == trader.pk


def test_issue_token_defaults_to_read_only(trader):
    out = io.StringIO()
    call_command("issue_token", "trader", stdout=out)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {out.getvalue().strip()}")
    assert client.get(ORDERS).status_code == 200
    assert client.post(ORDERS, LIMIT, format="json").status_code == 403


def test_issue_token_with_days(trader):
    out = io.StringIO()
    call_command("issue_token", "trader", "--days", "1", stdout=out)
    stored = AccessToken.objects.get(token=out.getvalue().strip())
    assert dt.timedelta(hours=23) < stored.expires - timezone.now() <= dt.timedelta(days=1)


def test_issue_token_for_unknown_user_fails(trader):
    with pytest.raises(CommandError, match="no user named 'nobody'"):
        call_command("issue_token", "nobody", "--scopes", "read", stdout=io.StringIO())
    assert AccessToken.objects.count() == 0


@pytest.mark.parametrize("scopes", ["read,admin", "write", ",", "READ"])
def test_issue_token_with_unknown_scope_fails(trader, scopes):
    with pytest.raises(CommandError, match="scopes must be among"):
        call_command("issue_token", "trader", "--scopes", scopes, stdout=io.StringIO())
    assert AccessToken.objects.count() == 0


# --- session login ----------------------------------------------------------------------------------


def test_session_login_can_use_the_api(trader, set_mid):
    # given a trader logged in with a session (the web pages' login)
    client = APIClient()
    client.force_login(trader)
    set_mid("AAPL", "100.00")
    # when they read and trade through the API
    # then session users have both scopes
    for url in READ_ENDPOINTS:
        assert client.get(url).status_code == 200, url
    response = client.post(ORDERS, LIMIT, format="json")
    assert response.status_code == 201
    events = client.get(f"{ORDERS}{response.json()['id']}/events/").json()
    assert events[0]["actor_label"] == "trader"
    assert client.post(f"{ORDERS}{response.json()['id']}/cancel/").json()["status"] == "CANCELLED"


def test_session_login_with_password(trader):
    client = APIClient()
    assert client.login(username="trader", password="pw-for-tests-1")
    assert client.get(ORDERS).status_code == 200


def test_session_writes_need_the_csrf_token(trader, set_mid):
    # given a session client that enforces CSRF like a browser
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(trader)
    set_mid("AAPL", "100.00")
    # when it posts without a CSRF token
    response = client.post(ORDERS, LIMIT, format="json")
    # then it is refused and nothing was placed (reads still work)
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert response.json()["message"].startswith("CSRF Failed")
    assert Order.objects.count() == 0
    assert client.get(ORDERS).status_code == 200


def test_bearer_writes_do_not_need_csrf(trader, set_mid):
    # a bearer token is not ambient authority: CSRF checks do not apply to it
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_issue(user=trader, scopes=['read', 'trade'])}")
    set_mid("AAPL", "100.00")
    assert client.post(ORDERS, LIMIT, format="json").status_code == 201


# --- pages --------------------------------------------------------------------------------------------


def test_dashboard_redirects_anonymous_users_to_login(trader):
    response = Client().get("/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/"
    login = Client().get("/accounts/login/?next=/")
    assert login.status_code == 200
    assert b'name="username"' in login.content


def test_dashboard_renders_for_a_logged_in_user(trader, set_mid, place, api):
    # given a trader with a filled order
    set_mid("AAPL", "100.00")
    place(api, symbol="AAPL", side="BUY", order_type="MARKET", quantity="10")
    client = Client()
    client.force_login(trader)
    # when they open the dashboard
    response = client.get("/")
    # then it renders their accounts and their position
    assert response.status_code == 200
    assert response.templates[0].name == "orders/dashboard.html"
    page = response.content.decode()
    assert "Log out trader" in page
    assert "Paper Equities A (tight spread, per-share fee)" in page
    assert "AAPL" in page


def test_login_form_logs_in_and_redirects_to_the_dashboard(trader):
    client = Client(enforce_csrf_checks=True)
    client.get("/accounts/login/")
    response = client.post(
        "/accounts/login/",
        {
            "username": "trader",
            "password": "pw-for-tests-1",
            "next": "/",
            "csrfmiddlewaretoken": client.cookies["csrftoken"].value,
        },
    )
    assert (response.status_code, response["Location"]) == (302, "/")
    assert client.get("/").status_code == 200


@pytest.fixture
def browser(trader) -> Client:
    """A logged-in browser that enforces CSRF, with the CSRF cookie from the order form."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(trader)
    form = client.get("/orders/new/")
    assert form.status_code == 200
    assert b'name="csrfmiddlewaretoken"' in form.content
    return client


def form_data(client: Client, **fields) -> dict:
    data = {
        "symbol": "AAPL",
        "side": "BUY",
        "order_type": "LIMIT",
        "quantity": "5",
        "price": "",
        "stop_price": "",
        "trail_amount": "",
        "trail_percent": "",
        "time_in_force": "DAY",
        "broker": "",
        "csrfmiddlewaretoken": client.cookies["csrftoken"].value,
    }
    data.update(fields)
    return data


def test_order_form_places_a_limit_order(browser, trader, accounts, set_mid):
    # given AAPL at 100.00
    set_mid("AAPL", "100.00")
    # when the trader submits a LIMIT order at venue B through the form
    response = browser.post(
        "/orders/new/", form_data(browser, price="99.00", broker=str(accounts["PAPER-EQ-B"].pk))
    )
    # then it was placed and they land on its page
    order = Order.objects.get(user=trader)
    assert (response.status_code, response["Location"]) == (302, f"/orders/{order.pk}/")
    assert (order.order_type, order.status, str(order.price), order.broker_id) == (
        "LIMIT",
        "ACCEPTED",
        "99.00000000",
        accounts["PAPER-EQ-B"].pk,
    )
    assert OrderEvent.objects.filter(order=order).first().actor_label == "trader (web)"
    page = browser.get(response["Location"])
    assert page.status_code == 200
    assert f"Order {order.pk} is ACCEPTED." in page.content.decode()


def test_order_form_lowercase_symbol_is_accepted(browser, trader, set_mid):
    set_mid("AAPL", "100.00")
    response = browser.post("/orders/new/", form_data(browser, symbol=" aapl ", price="99.00"))
    assert response.status_code == 302
    assert Order.objects.get(user=trader).symbol == "AAPL"


def test_order_form_shows_field_errors_for_a_limit_without_price(browser, trader, set_mid):
    set_mid("AAPL", "100.00")
    # when the trader submits a LIMIT order without a price
    response = browser.post("/orders/new/", form_data(browser))
    # then the form comes back with the error under the price field, and nothing was placed
    assert response.status_code == 200
    assert response.context["form"].errors == {"price": ["Required for LIMIT orders."]}
    assert '<ul class="errorlist" id="error-price"><li>Required for LIMIT orders.</li></ul>' in (
        response.content.decode()
    )
    assert Order.objects.count() == 0


def test_order_form_shows_field_errors_from_the_form_itself(browser, trader):
    response = browser.post("/orders/new/", form_data(browser, quantity="lots", side="HOLD", price="99.00"))
    assert response.status_code == 200
    assert sorted(response.context["form"].errors) == ["quantity", "side"]
    assert 'id="error-quantity"' in response.content.decode()
    assert Order.objects.count() == 0


def test_order_form_post_without_csrf_token_is_refused(browser, trader):
    data = form_data(browser, price="99.00")
    del data["csrfmiddlewaretoken"]
    response = browser.post("/orders/new/", data)
    assert response.status_code == 403
    assert Order.objects.count() == 0


def test_order_form_requires_login(trader):
    response = Client().post("/orders/new/", {"symbol": "AAPL"})
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/orders/new/"
    assert Order.objects.count() == 0
