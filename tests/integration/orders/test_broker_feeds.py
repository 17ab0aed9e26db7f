"""The order-update feed worker end to end: orders placed through orders.services on Alpaca and
Binance accounts (loopback fakes, real HTTP and WebSocket), filled later at the fake, brought
into the OMS by orders.feeds running in a thread."""

from __future__ import annotations

import threading
import time
from decimal import Decimal as D

import pytest

from brokers.models import BrokerAccount, ConnectionStatus
from orders.domain.enums import OrderType, TimeInForce
from orders.feeds import BrokerFeeds, FeedSettings
from orders.models import Fill, Order, Position
from orders.services import Actor, order_place
from tests.builders import order_request
from tests.fakes.alpaca import FakeAlpaca
from tests.fakes.binance import FakeBinance

# the feed threads use their own database connections: the data must be committed (and the
# seeded rows restored afterwards)
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

BINANCE_KEY, BINANCE_SECRET = "fake-api-key-123", "fake-secret-456"


@pytest.fixture
def alpaca_fake():
    fake = FakeAlpaca().start()
    fake.fill_on_place = False
    fake.fill_on_read = False
    fake.stream_start()
    yield fake
    fake.stop()


@pytest.fixture
def binance_fake():
    fake = FakeBinance(BINANCE_KEY, BINANCE_SECRET)
    fake.url = fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def brokers(settings, trader, alpaca_fake, binance_fake):
    """The trader's Alpaca and Binance accounts, pointed at the fakes."""
    settings.ALPACA_TRADING_URL = settings.ALPACA_DATA_URL = alpaca_fake.url
    alpaca_fake.set_quote("MSFT", D("410.95"), D("411.05"))
    settings.ALPACA_STREAM_URL = alpaca_fake.stream_url
    settings.ALPACA_TIMEOUT_SECONDS = 2
    settings.BINANCE_REST_URL = binance_fake.url
    settings.BINANCE_WS_API_URL = binance_fake.ws_url
    settings.BINANCE_TIMEOUT_SECONDS = "2"
    settings.BROKER_STREAM_BACKOFF_SECONDS = 0.05
    settings.BROKER_STREAM_BACKOFF_MAX_SECONDS = 0.2
    alpaca = BrokerAccount.objects.create(
        user=trader,
        broker_name="alpaca",
        account_id="PA3TEST0001",
        label="Alpaca paper",
        api_key_encrypted=alpaca_fake.key,
        api_secret_encrypted=alpaca_fake.secret,
        sandbox_mode=True,
        buying_power=D("200000"),
        cash=D("100000"),
        total_value=D("100000"),
    )
    binance = BrokerAccount.objects.create(
        user=trader,
        broker_name="binance",
        account_id="BIN-1",
        label="Binance testnet",
        api_key_encrypted=BINANCE_KEY,
        api_secret_encrypted=BINANCE_SECRET,
        sandbox_mode=True,
        margin_account=False,
        day_trading_policy="off",
        buying_power=D("100000"),
        cash=D("100000"),
        total_value=D("100000"),
    )
    return {"alpaca": alpaca, "binance": binance}


class Running:
    """A BrokerFeeds supervisor running in a thread; every applied batch is recorded."""

    def __init__(self, config: FeedSettings) -> None:
        self.applied: list[tuple[int, list]] = []
        self.feeds = BrokerFeeds(config=config, on_applied=lambda a, u: self.applied.append((a.pk, u)))
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.feeds.run, args=(self.stop,), daemon=True)

    def db(self, work, *args, **kwargs):
        """Run ``work`` on the database while the feeds are off it (SQLite takes one at a time)."""
        with self.feeds.db_lock:
            return work(*args, **kwargs)

    def wait(self, condition, timeout: float = 10) -> None:
        """Check ``condition`` every 20 ms until true; fail at the deadline."""
        deadline = time.monotonic() + timeout
        while not self.db(condition):
            assert time.monotonic() < deadline, "condition not met in time"
            self.stop.wait(0.02)


def config(poll_seconds: float = 0.1) -> FeedSettings:
    return FeedSettings(
        poll_seconds=poll_seconds, refresh_seconds=0.05, backoff_seconds=0.05, backoff_max_seconds=0.2
    )


