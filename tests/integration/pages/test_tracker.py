"""The order tracker pages: /orders/, the panel partial, cancel and modify in place, the detail page.

Real database and the real order pipeline on the paper venues (AAPL mid 100.00 from ``quotes``):
a BUY LIMIT at 90 rests (ACCEPTED), a MARKET order fills at once.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from django.template.loader import render_to_string
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from brokers.models import BrokerAccount
from brokers.services import adapter_for
from orders.models import Order, OrderEvent
from orders.services import Actor, order_place
from routing.algos import AlgoParams, algo_release_due
from routing.models import AlgoOrder, AlgoState
from tests.builders import order_request
from tests.fakes.binance import FakeBinance

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


# --- a small DOM for assertions (stdlib html.parser) -------------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Node:
    def __init__(self, tag: str, attrs: dict[str, str], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node | str] = []

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def text(self) -> str:
        parts = [c if isinstance(c, str) else c.text() for c in self.children]
        return " ".join(" ".join(parts).split())

    def walk(self):
        for c in self.children:
            if isinstance(c, Node):
                yield c
                yield from c.walk()

    def find_all(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> list[Node]:
        return [
            n
            for n in self.walk()
            if (tag is None or n.tag == tag)
            and (cls is None or cls in n.classes)
            and all(n.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]

    def one(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> Node:
        found = self.find_all(tag, cls, **attrs)
        assert len(found) == 1, (tag, cls, attrs, len(found))
        return found[0]

    def by_id(self, id_: str) -> Node | None:
        found = [n for n in self.walk() if n.attrs.get("id") == id_]
        assert len(found) <= 1, f"duplicate id {id_}"
        return found[0] if found else None


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {}, None)
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: v or "" for k, v in attrs}, self.cur)
        self.cur.children.append(node)
        if tag not in VOID:
            self.cur = node

    def handle_endtag(self, tag):
        n = self.cur
        while n is not None and n.tag != tag:
            n = n.parent
        if n is not None and n.parent is not None:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.children.append(data)


def dom(response) -> Node:
    b = _Builder()
    b.feed(response.content.decode())
    return b.root


def row(doc: Node, order: Order) -> Node:
    tr = doc.by_id(f"order-{order.pk}")
    assert tr is not None and tr.tag == "tr", f"no row for order {order.pk}"
    return tr


def cells(tr: Node) -> dict[str, str]:
    names = ("symbol", "side", "type", "qty", "price", "filled", "avg", "status")
    return {name: tr.one(cls=f"o-{name}").text() for name in names}


def toast(response) -> dict:
    return json.loads(response.headers["HX-Trigger"])["tm-toast"]


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def resting(trader, accounts, quotes, fill) -> Order:
    """A BUY LIMIT 10 AAPL @ 90 at venue A: below the market, it rests (ACCEPTED)."""
    order = fill(trader, accounts["PAPER-EQ-A"], order_type="LIMIT", quantity="10", price="90").order
    assert order.status == "ACCEPTED"
    return order


@pytest.fixture
def filled(trader, accounts, quotes, fill) -> Order:
    order = fill(trader, accounts["PAPER-EQ-A"], quantity="5").order
    assert order.status == "FILLED"
    return order


@pytest.fixture
def twap_parent(trader, accounts, quotes) -> Order:
    """A TWAP BUY 500 AAPL in 5 slices starting in an hour; the first slice released (and filled)."""
    start = (timezone.now() + dt.timedelta(hours=1)).replace(second=0, microsecond=0)
    params = AlgoParams(kind="TWAP", start_time=start, duration_seconds=300, slices=5)
    parent = order_place(
        user=trader, request=order_request(quantity="500"), actor=Actor.for_user(trader), algo=params
    ).order
    assert algo_release_due(now=start) == 1
    parent.refresh_from_db()
    assert parent.filled_quantity == Decimal(100)
    return parent


@pytest.fixture
def others_order(other_trader, fill) -> Order:
    account = BrokerAccount.objects.filter(user=other_trader, account_id="PAPER-EQ-A").get()
    return fill(other_trader, account, order_type="LIMIT", quantity="3", price="90").order


# --- list, panel, filter ------------------------------------------------------------------------


def test_orders_page_shows_open_and_recent_rows_with_their_cells(client, resting, filled, accounts):
    response = client.get(reverse("orders"))
    assert response.status_code == 200
    doc = dom(response)

    open_row = row(doc, resting)
    assert open_row.attrs["data-status"] == "ACCEPTED"
    assert cells(open_row) == {
        "symbol": "AAPL",
        "side": "BUY",
        "type": "LIMIT",
        "qty": "10",
        "price": "90.00",
        "filled": "0",
        "avg": "—",
        "status": "ACCEPTED",
    }
    assert "info" in open_row.one(cls="o-status").one(cls="badge").classes
    assert open_row.one("button", aria_label=f"Cancel order {resting.pk}").text() == "Cancel"
    assert "neon" in open_row.one("button", aria_label=f"Cancel order {resting.pk}").classes
    assert open_row.one("button", aria_label=f"Modify order {resting.pk}").text() == "Modify"
    assert open_row.one(cls="o-broker").text() == accounts["PAPER-EQ-A"].label
    assert open_row.one("a").attrs["href"] == reverse("order-page", args=[resting.pk])

    done = row(doc, filled)
    assert (done.attrs["data-status"], cells(done)["filled"], cells(done)["status"]) == (
        "FILLED",
        "5",
        "FILLED",
    )
    assert Decimal(cells(done)["avg"]) == filled.average_fill_price
    assert "ok" in done.one(cls="o-status").one(cls="badge").classes
    assert done.find_all("button") == []

    sections = {t.attrs["data-section"]: t for t in doc.find_all("tbody", cls="o-section")}
    assert sections["open"].by_id(f"order-{resting.pk}") is not None
    assert sections["recent"].by_id(f"order-{filled.pk}") is not None


def test_rejected_and_cancelled_orders_carry_their_badges(client, trader, fill, resting):
    rejected = fill(trader, order_type="LIMIT", quantity="10", price="200").order  # outside the price collar
    assert rejected.status == "REJECTED"
    client.post(reverse("order-cancel-page", args=[resting.pk]), **HTMX)
    doc = dom(client.get(reverse("orders")))
    assert "bad" in row(doc, rejected).one(cls="badge").classes
    assert "dim" in row(doc, resting).one(cls="badge").classes
    assert row(doc, resting).one(cls="o-status").text() == "CANCELLED"


def test_the_status_filter_shows_one_group(client, resting, filled):
    doc = dom(client.get(reverse("orders") + "?status=filled"))
    assert doc.by_id(f"order-{filled.pk}") is not None
    assert doc.by_id(f"order-{resting.pk}") is None
    assert doc.one("a", id="filter-filled").attrs.get("aria-current") == "true"

    part = client.get(reverse("ui-orders-table") + "?status=open", **HTMX)
    assert part.status_code == 200
    doc = dom(part)
    wrapper = doc.by_id("orders-list")
    assert "tm-orders" in wrapper.attrs["hx-trigger"] and wrapper.attrs["hx-get"].endswith("?status=open")
    assert doc.by_id(f"order-{resting.pk}") is not None
    assert doc.by_id(f"order-{filled.pk}") is None

    assert dom(client.get(reverse("orders") + "?status=rejected")).find_all("tr", cls="o-row") == []
    # an unknown filter is "all"
    doc = dom(client.get(reverse("orders") + "?status=bogus"))
    assert doc.by_id(f"order-{resting.pk}") is not None and doc.by_id(f"order-{filled.pk}") is not None


def test_the_panel_partial_lists_open_and_recent_orders_and_parents_without_their_children(
    client, resting, filled, twap_parent
):
    response = client.get(reverse("ui-orders-panel"), **HTMX)
    assert response.status_code == 200
    doc = dom(response)
    body = doc.by_id("tracker-panel-body")
    assert "tm-orders" in body.attrs["hx-trigger"] and body.attrs["hx-sync"] == "this:replace"
    for order in (resting, filled, twap_parent):
        assert doc.by_id(f"order-{order.pk}") is not None
    child = Order.objects.get(parent=twap_parent)
    assert doc.by_id(f"order-{child.pk}") is None
    parent_row = row(doc, twap_parent)
    assert cells(parent_row)["type"] == "MARKET · TWAP"
    assert "20%" in parent_row.one(cls="o-progress").text()


def test_the_panel_include_renders_its_loader(trader):
    html = render_to_string("orders/tracker/_panel.html")
    assert 'id="tracker-panel"' in html and reverse("ui-orders-panel") in html


# --- cancel in place ----------------------------------------------------------------------------


def test_cancel_with_htmx_returns_the_cancelled_row_and_logs_the_web_actor(client, trader, resting):
    response = client.post(reverse("order-cancel-page", args=[resting.pk]), {"compact": "1"}, **HTMX)
    assert response.status_code == 200
    tr = row(dom(response), resting)
    assert tr.attrs["data-status"] == "CANCELLED"
    assert cells(tr)["status"] == "CANCELLED"
    assert "flash" in tr.classes
    assert tr.find_all("button") == []
    assert toast(response)["title"] == f"Order {resting.pk} CANCELLED"
    assert response.headers["HX-Trigger-After-Settle"] == "tm-orders"
    resting.refresh_from_db()
    assert resting.status == "CANCELLED"
    event = OrderEvent.objects.filter(order=resting, event_type="REQUEST_CANCEL").get()
    assert (event.actor_type, event.actor_id, event.actor_label) == ("USER", trader.pk, "trader (web)")
    assert OrderEvent.objects.filter(order=resting, to_status="CANCELLED").exists()


def test_cancel_without_htmx_still_redirects_to_the_order(client, resting):
    response = client.post(reverse("order-cancel-page", args=[resting.pk]))
    assert response.status_code == 302 and response.url == reverse("order-page", args=[resting.pk])
    resting.refresh_from_db()
    assert resting.status == "CANCELLED"


def test_cancelling_a_filled_order_shows_the_error_and_changes_nothing(client, filled):
    events = OrderEvent.objects.filter(order=filled).count()
    response = client.post(reverse("order-cancel-page", args=[filled.pk]), **HTMX)
    assert response.status_code == 200
    tr = row(dom(response), filled)
    assert tr.attrs["data-status"] == "FILLED"
    assert "can no longer be cancelled" in tr.one(cls="o-error").text()
    assert toast(response)["kind"] == "bad"
    filled.refresh_from_db()
    assert filled.status == "FILLED"
    assert OrderEvent.objects.filter(order=filled).count() == events


# --- modify in place ----------------------------------------------------------------------------


def test_modify_opens_an_inline_form_row_with_the_current_values(client, resting):
    response = client.get(reverse("ui-order-edit", args=[resting.pk]), **HTMX)
    assert response.status_code == 200
    doc = dom(response)
    tr = row(doc, resting)
    assert "editing" in tr.classes
    inputs = {i.attrs["name"]: i for i in tr.find_all("input") if i.attrs.get("type") != "hidden"}
    assert set(inputs) == {"quantity", "price"}  # a LIMIT order has no stop price
    assert (inputs["quantity"].attrs["value"], inputs["price"].attrs["value"]) == ("10", "90")
    assert "autofocus" in inputs["quantity"].attrs
    labels = {lab.attrs["for"]: lab.text() for lab in tr.find_all("label")}
    assert labels[inputs["quantity"].attrs["id"]] == "New quantity"
    assert labels[inputs["price"].attrs["id"]] == "New limit price"
    assert [b.text() for b in tr.find_all("button")] == ["Save", "Keep"]


def test_a_stop_limit_order_edits_both_prices(client, trader, accounts, fill):
    order = fill(
        trader, accounts["PAPER-EQ-A"], order_type="STOP_LIMIT", quantity="4", price="106", stop_price="105"
    ).order
    assert order.status == "ACCEPTED"
    tr = row(dom(client.get(reverse("ui-order-edit", args=[order.pk]), **HTMX)), order)
    labels = sorted(lab.text() for lab in tr.find_all("label"))
    assert labels == ["New limit price", "New quantity", "New stop price"]


def test_saving_a_new_price_replaces_the_order_and_returns_its_row(client, trader, resting):
    response = client.post(
        reverse("ui-order-edit", args=[resting.pk]), {"quantity": "10", "price": "91.5"}, **HTMX
    )
    assert response.status_code == 200
    tr = row(dom(response), resting)
    assert "editing" not in tr.classes
    assert cells(tr)["price"] == "91.50"
    assert "autofocus" in tr.one("button", aria_label=f"Modify order {resting.pk}").attrs
    assert toast(response)["title"] == f"Order {resting.pk} modified"
    resting.refresh_from_db()
    assert (resting.price, resting.quantity) == (Decimal("91.5"), Decimal(10))
    replace = OrderEvent.objects.filter(order=resting, event_type="REQUEST_REPLACE").get()
    assert replace.actor_label == "trader (web)"
    assert replace.data["requested"] == {"price": "91.5"}  # only what changed


@pytest.mark.parametrize(
    ("price", "message"),
    [("abc", "Enter a number."), ("-5", None)],
)
def test_an_invalid_price_is_a_field_error_and_changes_nothing(client, resting, price, message):
    events = OrderEvent.objects.filter(order=resting).count()
    response = client.post(
        reverse("ui-order-edit", args=[resting.pk]), {"quantity": "10", "price": price}, **HTMX
    )
    assert response.status_code == 200
    tr = row(dom(response), resting)
    assert "editing" in tr.classes
    price_input = tr.one("input", name="price")
    assert price_input.attrs["aria-invalid"] == "true"
    assert price_input.attrs["value"] == price
    assert "autofocus" in price_input.attrs and "autofocus" not in tr.one("input", name="quantity").attrs
    errors = tr.one("ul", id=f"error-{resting.pk}-price").text()
    assert errors and (message is None or message in errors)
    resting.refresh_from_db()
    assert resting.price == Decimal(90)
    assert OrderEvent.objects.filter(order=resting).count() == events


def test_a_change_the_risk_check_refuses_is_shown_in_the_edit_row(client, resting):
    events = OrderEvent.objects.filter(order=resting).count()
    response = client.post(
        reverse("ui-order-edit", args=[resting.pk]), {"quantity": "1000000", "price": "90"}, **HTMX
    )
    tr = row(dom(response), resting)
    assert "editing" in tr.classes
    alert = tr.by_id(f"edit-{resting.pk}-errors")
    assert alert.attrs["role"] == "alert"
    assert "The pre-trade check refused the change." in alert.text()
    reasons = [li.text() for li in alert.find_all("li")]
    assert any("MAX_ORDER_NOTIONAL" in reason for reason in reasons)
    resting.refresh_from_db()
    assert resting.quantity == Decimal(10)
    assert OrderEvent.objects.filter(order=resting).count() == events


def test_nothing_changed_is_said_in_the_row(client, resting):
    response = client.post(
        reverse("ui-order-edit", args=[resting.pk]), {"quantity": "10", "price": "90"}, **HTMX
    )
    tr = row(dom(response), resting)
    assert "Nothing to change." in tr.by_id(f"edit-{resting.pk}-errors").text()


def test_keep_returns_the_normal_row_with_focus_on_modify(client, resting):
    response = client.get(reverse("ui-order-row", args=[resting.pk]) + "?focus=modify", **HTMX)
    tr = row(dom(response), resting)
    assert "editing" not in tr.classes
    assert "autofocus" in tr.one("button", aria_label=f"Modify order {resting.pk}").attrs


# --- the detail page ----------------------------------------------------------------------------


def test_the_detail_page_shows_status_events_fills_and_the_routing_decision(client, filled, accounts):
    response = client.get(reverse("order-page", args=[filled.pk]))
    assert response.status_code == 200
    doc = dom(response)
    assert doc.by_id("order-status").text() == "FILLED"
    assert "ok" in doc.by_id("order-status").classes
    events = doc.by_id("order-events")
    types = [tr.attrs["data-event"] for tr in events.find_all("tr") if "data-event" in tr.attrs]
    assert types == list(
        OrderEvent.objects.filter(order=filled).order_by("id").values_list("event_type", flat=True)
    )
    assert "FILL" in types
    created = events.find_all("tr", data_event="CREATED")[0]
    assert "trader" in created.one(cls="ev-actor").text()
    routing = doc.by_id("order-routing")
    assert routing.by_id("route-winner").text() == accounts["PAPER-EQ-A"].label
    assert "named by the client" in routing.text()
    fills = doc.by_id("order-fills")
    assert len([tr for tr in fills.find_all("tr") if tr.find_all("td")]) == filled.fills.count() >= 1
    assert doc.by_id("algo-progress") is None
    live = doc.by_id("order-live")
    assert reverse("ui-order-live", args=[filled.pk]) == live.attrs["hx-get"]
    assert "tm-orders" in live.attrs["hx-trigger"] and "tm-fills" in live.attrs["hx-trigger"]


def test_an_auto_routed_order_shows_the_scored_candidates(client, trader, fill):
    order = fill(trader, order_type="LIMIT", quantity="10", price="90").order
    doc = dom(client.get(reverse("order-page", args=[order.pk])))
    routing = doc.by_id("order-routing")
    candidates = routing.find_all("tr", cls="winner")
    assert len(candidates) == 1
    assert candidates[0].attrs["data-account"] == str(order.broker_id)
    assert routing.by_id("route-winner").text() == str(order.broker)
    # the open order's row is on the page with its actions
    assert row(doc, order).one("button", aria_label=f"Cancel order {order.pk}")


def test_a_twap_parent_shows_progress_children_and_can_be_paused(client, twap_parent):
    doc = dom(client.get(reverse("order-page", args=[twap_parent.pk])))
    progress = doc.by_id("algo-progress")
    assert progress is not None
    bar = progress.one(role="progressbar")
    assert bar.attrs["aria-valuenow"] == "20.00"
    assert "20.00% filled" in progress.text() and "100 of 500" in progress.text()
    assert "1 / 5 released" in progress.text()
    child = Order.objects.get(parent=twap_parent)
    children = doc.by_id("algo-children")
    assert [tr.attrs["id"] for tr in children.find_all("tr")] == [f"order-{child.pk}"]
    assert children.by_id(f"order-{child.pk}").attrs["data-status"] == "FILLED"
    # the parent's fills are its children's
    fills = [tr for tr in doc.by_id("order-fills").find_all("tr") if tr.find_all("td")]
    assert len(fills) == child.fills.count() >= 1
    assert fills[0].find_all("a")[0].attrs["href"] == reverse("order-page", args=[child.pk])
    assert "algo parent" in doc.by_id("order-routing").text()

    response = client.post(reverse("ui-order-pause", args=[twap_parent.pk]), **HTMX)
    assert response.status_code == 200
    assert dom(response).by_id("algo-state").text() == "PAUSED"
    assert AlgoOrder.objects.get(parent=twap_parent).state == AlgoState.PAUSED
    assert (
        OrderEvent.objects.filter(order=twap_parent, event_type="ALGO_PAUSED").get().actor_label
        == "trader (web)"
    )
    response = client.post(reverse("ui-order-resume", args=[twap_parent.pk]), **HTMX)
    assert dom(response).by_id("algo-state").text() == "RUNNING"


def test_the_live_partial_is_the_same_wrapper(client, resting):
    response = client.get(reverse("ui-order-live", args=[resting.pk]), **HTMX)
    assert response.status_code == 200
    doc = dom(response)
    assert doc.by_id("order-live") is not None and doc.by_id("order-status").text() == "ACCEPTED"


# --- ownership and login ------------------------------------------------------------------------


def test_another_users_order_is_not_found_everywhere(client, others_order):
    pk = others_order.pk
    for url in (
        reverse("order-page", args=[pk]),
        reverse("ui-order-live", args=[pk]),
        reverse("ui-order-row", args=[pk]),
        reverse("ui-order-edit", args=[pk]),
    ):
        assert client.get(url, **HTMX).status_code == 404, url
    assert client.post(reverse("order-cancel-page", args=[pk]), **HTMX).status_code == 404
    assert client.post(reverse("ui-order-edit", args=[pk]), {"price": "95"}, **HTMX).status_code == 404
    assert client.post(reverse("ui-order-pause", args=[pk]), **HTMX).status_code == 404
    others_order.refresh_from_db()
    assert (others_order.status, others_order.price) == ("ACCEPTED", Decimal(90))
    doc = dom(client.get(reverse("orders")))
    assert doc.by_id(f"order-{pk}") is None


def test_pages_and_partials_require_login(anon, resting):
    pk = resting.pk
    gets = [
        reverse("orders"),
        reverse("order-page", args=[pk]),
        reverse("ui-orders-panel"),
        reverse("ui-orders-table"),
        reverse("ui-order-row", args=[pk]),
        reverse("ui-order-edit", args=[pk]),
        reverse("ui-order-live", args=[pk]),
    ]
    for url in gets:
        response = anon.get(url)
        assert response.status_code == 302 and "/login" in response.url, url
    for url in (
        reverse("order-cancel-page", args=[pk]),
        reverse("ui-order-edit", args=[pk]),
        reverse("ui-order-pause", args=[pk]),
    ):
        response = anon.post(url, {"price": "95"})
        assert response.status_code == 302 and "/login" in response.url, url
    resting.refresh_from_db()
    assert (resting.status, resting.price) == ("ACCEPTED", Decimal(90))


def test_staff_do_not_see_other_users_orders_in_their_tracker(make_user, others_order):
    admin = make_user("boss", is_staff=True)
    c = Client()
    c.force_login(admin)
    assert dom(c.get(reverse("orders"))).by_id(f"order-{others_order.pk}") is None


def test_an_algo_parent_changes_only_its_quantity(client, twap_parent):
    tr = row(dom(client.get(reverse("ui-order-edit", args=[twap_parent.pk]), **HTMX)), twap_parent)
    assert [i.attrs["name"] for i in tr.find_all("input")] == ["quantity"]
    response = client.post(reverse("ui-order-edit", args=[twap_parent.pk]), {"quantity": "600"}, **HTMX)
    assert cells(row(dom(response), twap_parent))["qty"] == "600"
    twap_parent.refresh_from_db()
    assert twap_parent.quantity == Decimal(600)


# --- a busy broker (the fake Binance server, real HTTP) ----------------------------------------


@pytest.fixture
def busy_binance(settings, tmp_path):
    settings.TRADEMASTER_CLOCK_FILE = str(tmp_path / "clock")
    server = FakeBinance("bin-key", "bin-secret")
    settings.BINANCE_REST_URL = server.start()
    settings.BINANCE_TIMEOUT_SECONDS = "2"
    settings.BROKER_ADAPTERS = {
        **settings.BROKER_ADAPTERS,
        "binance": "brokers.adapters.binance.BinanceAdapter",
    }
    yield server
    server.stop()


@pytest.fixture
def binance_order(trader, busy_binance) -> Order:
    """A BUY LIMIT 0.01 BTC/USDT resting below the fake Binance market (ACCEPTED)."""
    created = BrokerAccount.objects.create(
        user=trader,
        broker_name="binance",
        account_id="BIN-1",
        label="Binance",
        api_key_encrypted="bin-key",
        api_secret_encrypted="bin-secret",
        sandbox_mode=True,
        buying_power=Decimal("100000"),
        cash=Decimal("100000"),
        total_value=Decimal("100000"),
    )
    account = BrokerAccount.objects.get(pk=created.pk)
    adapter_for(account).rules("BTCUSDT")
    request = order_request(
        symbol="BTC/USDT", order_type="LIMIT", quantity="0.01", price="94000", time_in_force="GTC"
    )
    order = order_place(
        user=trader, request=request, actor=Actor.for_user(trader), broker_id=account.pk
    ).order
    assert order.status == "ACCEPTED"
    return order


BUSY = (429, {"code": -1003, "msg": "Too many requests; current limit is 6000 request weight per 1 MINUTE."})


def test_a_busy_broker_leaves_the_row_as_it_was_and_says_so(client, busy_binance, binance_order):
    busy_binance.inject(*BUSY, {"Retry-After": "4"})
    response = client.post(reverse("order-cancel-page", args=[binance_order.pk]), **HTMX)
    assert response.status_code == 200
    tr = row(dom(response), binance_order)
    assert tr.attrs["data-status"] == "ACCEPTED"
    assert "broker is busy" in tr.one(cls="o-error").text()
    assert tr.one("button", aria_label=f"Cancel order {binance_order.pk}")  # can be tried again
    assert toast(response)["kind"] == "warn"

    # a change meets the same cooldown: an error in the edit row, the order unchanged
    response = client.post(
        reverse("ui-order-edit", args=[binance_order.pk]), {"quantity": "0.01", "price": "94100"}, **HTMX
    )
    tr = row(dom(response), binance_order)
    assert "editing" in tr.classes
    assert "broker is busy" in tr.by_id(f"edit-{binance_order.pk}-errors").text()
    assert toast(response)["kind"] == "warn"
    binance_order.refresh_from_db()
    assert (binance_order.status, binance_order.price) == ("ACCEPTED", Decimal(94000))


def test_modify_on_an_order_that_has_closed_shows_it_as_it_is(client, filled):
    response = client.get(reverse("ui-order-edit", args=[filled.pk]), **HTMX)
    tr = row(dom(response), filled)
    assert "editing" not in tr.classes and tr.attrs["data-status"] == "FILLED"
    assert "can no longer be modified" in tr.one(cls="o-error").text()
