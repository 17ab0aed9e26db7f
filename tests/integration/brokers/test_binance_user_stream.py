"""The Binance user data stream (WebSocket API, ``userDataStream.subscribe.signature``) against
the loopback fake: real WebSocket and HTTP, no mocks.

``placer`` plays the web process (places, cancels, replaces over REST); ``worker`` plays the feed
worker: a second adapter on the same account that only streams and polls, so every update it
reports comes from the stream (or its REST fallback), never from its own calls.
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest
from django.utils import timezone

from brokers.adapters.binance import REPLACE_CANCEL_PREFIX, BinanceAdapter, fill_id, sign
from brokers.domain.adapter import (
    BrokerFatal,
    BrokerOrderRequest,
    BrokerOrderUpdate,
    OrderChange,
    OrderRef,
    UpdateKind,
)
from brokers.models import BrokerAccount
from orders.domain.enums import AssetClass, OrderType, Side, TimeInForce
from tests.fakes.binance import FakeBinance

pytestmark = pytest.mark.django_db

D = Decimal
KEY, SECRET = "fake-api-key-123", "fake-secret-456"


@pytest.fixture
def fake():
    server = FakeBinance(KEY, SECRET, ws_ping_interval=0.05, ws_ping_timeout=2)
    server.url = server.start()
    yield server
    server.stop()


@pytest.fixture
def account(trader, fake, settings):
    settings.BINANCE_REST_URL = fake.url
    settings.BINANCE_WS_API_URL = fake.ws_url
    settings.BINANCE_TIMEOUT_SECONDS = "2"
    settings.BROKER_STREAM_BACKOFF_SECONDS = 0.05
    settings.BROKER_STREAM_BACKOFF_MAX_SECONDS = 0.2
    created = BrokerAccount.objects.create(
        user=trader,
        broker_name="binance",
        account_id="BIN-1",
        api_key_encrypted=KEY,
        api_secret_encrypted=SECRET,
        sandbox_mode=True,
    )
    return BrokerAccount.objects.get(pk=created.pk)  # credentials sealed as in production


class Worker:
    """A streaming adapter and the wakeup it signals."""

    def __init__(self, adapter: BinanceAdapter) -> None:
        self.adapter = adapter
        self.woken = threading.Event()
        self.updates: list[BrokerOrderUpdate] = []

    def start(self) -> Worker:
        self.adapter.stream_start(self.woken.set)
        assert self.adapter.stream_listening.wait(5)
        self.poll()  # the catch-up poll every subscription starts with
        return self

    def poll(self) -> list[BrokerOrderUpdate]:
        got = self.adapter.poll_updates(timezone.now())
        self.updates += got
        return got

    def until(self, done, timeout: float = 5) -> list[BrokerOrderUpdate]:
        """Poll whenever the stream wakes us until ``done(updates)``; returns what arrived."""
        got: list[BrokerOrderUpdate] = []
        deadline = time.monotonic() + timeout
        while True:
            self.woken.clear()
            got += self.poll()
            if done(got):
                return got
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"only {got} arrived"
            self.woken.wait(remaining)


@pytest.fixture
def adapters(account):
    made: list[BinanceAdapter] = []

    def make() -> BinanceAdapter:
        made.append(BinanceAdapter(BrokerAccount.objects.get(pk=account.pk)))
        return made[-1]

    yield make
    for adapter in made:
        adapter.stream_stop()


def limit_buy(cid: str = "c-1", qty: str = "0.01", price: str = "94000") -> BrokerOrderRequest:
    return BrokerOrderRequest(
        client_order_id=cid,
        symbol="BTC/USD",
        asset_class=AssetClass.CRYPTO,
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        quantity=D(qty),
        time_in_force=TimeInForce.GTC,
        price=D(price),
    )


def fills(updates: list[BrokerOrderUpdate]) -> list[tuple]:
    return [
        (
            u.client_order_id,
            u.fill.broker_fill_id,
            u.fill.quantity,
            u.fill.price,
            u.fill.fee,
            u.fill.liquidity,
        )
        for u in updates
        if u.kind is UpdateKind.FILL
    ]


def kinds(updates: list[BrokerOrderUpdate]) -> list[tuple[UpdateKind, str]]:
    return [(u.kind, u.client_order_id) for u in updates]


def count(kind: UpdateKind, n: int = 1):
    return lambda updates: sum(u.kind is kind for u in updates) >= n


def test_the_subscription_is_signed_over_the_sorted_parameters(adapters, fake):
    request = adapters().subscribe_request("req-1")
    params = request["params"]
    assert request["method"] == "userDataStream.subscribe.signature"
    assert sorted(params) == ["apiKey", "recvWindow", "signature", "timestamp"]
    payload = f"apiKey={KEY}&recvWindow={params['recvWindow']}&timestamp={params['timestamp']}"
    assert params["signature"] == sign(SECRET, payload)


def test_executions_arrive_as_updates_with_the_rest_fill_ids(adapters, fake):
    placer, worker = adapters(), Worker(adapters()).start()
    [accepted] = placer.place(limit_buy())
    oid = int(accepted.broker_order_id)
    assert worker.until(count(UpdateKind.ACCEPTED)) == [
        BrokerOrderUpdate(UpdateKind.ACCEPTED, "c-1", str(oid), worker.updates[-1].occurred_at)
    ]
    rest_calls = len(fake.requests)

    fake.fill(oid, "0.004", "93990.50")
    fake.fill(oid, "0.006", "93991.00")
    got = worker.until(count(UpdateKind.FILL, 2))

    first, second = fake.trades[-2]["id"], fake.trades[-1]["id"]
    assert fills(got) == [
        ("c-1", f"BTCUSDT:{first}", D("0.004"), D("93990.50"), D("0.000004"), "MAKER"),
        ("c-1", f"BTCUSDT:{second}", D("0.006"), D("93991.00"), D("0.000006"), "MAKER"),
    ]
    assert len(fake.requests) == rest_calls  # no REST polling while the stream is subscribed
    # the placer, polling over REST, names the same fills the same way
    assert [f[1] for f in fills(placer.poll_updates(timezone.now()))] == [f[1] for f in fills(got)]
    assert fill_id("BTCUSDT", first) == f"BTCUSDT:{first}"


def test_cancel_expiry_and_reject_end_the_orders(adapters, fake):
    placer, worker = adapters(), Worker(adapters()).start()
    oids = [int(placer.place(limit_buy(f"c-{n}"))[0].broker_order_id) for n in (1, 2, 3)]
    worker.until(count(UpdateKind.ACCEPTED, 3))

    placer.cancel(OrderRef("c-1", str(oids[0])))
    fake.expire(oids[1])
    fake.reject(oids[2], "INSUFFICIENT_BALANCES")
    got = worker.until(lambda u: len(u) >= 3)

    assert kinds(got) == [
        (UpdateKind.CANCELLED, "c-1"),
        (UpdateKind.EXPIRED, "c-2"),
        (UpdateKind.REJECTED, "c-3"),
    ]
    assert got[2].reason == "INSUFFICIENT_BALANCES"
    assert [u.broker_order_id for u in got] == [str(o) for o in oids]
    # the REST fallback does not report them a second time
    worker.adapter.stream_stop()
    assert worker.poll() == []


def test_a_cancel_replace_is_not_a_cancel_and_fills_after_it_keep_our_id(adapters, fake):
    placer, worker = adapters(), Worker(adapters()).start()
    placer.place(limit_buy())
    worker.until(count(UpdateKind.ACCEPTED))

    [replaced] = placer.replace(OrderRef("c-1"), OrderChange(price=D("93500")))
    new_oid = int(replaced.broker_order_id)
    fake.fill(new_oid, "0.01", "93500")
    got = worker.until(count(UpdateKind.FILL))

    assert UpdateKind.CANCELLED not in [u.kind for u in got]
    cancel = fake.orders[new_oid - 1]
    assert cancel["status"] == "CANCELED"
    assert fake.sent("POST", "/api/v3/order/cancelReplace")[0]["cancelNewClientOrderId"].startswith(
        REPLACE_CANCEL_PREFIX
    )
    [fill] = [u for u in got if u.kind is UpdateKind.FILL]
    assert (fill.client_order_id, fill.broker_order_id, fill.fill.quantity) == (
        "c-1",
        str(new_oid),
        D("0.01"),
    )


def test_a_fill_in_the_place_response_is_not_reported_again_by_the_stream(adapters, fake):
    streaming = Worker(adapters()).start()
    fake.fill_plan = [("0.004", "94000")]
    placed = streaming.adapter.place(limit_buy())
    assert [u.kind for u in placed] == [UpdateKind.ACCEPTED, UpdateKind.FILL]
    fake.fill(int(placed[0].broker_order_id), "0.006", "94000")

    got = streaming.until(count(UpdateKind.FILL))

    assert [f[2] for f in fills(got)] == [D("0.006")]  # the NEW and the first TRADE were known


def test_a_bad_signature_is_refused_and_fatal(adapters, account, fake):
    BrokerAccount.objects.filter(pk=account.pk).update(api_secret_encrypted="not-the-secret")
    adapter = adapters()
    woken = threading.Event()
    adapter.stream_start(woken.set)
    assert woken.wait(5)
    adapter._stream.join(5)

    with pytest.raises(BrokerFatal, match=r"refused the user data subscription \(-1022\): Signature"):
        adapter.poll_updates(timezone.now())
    with pytest.raises(BrokerFatal):
        adapter.stream_start(woken.set)  # sticks until the adapter is rebuilt
    assert fake.subscriptions == 0


def test_a_wrong_key_is_refused_with_binance_error_shape(adapters, account, fake):
    BrokerAccount.objects.filter(pk=account.pk).update(api_key_encrypted="other-key")
    adapter = adapters()
    adapter.stream_start(lambda: None)
    adapter._stream.join(5)
    with pytest.raises(BrokerFatal, match=r"\(-2015\): Invalid API-key"):
        adapter.poll_updates(timezone.now())


def test_a_dropped_stream_reconnects_and_the_catch_up_poll_misses_nothing(adapters, fake):
    placer, worker = adapters(), Worker(adapters()).start()
    oid = int(placer.place(limit_buy(qty="0.03"))[0].broker_order_id)
    worker.until(count(UpdateKind.ACCEPTED))

    fake.refuse_ws = True
    fake.drop_user_streams()
    worker.until(lambda _: not worker.adapter.stream_listening.is_set())
    fake.fill(oid, "0.01", "94000")  # sent while nobody listens: lost on the stream
    fake.refuse_ws = False
    # the next thing the worker hears is the new subscription; its first poll catches up over REST
    deadline = time.monotonic() + 5
    while fake.subscriptions < 2:
        assert worker.woken.wait(max(deadline - time.monotonic(), 0)), "no resubscription"
        worker.woken.clear()
    caught_up = worker.until(count(UpdateKind.FILL))
    fake.fill(oid, "0.02", "94001")
    streamed = worker.until(count(UpdateKind.FILL))

    assert [(f[2], f[3]) for f in fills(caught_up)] == [(D("0.01"), D("94000"))]
    assert [(f[2], f[3]) for f in fills(streamed)] == [(D("0.02"), D("94001"))]
    assert fills(worker.poll()) == []  # nothing twice


def test_while_the_stream_is_down_rest_polling_reports_fills(adapters, fake):
    placer, worker = adapters(), Worker(adapters()).start()
    oid = int(placer.place(limit_buy())[0].broker_order_id)
    worker.until(count(UpdateKind.ACCEPTED))
    fake.refuse_ws = True
    fake.drop_user_streams()
    worker.until(lambda _: not worker.adapter.stream_listening.is_set())

    fake.fill(oid, "0.01", "94000")
    got = worker.poll()

    assert [(f[0], f[2]) for f in fills(got)] == [("c-1", D("0.01"))]
    assert ("GET", "/api/v3/myTrades") in [(m, p) for m, p, _ in fake.requests]


def test_an_ended_subscription_is_renewed(adapters, fake):
    placer, worker = adapters(), Worker(adapters()).start()
    fake.terminate_user_streams()
    deadline = time.monotonic() + 5
    while fake.subscriptions < 2:
        assert worker.woken.wait(max(deadline - time.monotonic(), 0)), "not renewed"
        worker.woken.clear()
    worker.poll()
    placer.place(limit_buy())
    assert kinds(worker.until(count(UpdateKind.ACCEPTED))) == [(UpdateKind.ACCEPTED, "c-1")]


def test_the_client_answers_the_server_pings(adapters, fake):
    placer, worker = adapters(), Worker(adapters()).start()
    deadline = time.monotonic() + 5
    while not fake.pongs_received():
        assert time.monotonic() < deadline, "no pong"
        worker.woken.wait(0.05)  # pings are every 50 ms in this fake
    placer.place(limit_buy())
    worker.until(count(UpdateKind.ACCEPTED))
    assert fake.subscriptions == 1  # never dropped for a missing pong
