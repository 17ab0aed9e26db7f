"""The demo mode: the broker fakes behind fixed-port relays (the fake TWS on its own port), driven
like a market, serving the real adapters of the demo user's accounts that seed_demo creates. IB
goes the real way: adapter -> bridge (HTTP) -> gateway (ib_async) -> fake TWS, the gateway and its
bridge running in this process as in the IB adapter tests."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone

from brokers.domain.adapter import BrokerOrderUpdate
from brokers.ibkr.bridge import IbBridge
from brokers.ibkr.gateway import IbGateway
from brokers.management.commands.run_broker_fakes import (
    RELAYED,
    SERVICES,
    TWS,
    broker_fakes_start,
    demo_accounts_connect,
)
from brokers.models import BrokerAccount
from brokers.services import adapter_for, adapters_reset
from orders.domain.enums import OrderType, Side, TimeInForce
from orders.domain.validation import OrderRequest
from orders.models import Fill
from orders.services import Actor, order_apply_updates, order_cancel, order_place
from tests.fakes.demo import DEMO_CREDENTIALS, DEMO_IBKR, demo_fill_price, demo_quote, ib_commission

pytestmark = pytest.mark.django_db

D = Decimal


IB_TOKEN = "demo-test-ib-bridge-token"


@pytest.fixture
def fakes(settings):
    """The demo fakes on free ports, the adapters pointed at them as the demo settings do, and
    the IB gateway with its bridge in this process (``run_ib_gateway`` in the demo)."""
    running = broker_fakes_start(ports=dict.fromkeys(SERVICES, 0))
    settings.DEMO_BROKERS = True
    for name, url in running.urls.items():
        setattr(settings, name, url)
    settings.DEMO_BROKER_PORTS = {**settings.DEMO_BROKER_PORTS, TWS: running.ibkr.port}
    gateway = IbGateway(connect_timeout=3, request_timeout=3, reconnect_min=0.05, reconnect_max=0.2).start()
    bridge = IbBridge(gateway, token=IB_TOKEN).start()
    settings.IB_GATEWAY_URL, settings.IB_GATEWAY_TOKEN = bridge.url, IB_TOKEN
    settings.IB_GATEWAY_STREAM_WAIT_SECONDS = 2
    adapters_reset()
    yield running
    adapters_reset()
    bridge.stop()
    gateway.stop()
    running.stop()


@pytest.fixture
def demo(fakes):
    """seed_demo with the demo brokers on; the accounts connected as run_broker_fakes does."""
    call_command("seed_demo", stdout=io.StringIO())
    user = get_user_model().objects.get(username="demo")
    results = demo_accounts_connect()
    accounts = {
        a.broker_name: a for a in BrokerAccount.objects.filter(user=user).exclude(broker_name="paper")
    }
    return user, accounts, results


def test_the_relays_serve_on_their_own_ports(fakes):
    ports = {name: relay.port for name, relay in fakes.relays.items()}
    assert set(ports) == set(RELAYED)
    assert len({*ports.values(), fakes.ibkr.port}) == len(SERVICES)
    assert fakes.urls["ALPACA_TRADING_URL"] == f"http://127.0.0.1:{ports['alpaca']}"
    assert fakes.urls["SCHWAB_TOKEN_URL"] == f"http://127.0.0.1:{ports['schwab']}/v1/oauth/token"
    assert fakes.alpaca.url != fakes.urls["ALPACA_TRADING_URL"]  # the fake itself is elsewhere


def test_seed_demo_adds_one_account_per_fake_broker_idempotently(demo, fakes):
    user, accounts, results = demo
    # then the demo user has an Alpaca, a Binance, a Schwab and an IB account with credentials
    assert sorted(accounts) == ["alpaca", "binance", "ibkr", "schwab"]
    assert all(a.has_credentials and a.sandbox_mode for a in accounts.values())
    assert {a.account_id for a in accounts.values()} == {c.account_id for c in DEMO_CREDENTIALS}
    # and each answered through its real adapter with the fake's balances (Schwab via its token,
    # IB through the gateway to the fake TWS, whose address the account stores)
    assert {(r.account.broker_name, r.status.value) for r in results} == {
        ("alpaca", "CONNECTED"),
        ("binance", "CONNECTED"),
        ("schwab", "CONNECTED"),
        ("ibkr", "CONNECTED"),
    }
    stored = json.loads(BrokerAccount.objects.get(pk=accounts["ibkr"].pk).api_key_encrypted.reveal())
    assert stored == {"host": "127.0.0.1", "port": fakes.ibkr.port, "client_id": 1}
    assert fakes.ibkr.accounts == (DEMO_IBKR.account_id,)
    cash = {
        a.broker_name: a.cash for a in BrokerAccount.objects.filter(pk__in=[a.pk for a in accounts.values()])
    }
    assert cash == {"alpaca": D("100000"), "binance": D("100000"), "schwab": D("50000"), "ibkr": D("100000")}
    # and running seed_demo again adds nothing
    before = sorted(BrokerAccount.objects.filter(user=user).values_list("pk", flat=True))
    call_command("seed_demo", stdout=io.StringIO())
    assert sorted(BrokerAccount.objects.filter(user=user).values_list("pk", flat=True)) == before


def test_the_demo_ib_account_follows_the_fake_tws_port(settings):
    settings.DEMO_BROKERS = True
    settings.DEMO_BROKER_PORTS = {**settings.DEMO_BROKER_PORTS, TWS: 7701}
    call_command("seed_demo", stdout=io.StringIO())
    account = BrokerAccount.objects.get(broker_name="ibkr", account_id=DEMO_IBKR.account_id)
    # when the demo ports move (TRADEMASTER_DEMO_BROKERS_PORT) and the demo is seeded again
    settings.DEMO_BROKER_PORTS = {**settings.DEMO_BROKER_PORTS, TWS: 7801}
    call_command("seed_demo", stdout=io.StringIO())
    # then the same account now points at the new port
    [again] = BrokerAccount.objects.filter(broker_name="ibkr")
    assert again.pk == account.pk
    assert json.loads(again.api_key_encrypted.reveal()) == {"host": "127.0.0.1", "port": 7801, "client_id": 1}


def test_seed_demo_without_demo_brokers_adds_none(settings):
    settings.DEMO_BROKERS = False
    call_command("seed_demo", stdout=io.StringIO())
    user = get_user_model().objects.get(username="demo")
    assert set(BrokerAccount.objects.filter(user=user).values_list("broker_name", flat=True)) == {"paper"}


def test_a_binance_market_order_fills_at_the_market_price(demo, fakes, set_mid):
    user, accounts, _ = demo
    set_mid("BTC/USD", "91234.56")
    fakes.market.step()  # the fake now quotes the simulated market
    # when the demo user buys through the OMS on the demo Binance account
    placed = order_place(
        user=user,
        request=OrderRequest(
            symbol="BTC/USD",
            side=Side.BUY,
            order_type=OrderType.MARKET,
            quantity=D("0.01"),
            time_in_force=TimeInForce.GTC,
        ),
        broker_id=accounts["binance"].pk,
        actor=Actor.for_user(user, "test"),
    )
    # then the real adapter brings back the fill at the market's price
    order = placed.order
    assert (order.status, order.filled_quantity) == ("FILLED", D("0.01"))
    assert [f.price for f in Fill.objects.filter(order=order)] == [D("91234.56")]
    assert fakes.binance.orders[int(order.broker_order_id)]["status"] == "FILLED"


def test_a_resting_binance_limit_fills_when_the_market_crosses_it(demo, fakes, set_mid):
    user, accounts, _ = demo
    account = accounts["binance"]
    set_mid("BTC/USD", "95000.00")
    fakes.market.step()
    placed = order_place(
        user=user,
        request=OrderRequest(
            symbol="BTC/USD",
            side=Side.BUY,
            order_type=OrderType.LIMIT,
            quantity=D("0.02"),
            price=D("94000.00"),
            time_in_force=TimeInForce.GTC,
        ),
        broker_id=account.pk,
        actor=Actor.for_user(user, "test"),
    )
    assert placed.order.status == "ACCEPTED"
    # while the market stays above the limit, nothing fills
    assert fakes.market.step() == 0
    assert (
        order_apply_updates(account=account, updates=adapter_for(account).poll_updates(timezone.now()))
        is None
    )
    # when the market falls through it
    set_mid("BTC/USD", "93900.00")
    assert fakes.market.step() == 1
    order = order_apply_updates(account=account, updates=adapter_for(account).poll_updates(timezone.now()))
    # then the feed's poll brings the fill at the limit
    assert order is not None and order.pk == placed.order.pk
    assert (order.status, order.filled_quantity) == ("FILLED", D("0.02"))
    assert [f.price for f in Fill.objects.filter(order=order)] == [D("94000.00")]


def test_alpaca_orders_fill_at_the_quote_through_the_oms(demo, fakes, set_mid):
    user, accounts, _ = demo
    account = accounts["alpaca"]
    set_mid("AAPL", "190.00")
    fakes.market.step()  # the fake's market data now quotes the simulated market
    # a market order and a limit below the market rest at the fake until the market is looked at
    market = oms_place(
        user, account, symbol="AAPL", side=Side.BUY, order_type=OrderType.MARKET, quantity=D(10)
    )
    limit = oms_place(
        user,
        account,
        symbol="AAPL",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        quantity=D(10),
        price=D("189.50"),
    )
    assert (market.status, limit.status) == ("ACCEPTED", "ACCEPTED")
    # when the driver looks: the market order fills at the ask, the limit still rests
    assert fakes.market.step() == 1
    order_apply_updates(account=account, updates=poll_until(account, has_fill))
    market.refresh_from_db()
    assert (market.status, market.average_fill_price) == ("FILLED", D("190.02"))
    # when the market falls through the limit
    set_mid("AAPL", "189.40")
    assert fakes.market.step() == 1
    order_apply_updates(account=account, updates=poll_until(account, has_fill))
    limit.refresh_from_db()
    assert (limit.status, limit.average_fill_price) == ("FILLED", D("189.50"))


def test_schwab_market_order_fills_through_the_oms(demo, fakes, set_mid):
    user, accounts, _ = demo
    account = accounts["schwab"]
    set_mid("AAPL", "200.00")
    fakes.market.step()  # the fake's market data now quotes the simulated market
    placed = oms_place(
        user, account, symbol="AAPL", side=Side.BUY, order_type=OrderType.MARKET, quantity=D(10)
    )
    assert placed.status == "ACCEPTED", placed.status_reason
    assert fakes.market.step() == 1
    # filled at the fake at once (not when next read), so the streamer's cue goes out now
    assert fakes.schwab.orders[int(placed.broker_order_id)]["status"] == "FILLED"
    order_apply_updates(account=account, updates=poll_until(account, has_fill))
    placed.refresh_from_db()
    assert (placed.status, placed.filled_quantity, placed.average_fill_price) == (
        "FILLED",
        D(10),
        D("200.02"),
    )
    # the token came from the seeded refresh token: no browser login
    stored = json.loads(BrokerAccount.objects.get(pk=account.pk).api_secret_encrypted.reveal())
    assert stored["refresh_token"] == "demo-schwab-refresh-token"


def poll_until(
    account: BrokerAccount, done: Callable[[list[BrokerOrderUpdate]], bool], timeout: float = 10.0
) -> list[BrokerOrderUpdate]:
    """Poll the account's adapter (as the feed worker does) until ``done`` holds for what came."""
    got: list[BrokerOrderUpdate] = []
    pause = threading.Event()
    deadline = time.monotonic() + timeout
    while not done(got):
        assert time.monotonic() < deadline, f"updates so far: {got}"
        got.extend(adapter_for(account).poll_updates(timezone.now()))
        pause.wait(0.05)
    return got


