"""Placements a busy broker refuses (429/418) on an account the order cannot leave are deferred
and sent again after the advised delay, exactly once; against the fake Binance server (real
HTTP). Binance, because routing needs a quote and the Alpaca adapter has no market data yet."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from django.utils import timezone

from brokers.adapters.paper import PaperAdapter
from brokers.domain.adapter import BrokerRetryable
from brokers.models import BrokerAccount
from brokers.services import adapter_for, adapters_reset
from orders.models import Order, OrderEvent
from orders.services import Actor, order_cancel, order_place, orders_resend_due
from risk.book import risk_book_totals
from tests.builders import order_request
from tests.conftest import bearer_client
from tests.fakes.binance import FakeBinance
from trademaster.clock import clock_set

pytestmark = pytest.mark.django_db

BUSY = (429, {"code": -1003, "msg": "Too many requests; current limit is 6000 request weight per 1 MINUTE."})


@pytest.fixture
def clock(settings, tmp_path):
    """The service clock (trademaster.clock): ``clock(at)`` sets it, ``clock()`` reads it."""
    path = tmp_path / "clock"
    settings.TRADEMASTER_CLOCK_FILE = str(path)
    state = {"now": timezone.now()}

    def set_(at: dt.datetime | None = None) -> dt.datetime:
        if at is not None:
            state["now"] = at
            clock_set(path, at)
        return state["now"]

    set_(state["now"])
    return set_


@pytest.fixture
def binance(settings):
    server = FakeBinance("bin-key", "bin-secret")
    server.url = server.start()
    settings.BINANCE_REST_URL = server.url
    settings.BINANCE_TIMEOUT_SECONDS = "2"
    settings.BROKER_ADAPTERS = {
        **settings.BROKER_ADAPTERS,
        "binance": "brokers.adapters.binance.BinanceAdapter",
    }
    yield server
    server.stop()


@pytest.fixture
def account(trader, binance):
    created = BrokerAccount.objects.create(
        user=trader,
        broker_name="binance",
        account_id="BIN-1",
        label="Binance",
        api_key_encrypted="bin-key",
        api_secret_encrypted="bin-secret",
        sandbox_mode=True,
        buying_power=D("100000"),
        cash=D("100000"),
        total_value=D("100000"),
    )
    account = BrokerAccount.objects.get(pk=created.pk)
    adapter_for(account).rules("BTCUSDT")  # the symbol rules are cached: placing is one POST
    return account


def busy_on_the_order(fake: FakeBinance, status: int = 429, retry_after: str = "7") -> None:
    """Answer the next placement with ``status``: routing's quote (bookTicker, then ticker/price)
    is answered as usual first, then the order gets the refusal."""
    fake.inject(
        200, {"symbol": "BTCUSDT", "bidPrice": fake.bid, "bidQty": "1.5", "askPrice": fake.ask, "askQty": "2"}
    )
    fake.inject(200, {"symbol": "BTCUSDT", "price": fake.market_price})
    fake.inject(status, BUSY[1], {"Retry-After": retry_after})


def place(trader, account, cid: str, price: str = "95100") -> Order:
    request = order_request(
        symbol="BTC/USDT",
        order_type="LIMIT",
        quantity="0.01",
        price=price,
        time_in_force="GTC",
        client_order_id=cid,
    )
    return order_place(user=trader, request=request, actor=Actor.for_user(trader), broker_id=account.pk).order


def posts(fake: FakeBinance) -> int:
    return len(fake.sent("POST", "/api/v3/order"))


def deferrals(order: Order) -> list[dict]:
    return list(
        OrderEvent.objects.filter(order=order, event_type="SUBMIT_DEFERRED")
        .order_by("id")
        .values_list("data", flat=True)
    )


def test_a_429_defers_the_order_and_it_is_sent_once_after_the_advised_time(trader, binance, account, clock):
    busy_on_the_order(binance, retry_after="7")
    start = clock()
    order = place(trader, account, "d-1")

    assert (order.status, order.send_attempts, order.broker_id) == ("SUBMITTED", 1, account.pk)
    assert order.resend_at >= start + dt.timedelta(seconds=7)
    [deferred] = deferrals(order)
    assert (deferred["attempt"], deferred["retry_after"], deferred["broker_code"]) == (1, "7", "HTTP_429")
    assert deferred["retry_at"] == order.resend_at.isoformat()
    assert "Too many requests" in deferred["message"]
    assert risk_book_totals(user_id=trader.pk).open_orders == 1  # still reserved while it waits
    shown = bearer_client(trader).get(f"/api/v1/orders/{order.pk}/").json()  # integrators see when
    assert (shown["status"], shown["send_attempts"]) == ("SUBMITTED", 1)
    assert dt.datetime.fromisoformat(shown["resend_at"].replace("Z", "+00:00")) == order.resend_at

    # not before the advised time, whoever asks
    clock(start + dt.timedelta(seconds=6))
    assert orders_resend_due() == 0
    assert posts(binance) == 1

    clock(order.resend_at)
    assert orders_resend_due() == 1
    order.refresh_from_db()
    assert (order.status, order.resend_at) == ("ACCEPTED", None)
    assert order.broker_order_id == str(next(iter(binance.orders)))
    assert orders_resend_due() == 0
    assert posts(binance) == 2
    assert [o["clientOrderId"] for o in binance.orders.values()] == [order.client_order_id]


def test_a_broker_that_stays_busy_rejects_the_order_after_the_last_attempt(
    trader, binance, account, clock, settings
):
    settings.BROKER_RETRY_MAX_ATTEMPTS = 3
    busy_on_the_order(binance, retry_after="2")
    order = place(trader, account, "d-2")
    waits = []
    while order.status == "SUBMITTED":
        waits.append(order.resend_at)
        binance.inject(*BUSY, {"Retry-After": "2"})
        clock(order.resend_at)
        assert orders_resend_due() == 1
        order.refresh_from_db()

    assert order.status == "REJECTED"
    assert order.status_reason.startswith("broker busy: refused 3 times over ")
    assert order.status_reason.endswith("not sent again: Binance rate limited: " + BUSY[1]["msg"])
    assert [d["attempt"] for d in deferrals(order)] == [1, 2]
    assert waits == sorted(waits)
    assert posts(binance) == 3
    assert binance.orders == {}
    assert risk_book_totals(user_id=trader.pk).open_orders == 0


def test_a_wait_beyond_the_retry_window_rejects_at_once(trader, binance, account, clock, settings):
    settings.BROKER_RETRY_MAX_SECONDS = 60
    busy_on_the_order(binance, status=418, retry_after="120")
    order = place(trader, account, "d-3")
    assert order.status == "REJECTED"
    assert order.status_reason.startswith("broker busy: refused 1 time over ")
    assert "IP banned" in order.status_reason
    assert deferrals(order) == []


def test_a_deferred_order_is_cancelled_locally_and_never_sent_again(trader, binance, account, clock):
    busy_on_the_order(binance, retry_after="5")
    order = place(trader, account, "d-4")
    assert order.status == "SUBMITTED"

    cancelled = order_cancel(user=trader, order_id=order.pk, actor=Actor.for_user(trader))
    assert (cancelled.status, cancelled.resend_at) == ("CANCELLED", None)
    assert cancelled.status_reason == "cancelled while waiting to be sent again (the broker had not taken it)"
    assert binance.sent("DELETE", "/api/v3/order") == []  # nothing to cancel at a broker that never took it

    clock(order.resend_at + dt.timedelta(seconds=1))
    assert orders_resend_due() == 0
    assert posts(binance) == 1
    assert binance.orders == {}
    assert risk_book_totals(user_id=trader.pk).open_orders == 0


def test_two_workers_resending_the_same_due_order_send_it_once(trader, binance, account, clock):
    busy_on_the_order(binance, retry_after="3")
    order = place(trader, account, "d-5")
    clock(order.resend_at)
    assert orders_resend_due() + orders_resend_due() == 1
    assert posts(binance) == 2
    assert len(binance.orders) == 1


def test_the_local_limiter_defers_instead_of_sending(trader, binance, account, clock, settings):
    settings.BROKER_RATE_LIMITS = {
        "binance": [{"name": "orders", "count": 2, "seconds": 30, "burst": 1, "orders_only": True}]
    }
    adapters_reset()  # the adapter the fixture made has the default limits
    adapter_for(account).rules("BTCUSDT")
    first = place(trader, account, "d-6")
    second = place(trader, account, "d-7")
    assert (first.status, second.status) == ("ACCEPTED", "SUBMITTED")
    [deferred] = deferrals(second)
    assert (deferred["broker_code"], deferred["retry_after"]) == ("RATE_LIMITED", "30.000")
    assert posts(binance) == 1  # the limiter held the second order back: Binance never saw it

    clock(second.resend_at)
    assert orders_resend_due() == 1
    second.refresh_from_db()
    assert second.status == "ACCEPTED"
    assert posts(binance) == 2


def test_a_cancel_the_broker_refuses_for_now_is_a_503_with_retry_after(trader, binance, account, clock):
    order = place(trader, account, "d-8", price="94000")  # rests below the market
    assert order.status == "ACCEPTED"
    binance.inject(*BUSY, {"Retry-After": "4"})
    api = bearer_client(trader)

    response = api.post(f"/api/v1/orders/{order.pk}/cancel/")

    assert response.status_code == 503
    assert response["Retry-After"] == "4"
    assert response.json()["code"] == "broker_busy"
    order.refresh_from_db()
    assert order.status == "ACCEPTED"
    refused = OrderEvent.objects.filter(order=order, event_type="CANCEL_REJECT").get()
    assert refused.data["reason"].startswith("broker busy, cancel not sent: ")

    # a modify meets the cooldown the 429 left: refused here, the same way, before reaching Binance
    requests = len(binance.requests)
    response = api.patch(f"/api/v1/orders/{order.pk}/", {"price": "94100"}, format="json")
    assert response.status_code == 503
    assert 1 <= int(response["Retry-After"]) <= 4
    order.refresh_from_db()
    assert (order.status, order.price) == ("ACCEPTED", D("94000"))
    assert len(binance.requests) == requests

    clock(clock() + dt.timedelta(seconds=4))
    assert api.post(f"/api/v1/orders/{order.pk}/cancel/").json()["status"] == "CANCELLED"


# --- split shares -------------------------------------------------------------------------------


class BusyOnce(PaperAdapter):
    """The paper venues, with the accounts named in ``busy`` answering their next place() 429."""

    busy: set[str] = set()

    def place(self, request):
        if self.account_label in BusyOnce.busy:
            BusyOnce.busy.discard(self.account_label)
            raise BrokerRetryable("429 too many requests", retry_after=2)
        return super().place(request)

    def __init__(self, account):
        super().__init__(account)
        self.account_label = account.account_id


def test_a_split_share_at_a_busy_venue_waits_there_and_the_parent_fills_when_it_goes(
    trader, accounts, set_mid, clock, settings
):
    settings.BROKER_ADAPTERS = {**settings.BROKER_ADAPTERS, "paper": f"{__name__}.BusyOnce"}
    settings.ROUTING_SPLIT_MIN_NOTIONAL = D("50000")
    set_mid("AAPL", "100.00")
    a, b = accounts["PAPER-EQ-A"], accounts["PAPER-EQ-B"]
    BusyOnce.busy = {"PAPER-EQ-B"}
    request = order_request(symbol="AAPL", quantity="900")  # A 780 and B 120 (tests/integration/routing)

    parent = order_place(user=trader, request=request, actor=Actor.for_user(trader)).order

    kids = {c.broker_id: c for c in Order.objects.filter(parent=parent)}
    assert (kids[a.pk].status, kids[b.pk].status) == ("FILLED", "SUBMITTED")
    assert kids[b.pk].send_attempts == 1  # the share stays at B: no failover, no rejection
    parent.refresh_from_db()
    assert (parent.status, parent.filled_quantity) == ("PARTIALLY_FILLED", D(780))

    clock(kids[b.pk].resend_at)
    assert orders_resend_due() == 1
    kids[b.pk].refresh_from_db()
    assert (kids[b.pk].broker_id, kids[b.pk].status) == (b.pk, "FILLED")
    parent.refresh_from_db()
    assert (parent.status, parent.filled_quantity) == ("FILLED", D(900))
