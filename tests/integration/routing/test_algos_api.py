"""TWAP/VWAP parent orders through the REST API: create, validate, inspect, pause, resume, modify, cancel."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from orders.models import Order
from routing.models import AlgoOrder, AlgoSlice, SliceState
from tests.conftest import bearer_client

pytestmark = pytest.mark.django_db

ORDERS = "/api/v1/orders/"
MINUTE = dt.timedelta(minutes=1)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Users are created in every test here: skip the deliberately slow production hasher."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def an_hour_ahead() -> dt.datetime:
    return (timezone.now() + dt.timedelta(hours=1)).replace(second=0, microsecond=0)


def parse(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def twap_body(start: dt.datetime | None, **fields) -> dict:
    """300 AAPL at market over three minutes in three slices (from ``start``, or now when None)."""
    body = {
        "symbol": "AAPL",
        "side": "BUY",
        "order_type": "MARKET",
        "quantity": "300",
        "algo": "TWAP",
        "duration_seconds": 180,
        "slices": 3,
    }
    if start is not None:
        body["start_time"] = start.isoformat()
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


def post(client, body: dict, expect: int) -> dict:
    response = client.post(ORDERS, body, format="json")
    assert response.status_code == expect, response.content
    return response.json()


def algo_view(client, order_id: int) -> dict:
    response = client.get(f"{ORDERS}{order_id}/algo/")
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def market(set_mid):
    set_mid("AAPL", "10.00")
    set_mid("BTC/USD", "1000.00")


@pytest.fixture
def scheduled(api, accounts, market) -> tuple[dict, dt.datetime]:
    """A TWAP starting in an hour, as the API returned it, and its start."""
    start = an_hour_ahead()
    return post(api, twap_body(start), 201), start


# --- create ---------------------------------------------------------------------------------------


def test_a_twap_with_a_duration_is_created_as_a_parent_order(api, trader, scheduled):
    body, start = scheduled
    assert body["algo"] == "TWAP"
    assert body["broker_id"] is None
    assert body["parent_id"] is None
    assert (body["status"], body["quantity"], body["filled_quantity"]) == (
        "ACCEPTED",
        "300.00000000",
        "0.00000000",
    )
    parent = Order.objects.get(pk=body["id"])
    assert (parent.user_id, parent.algo) == (trader.pk, "TWAP")
    algo = AlgoOrder.objects.get(parent=parent)
    assert (algo.start_time, algo.end_time) == (start, start + 3 * MINUTE)
    assert list(AlgoSlice.objects.filter(algo=algo).values_list("due_at", "quantity")) == [
        (start + i * MINUTE, Decimal(100)) for i in range(3)
    ]


def test_a_vwap_with_an_end_time_is_created(api, accounts, market):
    start = an_hour_ahead()
    body = post(
        api,
        {
            "symbol": "BTC/USD",
            "side": "BUY",
            "order_type": "LIMIT",
            "price": "1010.00",
            "time_in_force": "GTC",
            "quantity": "0.5",
            "algo": "VWAP",
            "start_time": start.isoformat(),
            "end_time": (start + 10 * MINUTE).isoformat(),
            "max_participation": "0.1",
        },
        201,
    )
    assert (body["algo"], body["broker_id"], body["status"]) == ("VWAP", None, "ACCEPTED")
    view = algo_view(api, body["id"])
    assert (view["algo"], view["state"], parse(view["end_time"])) == ("VWAP", "RUNNING", start + 10 * MINUTE)
    assert (view["limit_price"], view["max_participation"]) == ("1010.00000000", "0.1000")
    # one slice a minute by default, adding up to the order
    assert len(view["slices"]) == 10
    assert sum(Decimal(s["quantity"]) for s in view["slices"]) == Decimal("0.5")


def test_a_twap_starting_now_sends_its_first_slice_at_once(api, accounts, market):
    body = post(api, twap_body(None), 201)
    assert (body["status"], body["filled_quantity"]) == ("PARTIALLY_FILLED", "100.00000000")
    view = algo_view(api, body["id"])
    assert [s["state"] for s in view["slices"]] == ["RELEASED", "PLANNED", "PLANNED"]
    [child_id] = view["children"]
    child = Order.objects.get(pk=child_id)
    assert (child.parent_id, child.quantity, child.status) == (body["id"], Decimal(100), "FILLED")
    assert view["slices"][0]["child_id"] == child_id


def test_resubmitting_the_same_client_order_id_returns_the_same_parent(api, accounts, market):
    start = an_hour_ahead()
    first = post(api, twap_body(start, client_order_id="twap-1"), 201)
    again = post(api, twap_body(start, client_order_id="twap-1"), 200)
    assert again["id"] == first["id"]
    assert Order.objects.filter(client_order_id="twap-1").count() == 1
    assert AlgoSlice.objects.filter(algo__parent_id=first["id"]).count() == 3


WINDOW = "Give end_time or duration_seconds (one of them)."


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"duration_seconds": None}, "end_time", WINDOW),
        ({"end_time": "+5"}, "end_time", WINDOW),
        ({"duration_seconds": None, "end_time": "-1"}, "end_time", "end_time must be after start_time."),
        (
            {"max_participation": "0"},
            "max_participation",
            "max_participation is a fraction in (0, 1], e.g. 0.1 for 10%.",
        ),
        (
            {"max_participation": "1.5"},
            "max_participation",
            "max_participation is a fraction in (0, 1], e.g. 0.1 for 10%.",
        ),
        ({"randomize": "0.9"}, "randomize", "randomize is a fraction between 0 and 0.5."),
        (
            {"order_type": "STOP", "stop_price": "10.50"},
            "order_type",
            "An algo order is MARKET (no limit) or LIMIT (price caps every child).",
        ),
        ({"algo": None}, "duration_seconds", "Only for an algo order (set algo)."),
        (
            {"symbol": "BTC/USD", "quantity": "0.00015"},
            "quantity",
            "quantity must be a multiple of the lot size 0.0001.",
        ),
    ],
    ids=[
        "no-window",
        "end-and-duration",
        "end-before-start",
        "participation-0",
        "participation-1.5",
        "randomize-0.9",
        "stop-order",
        "algo-fields-without-algo",
        "crypto-lot",
    ],
)
def test_invalid_algo_orders_are_refused_with_field_messages(api, accounts, market, change, field, message):
    start = an_hour_ahead()
    if "end_time" in change:  # given in minutes from the start
        change = {**change, "end_time": (start + int(change["end_time"]) * MINUTE).isoformat()}
    body = post(api, twap_body(start, **change), 400)
    assert body["code"] == "validation_error"
    assert message in body["fields"][field], body
    assert not Order.objects.exists()


# --- inspect and control ---------------------------------------------------------------------------


def test_the_algo_view_shows_progress_and_slices(api, scheduled):
    body, start = scheduled
    view = algo_view(api, body["id"])
    assert view["order_id"] == body["id"]
    assert (view["algo"], view["state"], view["status"]) == ("TWAP", "RUNNING", "ACCEPTED")
    assert (parse(view["start_time"]), parse(view["end_time"])) == (start, start + 3 * MINUTE)
    assert (view["quantity"], view["filled_quantity"], view["scheduled_quantity"]) == (
        "300.00000000",
        "0.00000000",
        "0.00000000",
    )
    assert (view["percent_filled"], view["percent_scheduled"], view["ahead_of_schedule"]) == (
        "0.00",
        "0.00",
        "0.00000000",
    )
    assert (view["slices_total"], view["slices_released"], view["children"]) == (3, 0, [])
    assert parse(view["next_slice_at"]) == start
    assert [(s["seq"], parse(s["due_at"]), s["quantity"], s["state"]) for s in view["slices"]] == [
        (i, start + i * MINUTE, "100.00000000", "PLANNED") for i in range(3)
    ]
    assert {s["child_id"] for s in view["slices"]} == {None}


def test_pause_and_resume(api, scheduled):
    body, start = scheduled
    paused = api.post(f"{ORDERS}{body['id']}/pause/")
    assert paused.status_code == 200, paused.content
    assert (paused.json()["state"], paused.json()["next_slice_at"]) == ("PAUSED", None)
    resumed = api.post(f"{ORDERS}{body['id']}/resume/")
    assert resumed.status_code == 200, resumed.content
    assert (resumed.json()["state"], parse(resumed.json()["next_slice_at"])) == ("RUNNING", start)
    # the window has not begun: the same three slices again, after the old ones
    slices = algo_view(api, body["id"])["slices"]
    assert [(s["seq"], s["state"], s["note"]) for s in slices[:3]] == [
        (i, "SKIPPED", "replanned") for i in range(3)
    ]
    assert [(s["seq"], parse(s["due_at"]), s["quantity"]) for s in slices[3:]] == [
        (3 + i, start + i * MINUTE, "100.00000000") for i in range(3)
    ]


def test_modify_quantity_and_end_time(api, scheduled):
    body, start = scheduled
    url = f"{ORDERS}{body['id']}/"
    more = api.patch(url, {"quantity": "600"}, format="json")
    assert more.status_code == 200, more.content
    assert (more.json()["quantity"], more.json()["algo"]) == ("600.00000000", "TWAP")
    planned = [s for s in algo_view(api, body["id"])["slices"] if s["state"] == "PLANNED"]
    assert [s["quantity"] for s in planned] == ["200.00000000"] * 3
    later = api.patch(url, {"end_time": (start + 6 * MINUTE).isoformat()}, format="json")
    assert later.status_code == 200, later.content
    view = algo_view(api, body["id"])
    assert parse(view["end_time"]) == start + 6 * MINUTE
    planned = [s for s in view["slices"] if s["state"] == "PLANNED"]
    assert [(parse(s["due_at"]), s["quantity"]) for s in planned] == [
        (start + i * MINUTE, "100.00000000") for i in range(6)
    ]


def test_modify_refuses_a_price_and_a_quantity_below_what_is_done(api, accounts, market):
    body = post(api, twap_body(None), 201)  # the first 100 filled at once
    url = f"{ORDERS}{body['id']}/"
    price = api.patch(url, {"price": "10.50"}, format="json")
    assert price.status_code == 400, price.content
    assert price.json()["fields"] == {"price": ["An algo order changes only quantity and end_time."]}
    less = api.patch(url, {"quantity": "50"}, format="json")
    assert less.status_code == 400, less.content
    assert list(less.json()["fields"]) == ["quantity"]
    assert Order.objects.get(pk=body["id"]).quantity == Decimal(300)


def test_cancel_and_cancel_again(api, scheduled):
    body, _ = scheduled
    url = f"{ORDERS}{body['id']}/cancel/"
    cancelled = api.post(url)
    assert cancelled.status_code == 200, cancelled.content
    assert (cancelled.json()["status"], cancelled.json()["filled_quantity"]) == ("CANCELLED", "0.00000000")
    view = algo_view(api, body["id"])
    assert view["state"] == "CANCELLED"
    assert [(s["state"], s["note"]) for s in view["slices"]] == [("SKIPPED", "cancelled")] * 3
    again = api.post(url)
    assert again.status_code == 409, again.content
    assert again.json()["code"] == "order_not_cancellable"


# --- permissions and scoping ---------------------------------------------------------------------------


def test_a_read_only_token_cannot_pause(trader, scheduled):
    body, _ = scheduled
    reader = bearer_client(trader, scopes=("read",))
    assert reader.get(f"{ORDERS}{body['id']}/algo/").status_code == 200
    refused = reader.post(f"{ORDERS}{body['id']}/pause/")
    assert refused.status_code == 403, refused.content
    assert AlgoOrder.objects.get(parent_id=body["id"]).state == "RUNNING"


def test_another_users_algo_is_not_found(other_api, scheduled):
    body, _ = scheduled
    base = f"{ORDERS}{body['id']}/"
    assert other_api.get(f"{base}algo/").status_code == 404
    assert other_api.post(f"{base}pause/").status_code == 404
    assert other_api.post(f"{base}resume/").status_code == 404
    assert other_api.patch(base, {"quantity": "600"}, format="json").status_code == 404
    assert other_api.post(f"{base}cancel/").status_code == 404
    parent = Order.objects.get(pk=body["id"])
    assert (parent.status, parent.quantity) == ("ACCEPTED", Decimal(300))
    assert AlgoOrder.objects.get(parent=parent).state == "RUNNING"
    assert AlgoSlice.objects.filter(algo__parent=parent, state=SliceState.PLANNED).count() == 3