def has_fill(updates: list[BrokerOrderUpdate]) -> bool:
    return any(u.fill for u in updates)


def oms_place(user, account, **fields):
    return order_place(
        user=user,
        request=OrderRequest(time_in_force=TimeInForce.DAY, **fields),
        broker_id=account.pk,
        actor=Actor.for_user(user, "test"),
    ).order


def test_an_ib_market_order_fills_at_the_quote_through_the_real_path(demo, fakes, set_mid):
    user, accounts, _ = demo
    account = accounts["ibkr"]
    set_mid("NVDA", "120.00")  # a stock the fake TWS did not know: the driver adds it
    fakes.market.step()
    # when the demo user buys through the OMS on the demo IB account
    placed = oms_place(
        user, account, symbol="NVDA", side=Side.BUY, order_type=OrderType.MARKET, quantity=D("300")
    )
    # then it went through the gateway to the fake TWS, where it rests until the market is looked at
    assert placed.status == "ACCEPTED"
    [sent] = fakes.ibkr.placed_for(placed.client_order_id)
    assert (sent["action"], sent["orderType"], sent["totalQuantity"]) == ("BUY", "MKT", "300")
    assert fakes.market.step() == 1
    # and the feed's poll brings the fill at the ask, with IB's commission
    order = order_apply_updates(account=account, updates=poll_until(account, has_fill))
    assert order is not None and order.pk == placed.pk
    assert (order.status, order.filled_quantity) == ("FILLED", D("300"))
    assert [(f.price, f.fee) for f in Fill.objects.filter(order=order)] == [(D("120.02"), D("1.50"))]
    assert fakes.ibkr.order_by_ref(placed.client_order_id).status == "Filled"
    assert fakes.ibkr.positions["NVDA"][0] == D("300")
    assert fakes.market.step() == 0  # nothing is filled twice


