"""The Alpaca trade_updates stream (``stream_start(wakeup)``) against the loopback fake: real
WebSocket and HTTP, no mocks.

``placer`` plays the web process (places and replaces over REST); ``worker`` plays the feed
worker: a second adapter on the same account that only streams and polls.
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest
from django.utils import timezone

from brokers.adapters.alpaca import AlpacaAdapter
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
from tests.fakes.alpaca import FakeAlpaca

pytestmark = pytest.mark.django_db

D = Decimal


@pytest.fixture
def fake():
    server = FakeAlpaca().start()
    server.fill_on_place = False
    server.fill_on_read = False  # fills happen when the test says so (execute), not on reads
    yield server
    server.stop()


@pytest.fixture
def account(trader, fake, settings):
    settings.ALPACA_TRADING_URL = fake.url
    settings.ALPACA_STREAM_URL = fake.stream_start()
    settings.ALPACA_TIMEOUT_SECONDS = 2
    settings.BROKER_STREAM_BACKOFF_SECONDS = 0.05
    settings.BROKER_STREAM_BACKOFF_MAX_SECONDS = 0.2
    created = BrokerAccount.objects.create(
        user=trader,
        broker_name="alpaca",
        account_id="PA3TEST0001",
        api_key_encrypted=fake.key,
        api_secret_encrypted=fake.secret,
        sandbox_mode=True,
    )
    return BrokerAccount.objects.get(pk=created.pk)  # credentials sealed as in production


class Worker:
    """A streaming adapter and the wakeup it signals."""

    def __init__(self, adapter: AlpacaAdapter) -> None:
        self.adapter = adapter
        self.woken = threading.Event()

    def start(self) -> Worker:
        self.adapter.stream_start(self.woken.set)
        assert self.adapter.stream_listening.wait(5)
        self.adapter.poll_updates(timezone.now())  # the catch-up poll every connection starts with
        return self

    def until(self, done, timeout: float = 5) -> list[BrokerOrderUpdate]:
        """Poll, then again whenever the stream wakes us, until ``done(updates)``."""
        got: list[BrokerOrderUpdate] = []
        deadline = time.monotonic() + timeout
        while True:
            self.woken.clear()
            got += self.adapter.poll_updates(timezone.now())
            if done(got):
                return got
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"only {got} arrived"
            self.woken.wait(remaining)

    def wait_for(self, condition, timeout: float = 5) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.woken.wait(max(deadline - time.monotonic(), 0)), "timed out"
            self.woken.clear()


@pytest.fixture
def adapters(account):
    made: list[AlpacaAdapter] = []

    def make() -> AlpacaAdapter:
        made.append(AlpacaAdapter(BrokerAccount.objects.get(pk=account.pk)))
        return made[-1]

    yield make
    for adapter in made:
        adapter.stream_stop()


def limit_buy(
    cid: str = "tm-1", symbol: str = "MSFT", qty: str = "10", price: str = "411"
) -> BrokerOrderRequest:
    return BrokerOrderRequest(
        client_order_id=cid,
        symbol=symbol,
        asset_class=AssetClass.EQUITY,
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        quantity=D(qty),
        time_in_force=TimeInForce.DAY,
        price=D(price),
    )


def fills(updates: list[BrokerOrderUpdate]) -> list[tuple]:
    return [(u.client_order_id, f.broker_fill_id, f.quantity, f.price) for u in updates if (f := u.fill)]


def count(kind: UpdateKind, n: int = 1):
    return lambda updates: sum(u.kind is kind for u in updates) >= n


def test_stream_delivers_partial_then_full_fill_without_rest_polling(adapters, fake):
    placer, worker = adapters(), Worker(adapters()).start()
    fake.fills["MSFT"] = [(D("4"), D("410.00")), (D("6"), D("410.10"))]
    [accepted] = placer.place(limit_buy())
    oid = accepted.broker_order_id
    assert [(u.kind, u.client_order_id) for u in worker.until(count(UpdateKind.ACCEPTED))] == [
        (UpdateKind.ACCEPTED, "tm-1")
    ]
    rest_calls = len(fake.requests)

    fake.execute("tm-1")
    fake.execute("tm-1")
    got = worker.until(count(UpdateKind.FILL, 2))

    assert fills(got) == [
        ("tm-1", f"{oid}:4", D("4"), D("410.00")),
        ("tm-1", f"{oid}:10", D("6"), D("410.10")),
    ]
    assert len(fake.requests) == rest_calls  # no REST polling while the stream listens
    assert fake.subscribers() == 1


def test_stream_and_rest_report_the_same_fill_ids(adapters, fake):
    placer, worker = adapters(), Worker(adapters()).start()
    fake.fills["MSFT"] = [(D("10"), D("410.25"))]
    placer.place(limit_buy())
    fake.execute("tm-1")
    streamed = worker.until(count(UpdateKind.FILL))

    polled = placer.poll_updates(timezone.now())  # never streamed: REST

    assert fills(polled) == [f for f in fills(streamed)]


def test_wrong_keys_are_fatal(adapters, fake):
    fake.key = "PKOTHER"
    adapter = adapters()
    woken = threading.Event()
    adapter.stream_start(woken.set)
    adapter._stream.join(5)

    assert woken.is_set()
    with pytest.raises(BrokerFatal, match="Alpaca refused the stream authentication"):
        adapter.poll_updates(timezone.now())
    with pytest.raises(BrokerFatal):
        adapter.stream_start(woken.set)  # sticks until the adapter is rebuilt


def test_without_stream_start_poll_updates_polls_rest(adapters, fake):
    placer = adapters()
    fake.fills["MSFT"] = [(D("4"), D("410"))]
    placer.place(limit_buy())
    fake.execute("tm-1")
    assert [f[2] for f in fills(placer.poll_updates(timezone.now()))] == [D("4")]
    assert ("GET", "/v2/orders") in [(m, p) for m, p, _ in fake.requests]


def test_a_stream_that_cannot_connect_falls_back_to_rest(adapters, settings, fake):
    settings.ALPACA_STREAM_URL = "ws://127.0.0.1:1/stream"  # nothing listens there
    placer, worker = adapters(), Worker(adapters())
    worker.adapter.stream_start(worker.woken.set)
    assert worker.woken.wait(5)  # told that the stream is down
    fake.fills["MSFT"] = [(D("4"), D("410"))]
    placer.place(limit_buy())
    fake.execute("tm-1")

    got = worker.until(count(UpdateKind.FILL))

    assert [f[2] for f in fills(got)] == [D("4")]
    assert not worker.adapter.stream_listening.is_set()


def test_a_dropped_stream_reconnects_and_the_catch_up_poll_misses_nothing(adapters, fake):
    placer, worker = adapters(), Worker(adapters()).start()
    fake.fills["MSFT"] = [(D("3"), D("410")), (D("3"), D("410.5")), (D("4"), D("411"))]
    placer.place(limit_buy())
    fake.execute("tm-1")
    assert [f[2] for f in fills(worker.until(count(UpdateKind.FILL)))] == [D("3")]

    fake.refuse_streams = True
    fake.drop_streams()
    worker.wait_for(lambda: not worker.adapter.stream_listening.is_set())
    fake.execute("tm-1")  # sent while nobody listens: lost on the stream
    fake.refuse_streams = False
    worker.wait_for(lambda: fake.sessions == 2)
    caught_up = worker.until(count(UpdateKind.FILL))
    fake.execute("tm-1")
    streamed = worker.until(count(UpdateKind.FILL))

    assert [(f[2], f[3]) for f in fills(caught_up)] == [(D("3"), D("410.5"))]
    assert [(f[2], f[3]) for f in fills(streamed)] == [(D("4"), D("411"))]
    assert fills(worker.adapter.poll_updates(timezone.now())) == []  # nothing twice


def test_a_replacement_made_elsewhere_keeps_reporting_our_client_id(adapters, fake):
    placer, worker = adapters(), Worker(adapters()).start()
    placer.place(limit_buy())
    worker.until(count(UpdateKind.ACCEPTED))

    placer.replace(OrderRef("tm-1"), OrderChange(price=D("410.5")))
    fake.fills["MSFT"] = [(D("10"), D("410.5"))]
    fake.execute("tm-1-r1")
    got = worker.until(count(UpdateKind.FILL))

    new_id = fake.order_by_client_id("tm-1-r1")["id"]
    assert fills(got) == [("tm-1", f"{new_id}:10", D("10"), D("410.5"))]
    assert UpdateKind.CANCELLED not in [u.kind for u in got]  # the superseded order is not a cancel


def test_a_cancel_and_an_expiry_arrive_once(adapters, fake):
    placer, worker = adapters(), Worker(adapters()).start()
    placer.place(limit_buy())
    worker.until(count(UpdateKind.ACCEPTED))

    placer.cancel(OrderRef("tm-1"))
    got = worker.until(count(UpdateKind.CANCELLED))

    assert [(u.kind, u.client_order_id) for u in got] == [(UpdateKind.CANCELLED, "tm-1")]
    worker.adapter.stream_stop()
    assert worker.adapter.poll_updates(timezone.now()) == []  # REST does not report it again