@pytest.fixture
def running():
    made: list[Running] = []

    def start(poll_seconds: float = 0.1) -> Running:
        made.append(Running(config(poll_seconds)))
        made[-1].thread.start()
        return made[-1]

    yield start
    for run in made:
        run.stop.set()
        run.thread.join(15)
        assert not run.thread.is_alive()
        assert all(not f.is_alive() for f in run.feeds.feeds.values())


def place(trader, account, **kw) -> Order:
    placed = order_place(
        user=trader, request=order_request(**kw), actor=Actor.for_user(trader), broker_id=account.pk
    )
    return placed.order


def resting_alpaca(trader, account) -> Order:
    order = place(
        trader,
        account,
        symbol="MSFT",
        order_type=OrderType.LIMIT,
        quantity="10",
        time_in_force=TimeInForce.GTC,
        price="411.00",
    )
    assert order.status == "ACCEPTED", order.status_reason
    return order


def resting_binance(trader, account) -> Order:
    order = place(
        trader,
        account,
        symbol="BTC/USD",
        order_type=OrderType.LIMIT,
        quantity="0.01",
        time_in_force=TimeInForce.GTC,
        price="94000",
    )
    assert order.status == "ACCEPTED", order.status_reason
    return order


def filled_with_position(order: Order, quantity: D):
    def check() -> bool:
        order.refresh_from_db()
        position = Position.objects.filter(
            user_id=order.user_id, broker_id=order.broker_id, symbol=order.symbol
        )
        return order.status == "FILLED" and position.filter(quantity=quantity).exists()

    return check


def test_later_fills_at_both_brokers_reach_orders_and_positions(
    trader, brokers, alpaca_fake, binance_fake, running
):
    a_order = resting_alpaca(trader, brokers["alpaca"])
    b_order = resting_binance(trader, brokers["binance"])
    run = running()
    # both streams subscribed (the feeds started them)
    run.wait(lambda: alpaca_fake.subscribers() == 1 and binance_fake.subscriptions == 1)

    alpaca_fake.fills["MSFT"] = [(D("4"), D("410.50")), (D("6"), D("410.90"))]
    alpaca_fake.execute(a_order.client_order_id)
    b_id = binance_fake.order_by_client_id(b_order.client_order_id)["orderId"]
    binance_fake.fill(b_id, "0.004", "93990.00")
    run.wait(lambda: Fill.objects.filter(order__in=[a_order, b_order]).count() == 2)
    run.db(a_order.refresh_from_db)
    run.db(b_order.refresh_from_db)
    assert (a_order.status, a_order.filled_quantity) == ("PARTIALLY_FILLED", D("4"))
    assert (b_order.status, b_order.filled_quantity) == ("PARTIALLY_FILLED", D("0.004"))

    alpaca_fake.execute(a_order.client_order_id)
    binance_fake.fill(b_id, "0.006", "93995.00")
    run.wait(filled_with_position(a_order, D("10")))
    run.wait(filled_with_position(b_order, D("0.01")))

    assert a_order.average_fill_price == D("410.74")  # (4 x 410.50 + 6 x 410.90) / 10
    b_fills = run.db(lambda: sorted(Fill.objects.filter(order=b_order).values_list("quantity", flat=True)))
    assert b_fills == [D("0.004"), D("0.006")]
    assert run.db(Fill.objects.filter(order=a_order).count) == 2
    # on_applied follows the fills' transaction and the account refresh
    run.wait(lambda: {pk for pk, _ in run.applied} == {brokers["alpaca"].pk, brokers["binance"].pk})


def test_without_streams_rest_polling_brings_the_fills(
    trader, brokers, alpaca_fake, binance_fake, running, settings
):
    settings.ALPACA_STREAM_URL = "ws://127.0.0.1:1/stream"  # no stream: REST polling only
    settings.BINANCE_WS_API_URL = "ws://127.0.0.1:1/ws-api/v3"
    a_order = resting_alpaca(trader, brokers["alpaca"])
    run = running(poll_seconds=0.1)

    alpaca_fake.fills["MSFT"] = [(D("10"), D("410.00"))]
    alpaca_fake.execute(a_order.client_order_id)
    run.wait(filled_with_position(a_order, D("10")))

    assert alpaca_fake.subscribers() == 0
    assert ("GET", "/v2/orders") in [(m, p) for m, p, _ in alpaca_fake.requests]


