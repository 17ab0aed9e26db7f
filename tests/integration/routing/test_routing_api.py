"""Routing in the REST API and the admin: the quote, the stored decision, parent/child orders,
and the admin pages and actions for routing decisions and algo orders.

Prices as in conftest.py (AAPL mid 100.00): 10 shares cost 100.03 at B (3 bps) and
100.01 + 1.00 minimum fee at A (100.11, 11 bps).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from brokers.models import PaperOrder
from brokers.services import broker_connection_status_set
from orders.models import Order
from routing.models import AlgoOrder, AlgoSlice, AlgoState, RoutingDecision, SliceState
from tests.integration.routing.conftest import LABEL_A, LABEL_B, LABEL_CRYPTO

pytestmark = pytest.mark.django_db

QUOTE = "/api/v1/routing/quote/"
ORDERS = "/api/v1/orders/"
BPS = D("0.0001")


def quote(client, **params):
    return client.get(QUOTE, {"side": "BUY", **params})


def candidates(body: dict) -> list[tuple[int, D, D]]:
    """(account id, score to 0.0001 bps, all-in price to 8 places) of each candidate, best first."""
    return [
        (c["account_id"], D(c["score_bps"]).quantize(BPS), D(c["all_in_price"]).quantize(D("1e-8")))
        for c in body["candidates"]
    ]


def nothing_placed() -> bool:
    return not (
        Order.objects.exists()
        or PaperOrder.objects.exists()
        or RoutingDecision.objects.exists()
        or AlgoOrder.objects.exists()
    )


def post_order(client, **body):
    return client.post(
        ORDERS, {"side": "BUY", "order_type": "MARKET", "symbol": "AAPL", **body}, format="json"
    )


# --- the quote --------------------------------------------------------------------------------


def test_quote_shows_every_account_scored_or_skipped_and_places_nothing(api, accounts, aapl):
    a, b, crypto = (accounts[k].pk for k in ("PAPER-EQ-A", "PAPER-EQ-B", "PAPER-CRYPTO"))
    response = quote(api, symbol="AAPL", quantity="10")
    assert response.status_code == 200
    body = response.json()
    assert candidates(body) == [(b, D("3.0000"), D("100.03")), (a, D("11.0000"), D("100.11"))]
    assert [c["label"] for c in body["candidates"]] == [LABEL_B, LABEL_A]
    assert [D(c["buying_power_after"]) for c in body["candidates"]] == [D("98999.70"), D("98998.90")]
    assert [(D(c["price_bps"]), D(c["liquidity_bps"])) for c in body["candidates"]] == [
        (D(3), D(0)),
        (D(11), D(0)),
    ]
    assert body["skipped"] == [
        {"account_id": crypto, "label": LABEL_CRYPTO, "reason": "does not trade EQUITY"}
    ]
    assert (body["explicit"], body["winner"], body["impact_bps"], body["split"]) == (False, b, "0.06", [])
    assert body["reason"] == (
        f"{LABEL_B}: best expected all-in price and execution quality (3.00 bps), "
        f"8.00 bps better than {LABEL_A}"
    )
    assert nothing_placed()


def test_quote_for_a_large_order_shows_the_split_and_places_nothing(api, accounts, aapl, settings):
    settings.ROUTING_SPLIT_MIN_NOTIONAL = D("50000")
    a, b = accounts["PAPER-EQ-A"].pk, accounts["PAPER-EQ-B"].pk
    response = quote(api, symbol="AAPL", quantity="900")
    assert response.status_code == 200
    body = response.json()
    # cheapest displayed depth, per-share fee in: A 200 + 400 (100.015, 100.025), B 120 (100.03), A 180
    assert body["split"] == [
        {
            "account_id": a,
            "label": LABEL_A,
            "quantity": "780.00000000",
            "expected_price": str(D("78015.40") / 780),
        },
        {"account_id": b, "label": LABEL_B, "quantity": "120.00000000", "expected_price": "100.03000000"},
    ]
    assert (body["winner"], body["impact_bps"]) == (None, "0.57")
    assert body["reason"].startswith("split across 2 venues by displayed depth (estimated impact 0.57 bps); ")
    assert [c["account_id"] for c in body["candidates"]] == [a, b]
    assert nothing_placed()


@pytest.mark.parametrize(
    ("params", "fields"),
    [
        ({"quantity": "10"}, {"symbol": ["This field is required."]}),
        ({"symbol": "AAPL", "quantity": "abc"}, {"quantity": ["A valid number is required."]}),
        ({"symbol": "AAPL", "quantity": "0"}, {"quantity": ["Must be greater than zero."]}),
        ({"symbol": "AAPL", "quantity": "-5"}, {"quantity": ["Must be greater than zero."]}),
        ({"symbol": "AAPL", "quantity": "10", "side": "HOLD"}, {"side": ['"HOLD" is not a valid choice.']}),
    ],
    ids=["missing-symbol", "quantity-not-a-number", "quantity-zero", "quantity-negative", "bad-side"],
)
def test_quote_refuses_bad_input_with_field_messages(api, accounts, aapl, params, fields):
    response = api.get(QUOTE, {"side": "BUY", **params})
    assert response.status_code == 400
    assert response.json() == {
        "code": "validation_error",
        "message": "The request has invalid fields.",
        "fields": fields,
    }
    assert nothing_placed()


def test_quote_with_no_eligible_account_answers_200_with_each_reason(api, accounts, aapl):
    a, b, crypto = (accounts[k].pk for k in ("PAPER-EQ-A", "PAPER-EQ-B", "PAPER-CRYPTO"))
    response = quote(api, symbol="ZZZZ", quantity="10")
    assert response.status_code == 200
    assert response.json() == {
        "explicit": False,
        "winner": None,
        "reason": "No broker account can take a MARKET DAY equity order for ZZZZ.",
        "impact_bps": None,
        "candidates": [],
        "skipped": [
            {"account_id": a, "label": LABEL_A, "reason": "does not list ZZZZ"},
            {"account_id": b, "label": LABEL_B, "reason": "does not list ZZZZ"},
            {"account_id": crypto, "label": LABEL_CRYPTO, "reason": "does not trade EQUITY"},
        ],
        "split": [],
    }
    assert nothing_placed()


def test_quote_naming_a_down_account_explains_why_it_cannot_take_the_order(api, accounts, aapl):
    a = accounts["PAPER-EQ-A"]
    broker_connection_status_set(account=a, status="DOWN")
    response = quote(api, symbol="AAPL", quantity="10", broker_id=a.pk)
    assert response.status_code == 200
    assert response.json() == {
        "explicit": True,
        "winner": None,
        "reason": f"Broker account {LABEL_A} broker connection is down.",
        "impact_bps": None,
        "candidates": [],
        "skipped": [{"account_id": a.pk, "label": LABEL_A, "reason": "broker connection is down"}],
        "split": [],
    }


def test_quote_naming_another_users_account_is_not_found(api, accounts, other_trader, aapl):
    theirs = other_trader.broker_accounts.get(account_id="PAPER-EQ-A")
    response = quote(api, symbol="AAPL", quantity="10", broker_id=theirs.pk)
    assert response.status_code == 404
    assert response.json() == {
        "code": "broker_not_found",
        "message": f"Broker account {theirs.pk} does not exist.",
    }


# --- orders: named broker, stored decision, parent and children ------------------------------


def test_an_order_naming_a_down_broker_is_refused_with_a_field_message(api, accounts, aapl):
    a = accounts["PAPER-EQ-A"]
    broker_connection_status_set(account=a, status="DOWN")
    response = post_order(api, quantity="10", broker_id=a.pk)
    assert response.status_code == 400
    assert response.json() == {
        "code": "broker_ineligible",
        "message": f"Broker account {LABEL_A} broker connection is down.",
        "fields": {"broker_id": [f"{LABEL_A} broker connection is down."]},
    }
    assert nothing_placed()


def test_order_routing_returns_the_stored_decision_to_its_owner_only(api, other_api, accounts, aapl):
    a, b, crypto = (accounts[k].pk for k in ("PAPER-EQ-A", "PAPER-EQ-B", "PAPER-CRYPTO"))
    created = post_order(api, quantity="10")
    assert created.status_code == 201
    order_id = created.json()["id"]
    assert created.json()["broker_id"] == b
    response = api.get(f"{ORDERS}{order_id}/routing/")
    assert response.status_code == 200
    body = response.json()
    assert (body["order_id"], body["explicit"], body["winner"], body["impact_bps"]) == (
        order_id,
        False,
        b,
        "0.06",
    )
    assert candidates(body) == [(b, D("3.0000"), D("100.03")), (a, D("11.0000"), D("100.11"))]
    assert body["skipped"] == [
        {"account_id": crypto, "label": LABEL_CRYPTO, "reason": "does not trade EQUITY"}
    ]
    assert body["reason"] == RoutingDecision.objects.get(order_id=order_id).reason
    assert body["reason"].startswith(f"{LABEL_B}: best expected all-in price")
    # another user cannot see it
    hidden = other_api.get(f"{ORDERS}{order_id}/routing/")
    assert hidden.status_code == 404
    assert hidden.json() == {"code": "order_not_found", "message": f"Order {order_id} does not exist."}


def test_a_split_order_shows_its_algo_and_its_children_their_parent(api, accounts, aapl, settings):
    settings.ROUTING_SPLIT_MIN_NOTIONAL = D("50000")
    a, b = accounts["PAPER-EQ-A"].pk, accounts["PAPER-EQ-B"].pk
    created = post_order(api, quantity="900")
    assert created.status_code == 201
    parent = created.json()
    assert (parent["algo"], parent["parent_id"], parent["broker_id"]) == ("SPLIT", None, None)
    assert (parent["status"], parent["filled_quantity"], parent["average_fill_price"]) == (
        "FILLED",
        "900.00000000",
        "100.02111111",  # (200 x 100.01 + 400 x 100.02 + 180 x 100.03 + 120 x 100.03) / 900
    )
    assert parent["commission"] == "4.0000"
    child_ids = list(
        Order.objects.filter(parent_id=parent["id"]).order_by("broker_id").values_list("pk", flat=True)
    )
    kids = [api.get(f"{ORDERS}{pk}/").json() for pk in child_ids]
    assert [(k["parent_id"], k["algo"], k["broker_id"], k["quantity"]) for k in kids] == [
        (parent["id"], "", a, "780.00000000"),
        (parent["id"], "", b, "120.00000000"),
    ]
    # the parent's decision holds the split; each child's its own explicit route
    split = api.get(f"{ORDERS}{parent['id']}/routing/").json()["split"]
    assert [(s["account_id"], s["quantity"]) for s in split] == [(a, "780.00000000"), (b, "120.00000000")]
    for kid in kids:
        own = api.get(f"{ORDERS}{kid['id']}/routing/").json()
        assert (own["explicit"], own["winner"], own["split"]) == (True, kid["broker_id"], [])


# --- admin --------------------------------------------------------------------------------------


@pytest.fixture
def admin_browser(make_user) -> Client:
    client = Client()
    client.force_login(make_user("boss", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def twap(api, accounts, aapl) -> Order:
    """A TWAP of 500 AAPL in 5 slices, starting in an hour: nothing released yet."""
    start = timezone.now() + dt.timedelta(hours=1)
    response = post_order(
        api, quantity="500", algo="TWAP", start_time=start.isoformat(), duration_seconds=300, slices=5
    )
    assert response.status_code == 201, response.json()
    return Order.objects.get(pk=response.json()["id"])


def test_admin_lists_and_shows_routing_decisions(admin_browser, api, accounts, aapl):
    order_id = post_order(api, quantity="10").json()["id"]
    decision = RoutingDecision.objects.get(order_id=order_id)
    listing = admin_browser.get(reverse("admin:routing_routingdecision_changelist"))
    assert listing.status_code == 200
    assert list(listing.context["cl"].result_list) == [decision]
    assert "8.00 bps better than" in listing.content.decode()
    page = admin_browser.get(reverse("admin:routing_routingdecision_change", args=[decision.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "does not trade EQUITY" in html
    assert LABEL_B in html


def test_admin_lists_and_shows_algo_orders_with_their_slices(admin_browser, twap):
    algo = AlgoOrder.objects.get(parent=twap)
    listing = admin_browser.get(reverse("admin:routing_algoorder_changelist"))
    assert listing.status_code == 200
    assert list(listing.context["cl"].result_list) == [algo]
    page = admin_browser.get(reverse("admin:routing_algoorder_change", args=[algo.pk]))
    assert page.status_code == 200
    assert page.content.decode().count(SliceState.PLANNED.value) == 5  # one row per slice
    # read-only: the form cannot be saved
    assert (
        admin_browser.post(reverse("admin:routing_algoorder_change", args=[algo.pk]), {}).status_code == 403
    )


def test_admin_actions_pause_resume_and_cancel_a_twap(admin_browser, twap):
    algo = AlgoOrder.objects.get(parent=twap)
    url = reverse("admin:routing_algoorder_changelist")

    def act(action: str) -> list[str]:
        response = admin_browser.post(url, {"action": action, "_selected_action": [algo.pk]}, follow=True)
        assert response.status_code == 200
        return [str(m) for m in response.context["messages"]]

    assert act("pause") == ["Paused 1 algo order(s)."]
    algo.refresh_from_db()
    assert algo.state == AlgoState.PAUSED
    assert act("resume") == ["Resumed 1 algo order(s)."]
    algo.refresh_from_db()
    assert algo.state == AlgoState.RUNNING
    assert act("cancel") == ["Cancelled 1 algo order(s)."]
    algo.refresh_from_db()
    twap.refresh_from_db()
    assert (algo.state, twap.status) == (AlgoState.CANCELLED, "CANCELLED")
    assert not AlgoSlice.objects.filter(algo=algo, state=SliceState.PLANNED).exists()
    assert not Order.objects.filter(parent=twap).exists()
    # the audit trail names the admin
    labels = list(
        twap.events.filter(event_type__in=["ALGO_PAUSED", "ALGO_RESUMED"]).values_list(
            "actor_label", flat=True
        )
    )
    assert labels == ["boss (admin)", "boss (admin)"]
    # a cancelled algo cannot be paused again: the action says why and changes nothing
    assert act("pause") == [
        f"Order {twap.pk}: Order {twap.pk} is CANCELLED (CANCELLED) and cannot be paused.",
        "Paused 0 algo order(s).",
    ]