def test_a_resting_ib_limit_fills_when_the_mid_crosses_it(demo, fakes, set_mid):
    user, accounts, _ = demo
    account = accounts["ibkr"]
    set_mid("AAPL", "190.00")
    fakes.market.step()
    placed = oms_place(
        user,
        account,
        symbol="AAPL",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        quantity=D("10"),
        price=D("189.50"),
    )
    assert placed.status == "ACCEPTED"
    # while the market stays above the limit, nothing fills
    assert fakes.market.step() == 0
    assert fakes.ibkr.order_by_ref(placed.client_order_id).status == "Submitted"
    # when the mid falls through it
    set_mid("AAPL", "189.40")
    assert fakes.market.step() == 1
    order = order_apply_updates(account=account, updates=poll_until(account, has_fill))
    # then the fill comes at the limit (the market traded through a resting order)
    assert order is not None and order.pk == placed.pk
    assert (order.status, order.filled_quantity) == ("FILLED", D("10"))
    assert [(f.price, f.fee) for f in Fill.objects.filter(order=order)] == [(D("189.50"), D("1.00"))]


def test_an_ib_stop_triggers_when_the_mid_crosses_it_and_cancelled_orders_stay(demo, fakes, set_mid):
    user, accounts, _ = demo
    account = accounts["ibkr"]
    set_mid("MSFT", "400.00")
    fakes.market.step()
    stop = oms_place(
        user,
        account,
        symbol="MSFT",
        side=Side.SELL,
        order_type=OrderType.STOP,
        quantity=D("5"),
        stop_price=D("395.00"),
    )
    cancelled = oms_place(
        user,
        account,
        symbol="MSFT",
        side=Side.SELL,
        order_type=OrderType.LIMIT,
        quantity=D("5"),
        price=D("420.00"),
    )
    assert fakes.market.step() == 0
    assert order_cancel(user=user, order_id=cancelled.pk, actor=Actor.for_user(user, "test")).status == (
        "CANCELLED"
    )
    # when the mid falls through the stop (and rises through the cancelled limit)
    set_mid("MSFT", "394.00")
    assert fakes.market.step() == 1
    order = order_apply_updates(account=account, updates=poll_until(account, has_fill))
    # then the stop sold at the bid; the cancelled order was left alone
    assert order is not None and order.pk == stop.pk
    assert [f.price for f in Fill.objects.filter(order=order)] == [D("393.96")]
    set_mid("MSFT", "421.00")
    assert fakes.market.step() == 0
    assert fakes.ibkr.order_by_ref(cancelled.client_order_id).status == "Cancelled"