def test_an_account_whose_broker_is_down_is_marked_down_while_the_other_keeps_going(
    trader, brokers, alpaca_fake, binance_fake, running
):
    b_order = resting_binance(trader, brokers["binance"])
    run = running()
    run.wait(lambda: alpaca_fake.subscribers() == 1 and binance_fake.subscriptions == 1)

    alpaca_fake.stop()  # Alpaca is gone: REST and stream
    run.wait(lambda: BrokerAccount.objects.get(pk=brokers["alpaca"].pk).connection_status == "DOWN")
    b_id = binance_fake.order_by_client_id(b_order.client_order_id)["orderId"]
    binance_fake.fill(b_id, "0.01", "94000")
    run.wait(filled_with_position(b_order, D("0.01")))

    alpaca = run.db(lambda: BrokerAccount.objects.get(pk=brokers["alpaca"].pk))
    binance = run.db(lambda: BrokerAccount.objects.get(pk=brokers["binance"].pk))
    assert alpaca.connection_status == ConnectionStatus.DOWN
    assert binance.connection_status == ConnectionStatus.CONNECTED
    assert run.feeds.feeds[alpaca.pk].stats.errors >= 1
    assert run.feeds.feeds[alpaca.pk].is_alive()  # still trying, backing off


def test_a_broker_that_comes_back_is_marked_connected_again(trader, brokers, binance_fake, running):
    run = running()
    run.wait(lambda: binance_fake.subscriptions == 1)
    run.db(
        BrokerAccount.objects.filter(pk=brokers["binance"].pk).update, connection_status=ConnectionStatus.DOWN
    )
    feed = run.feeds.feeds[brokers["binance"].pk]
    feed._failing = True  # as if this feed had marked it
    feed.wake.set()
    run.wait(lambda: BrokerAccount.objects.get(pk=brokers["binance"].pk).connection_status == "CONNECTED")


def test_new_accounts_are_picked_up_and_deactivated_ones_dropped(
    trader, brokers, alpaca_fake, binance_fake, running
):
    BrokerAccount.objects.filter(pk=brokers["binance"].pk).update(is_active=False)
    run = running()
    run.wait(lambda: set(run.feeds.feeds) == {brokers["alpaca"].pk})
    assert run.db(lambda: BrokerAccount.objects.filter(user=trader, broker_name="paper").count()) == 3

    run.db(BrokerAccount.objects.filter(pk=brokers["binance"].pk).update, is_active=True)
    run.wait(lambda: set(run.feeds.feeds) == {brokers["alpaca"].pk, brokers["binance"].pk})
    run.wait(lambda: binance_fake.subscriptions == 1)

    alpaca_feed = run.feeds.feeds[brokers["alpaca"].pk]
    run.db(BrokerAccount.objects.filter(pk=brokers["alpaca"].pk).update, is_active=False)
    run.wait(lambda: brokers["alpaca"].pk not in run.feeds.feeds)
    alpaca_feed.join(10)
    assert not alpaca_feed.is_alive()
    run.wait(lambda: alpaca_fake.subscribers() == 0)  # its stream was closed too


def test_new_credentials_restart_the_feed_on_a_new_adapter(
    trader, brokers, alpaca_fake, binance_fake, running
):
    # given a feed streaming with the first key pair
    run = running()
    run.wait(lambda: brokers["alpaca"].pk in run.feeds.feeds and alpaca_fake.sessions == 1)
    first = run.feeds.feeds[brokers["alpaca"].pk]
    # when the web process stores rotated credentials (the broker accepts only the new pair)
    alpaca_fake.key, alpaca_fake.secret = "PKROTATED9", "rotated-secret"
    run.db(
        BrokerAccount.objects.filter(pk=brokers["alpaca"].pk).update,
        api_key_encrypted="PKROTATED9",
        api_secret_encrypted="rotated-secret",
    )
    # then the worker stops the old feed and streams again with the new pair
    run.wait(lambda: run.feeds.feeds.get(brokers["alpaca"].pk) not in (None, first))
    first.join(10)
    assert not first.is_alive()
    run.wait(lambda: alpaca_fake.sessions == 2)
