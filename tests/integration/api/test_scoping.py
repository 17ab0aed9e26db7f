"""Every read and write is scoped to the owner; staff see everything."""

from __future__ import annotations

import pytest

from brokers.models import BrokerAccount
from orders.models import Order, OrderEvent
from tests.conftest import bearer_client
from tests.integration.api.conftest import ORDERS

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_books(api, other_api, set_mid, place) -> dict[str, dict]:
    """Each trader has a filled AAPL buy and a resting AAPL bid."""
    set_mid("AAPL", "100.00")
    set_mid("MSFT", "200.00")
    return {
        "mine_filled": place(api, symbol="AAPL", side="BUY", order_type="MARKET", quantity="10"),
        "mine_resting": place(
            api, symbol="AAPL", side="BUY", order_type="LIMIT", quantity="5", price="99.00"
        ),
        "theirs_filled": place(other_api, symbol="MSFT", side="BUY", order_type="MARKET", quantity="4"),
        "theirs_resting": place(
            other_api, symbol="AAPL", side="BUY", order_type="LIMIT", quantity="7", price="98.00"
        ),
    }


def result_ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def test_list_shows_only_own_orders(api, other_api, two_books):
    # when each trader lists orders
    # then each sees only their own, newest first
    assert result_ids(api.get(ORDERS)) == [two_books["mine_resting"]["id"], two_books["mine_filled"]["id"]]
    assert result_ids(other_api.get(ORDERS)) == [
        two_books["theirs_resting"]["id"],
        two_books["theirs_filled"]["id"],
    ]
    # and no filter reaches the other's orders
    theirs_broker = two_books["theirs_resting"]["broker_id"]
    assert result_ids(api.get(ORDERS, {"broker_id": theirs_broker})) == []
    assert result_ids(api.get(ORDERS, {"symbol": "MSFT"})) == []


def test_another_users_order_is_not_found_for_every_action(api, other_trader, two_books):
    # given the other trader's resting order and its audit trail
    theirs = two_books["theirs_resting"]
    before = Order.objects.get(pk=theirs["id"])
    events_before = list(OrderEvent.objects.filter(order_id=theirs["id"]).values_list("id", flat=True))
    not_found = {"code": "order_not_found", "message": f"Order {theirs['id']} does not exist."}
    # when the trader retrieves, reads the events of, modifies and cancels it
    responses = {
        "retrieve": api.get(f"{ORDERS}{theirs['id']}/"),
        "events": api.get(f"{ORDERS}{theirs['id']}/events/"),
        "modify": api.patch(f"{ORDERS}{theirs['id']}/", {"price": "97.00"}, format="json"),
        "cancel": api.post(f"{ORDERS}{theirs['id']}/cancel/"),
    }
    # then every answer is the 404 an order that does not exist gets
    for action, response in responses.items():
        assert (response.status_code, response.json()) == (404, not_found), action
    # and their order is untouched
    after = Order.objects.get(pk=theirs["id"])
    assert (after.status, after.price, after.quantity, after.updated_at) == (
        before.status,
        before.price,
        before.quantity,
        before.updated_at,
    )
    assert after.status == "ACCEPTED"
    assert (
        list(OrderEvent.objects.filter(order_id=theirs["id"]).values_list("id", flat=True)) == events_before
    )


def test_another_users_filled_order_is_not_found_either(api, two_books):
    # a closed order of someone else is a 404 too, not a 409 that would reveal it exists
    theirs = two_books["theirs_filled"]
    assert api.post(f"{ORDERS}{theirs['id']}/cancel/").status_code == 404
    assert api.patch(f"{ORDERS}{theirs['id']}/", {"quantity": "9"}, format="json").status_code == 404


def test_same_client_order_id_for_two_users_is_two_orders(
    api, other_api, trader, other_trader, set_mid, place
):
    # given AAPL at 100.00
    set_mid("AAPL", "100.00")
    order = {
        "symbol": "AAPL",
        "side": "BUY",
        "order_type": "LIMIT",
        "price": "99.00",
        "client_order_id": "c-1",
    }
    # when both traders use the same client order id, with different quantities
    mine = place(api, quantity="5", **order)
    theirs = place(other_api, quantity="6", **order)
    # then each got their own order (no conflict across users, no leak of the other's order)
    assert mine["id"] != theirs["id"]
    assert (mine["user_id"], mine["quantity"]) == (trader.pk, "5.00000000")
    assert (theirs["user_id"], theirs["quantity"]) == (other_trader.pk, "6.00000000")