def test_ib_commission_is_half_a_cent_a_share_at_least_a_dollar():
    assert ib_commission(D("10")) == D("1.00")
    assert ib_commission(D("300")) == D("1.50")
    assert ib_commission(D("333")) == D("1.67")


@pytest.mark.parametrize(
    ("side", "order_type", "mid", "limit", "stop", "resting", "price"),
    [
        ("buy", "market", "100", None, None, False, "100.01"),
        ("SELL", "MARKET", "100", None, None, False, "99.99"),
        ("buy", "limit", "100", "100.00", None, False, None),
        ("buy", "limit", "100", "100.01", None, False, "100.01"),
        ("buy", "limit", "100", "101.00", None, False, "100.01"),
        ("buy", "limit", "100", "101.00", None, True, "101.00"),
        ("sell", "limit", "100", "99.00", None, False, "99.99"),
        ("sell", "limit", "100", "99.00", None, True, "99.00"),
        ("sell", "limit", "100", "101.00", None, True, None),
        ("buy", "stop", "100", None, "101", False, None),
        ("buy", "stop", "101.5", None, "101", True, "101.52"),
        ("sell", "stop", "100", None, "101", True, "99.99"),
        ("buy", "trailing_stop", "100", None, None, True, None),
    ],
)
def test_demo_fill_price(side, order_type, mid, limit, stop, resting, price):
    got = demo_fill_price(
        side=side,
        order_type=order_type,
        mid=D(mid),
        limit=None if limit is None else D(limit),
        stop=None if stop is None else D(stop),
        resting=resting,
    )
    assert got == (None if price is None else D(price))


def test_demo_quote_is_at_least_a_cent_wide():
    assert demo_quote(D("1.00")) == (D("0.99"), D("1.01"))
    assert demo_quote(D("95000.00")) == (D("94990.50"), D("95009.50"))