def test_fills_list_only_own_rows(api, other_api, trader, other_trader, two_books):
    # when each trader lists fills
    mine = api.get("/api/v1/fills/").json()["results"]
    theirs = other_api.get("/api/v1/fills/").json()["results"]
    # then each sees the fill of their own market order only
    assert [(f["order_id"], f["symbol"], f["quantity"]) for f in mine] == [
        (two_books["mine_filled"]["id"], "AAPL", "10.00000000")
    ]
    assert [(f["order_id"], f["symbol"], f["quantity"]) for f in theirs] == [
        (two_books["theirs_filled"]["id"], "MSFT", "4.00000000")
    ]
    # and filtering by the other's order id finds nothing
    assert api.get("/api/v1/fills/", {"order_id": two_books["theirs_filled"]["id"]}).json()["count"] == 0


def test_positions_list_only_own_rows(api, other_api, trader, other_trader, two_books):
    # when each trader lists positions (flat ones too) and the aggregate
    mine = api.get("/api/v1/positions/", {"include_flat": "true"}).json()["results"]
    theirs = other_api.get("/api/v1/positions/").json()["results"]
    # then each sees only their own
    mine_accounts = set(BrokerAccount.objects.filter(user=trader).values_list("id", flat=True))
    assert [(p["symbol"], p["quantity"]) for p in mine] == [("AAPL", "10.00000000")]
    assert {p["broker_id"] for p in mine} <= mine_accounts
    assert [(p["symbol"], p["quantity"]) for p in theirs] == [("MSFT", "4.00000000")]
    assert [row["symbol"] for row in api.get("/api/v1/positions/aggregate/").json()] == ["AAPL"]
    assert [row["symbol"] for row in other_api.get("/api/v1/positions/aggregate/").json()] == ["MSFT"]


def test_brokers_list_only_own_accounts(api, other_api, trader, other_trader):
    # when each trader lists broker accounts
    mine = api.get("/api/v1/brokers/").json()
    # then they see their own three paper accounts, and not the other's
    own = list(BrokerAccount.objects.filter(user=trader).order_by("id").values_list("id", flat=True))
    assert mine["count"] == 3
    assert [a["id"] for a in mine["results"]] == own
    assert [a["account_id"] for a in mine["results"]] == ["PAPER-EQ-A", "PAPER-EQ-B", "PAPER-CRYPTO"]
    theirs = BrokerAccount.objects.filter(user=other_trader).order_by("id").first()
    response = api.get(f"/api/v1/brokers/{theirs.pk}/")
    assert (response.status_code, response.json()["code"]) == (404, "broker_not_found")
    assert other_api.get(f"/api/v1/brokers/{theirs.pk}/").status_code == 200


def test_quotes_use_only_own_accounts(api, trader, other_trader, set_mid):
    set_mid("AAPL", "100.00")
    quotes = api.get("/api/v1/quotes/", {"symbol": "AAPL"}).json()
    own = set(BrokerAccount.objects.filter(user=trader).values_list("id", flat=True))
    assert len(quotes) == 2
    assert {q["broker_id"] for q in quotes} <= own


def test_staff_user_sees_every_order(make_user, trader, other_trader, two_books):
    # given a staff user with a read token
    staff = bearer_client(make_user("supervisor", is_staff=True), scopes=("read",))
    # when they list and retrieve orders
    listed = result_ids(staff.get(ORDERS))
    # then every trader's orders are there, newest first
    assert listed == sorted((o["id"] for o in two_books.values()), reverse=True)
    for order in two_books.values():
        response = staff.get(f"{ORDERS}{order['id']}/")
        assert response.status_code == 200
        assert response.json()["user_id"] == order["user_id"]
    assert staff.get(f"{ORDERS}{two_books['theirs_resting']['id']}/events/").status_code == 200
    # and filtering by owner's broker still works
    assert result_ids(staff.get(ORDERS, {"broker_id": two_books["theirs_resting"]["broker_id"]})) == [
        two_books["theirs_resting"]["id"],
        two_books["theirs_filled"]["id"],
    ]
