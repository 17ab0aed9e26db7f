"""The Binance adapter over real HTTP against the loopback fake (tests/fakes/binance.py)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from brokers.adapters.binance import BinanceAdapter, from_binance_symbol, sign, to_binance_symbol
from brokers.domain.adapter import (
    BrokerFatal,
    BrokerOrderRequest,
    BrokerOrderStatus,
    BrokerRejected,
    BrokerRetryable,
    BrokerUnknownOutcome,
    Health,
    OrderChange,
    OrderRef,
    UpdateKind,
)
from brokers.models import BrokerAccount
from brokers.services import adapter_for, adapters_reset
from orders.domain.enums import AssetClass, OrderType, Side, TimeInForce
from tests.fakes.binance import FakeBinance

pytestmark = pytest.mark.django_db

D = Decimal
KEY, SECRET = "fake-api-key-123", "fake-secret-456"
NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def fake():
    server = FakeBinance(KEY, SECRET)
    server.url = server.start()
    yield server
    server.stop()


@pytest.fixture
def account(trader, fake, settings):
    settings.BINANCE_REST_URL = fake.url
    settings.BINANCE_TIMEOUT_SECONDS = "0.5"
    settings.BROKER_ADAPTERS = {
        **settings.BROKER_ADAPTERS,
        "binance": "brokers.adapters.binance.BinanceAdapter",
    }
    adapters_reset()
    return BrokerAccount.objects.create(
        user=trader,
        broker_name="binance",
        account_id="BIN-1",
        api_key_encrypted=KEY,
        api_secret_encrypted=SECRET,
        sandbox_mode=True,
    )


@pytest.fixture
def adapter(account) -> BinanceAdapter:
    # read back so the credentials come out of the encrypted fields as they would in production
    return adapter_for(BrokerAccount.objects.get(pk=account.pk))


def order(cid: str = "c-1", **kw) -> BrokerOrderRequest:
    values = {
        "client_order_id": cid,
        "symbol": "BTC/USD",
        "asset_class": AssetClass.CRYPTO,
        "side": Side.BUY,
        "order_type": OrderType.LIMIT,
        "quantity": D("0.01"),
        "time_in_force": TimeInForce.GTC,
        "price": D("94000.00"),
    }
    return BrokerOrderRequest(**{**values, **kw})


# --- signing, symbols, settings ------------------------------------------------------------------
def test_signature_matches_the_reference_test_vector():
    secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
    payload = (
        "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
        "&recvWindow=5000&timestamp=1499827319559"
    )
    assert sign(secret, payload) == "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"


def test_symbols_map_both_ways():
    assert to_binance_symbol("BTC/USD") == "BTCUSDT"
    assert to_binance_symbol("ETH/BTC") == "ETHBTC"
    assert from_binance_symbol("BTCUSDT") == "BTC/USD"
    assert from_binance_symbol("ETHBTC", "ETH", "BTC") == "ETH/BTC"


def test_url_defaults_to_testnet_in_sandbox_and_live_otherwise(trader, settings):
    del settings.BINANCE_REST_URL
    sandbox = BrokerAccount(user=trader, broker_name="binance", account_id="x", sandbox_mode=True)
    live = BrokerAccount(user=trader, broker_name="binance", account_id="y", sandbox_mode=False)
    assert BinanceAdapter(sandbox).base_url == "https://testnet.binance.vision"
    assert BinanceAdapter(live).base_url == "https://api.binance.com"


# --- place ------------------------------------------------------------------------------------------
def test_market_order_fills_with_the_full_response_fills(adapter, fake):
    fake.fill_plan = [("0.004", "95000.00"), ("0.006", "95001.50")]

    updates = adapter.place(
        order("m-1", order_type=OrderType.MARKET, price=None, time_in_force=TimeInForce.DAY)
    )

    assert [u.kind for u in updates] == [UpdateKind.ACCEPTED, UpdateKind.FILL, UpdateKind.FILL]
    assert {u.client_order_id for u in updates} == {"m-1"}
    fills = [u.fill for u in updates[1:]]
    assert [(f.quantity, f.price, f.fee) for f in fills] == [
        (D("0.004"), D("95000.00"), D("0.00000400")),
        (D("0.006"), D("95001.50"), D("0.00000600")),
    ]
    assert [f.broker_fill_id for f in fills] == ["BTCUSDT:5001", "BTCUSDT:5002"]
    sent = fake.sent("POST", "/api/v3/order")[0]
    assert sent["symbol"] == "BTCUSDT"
    assert sent["type"] == "MARKET"
    assert sent["quantity"] == "0.01"
    assert sent["newClientOrderId"] == "m-1"
    assert sent["newOrderRespType"] == "FULL"
    assert "timeInForce" not in sent
    assert sent["recvWindow"] == "5000"


def test_limit_order_rests_and_sends_price_and_tif(adapter, fake):
    updates = adapter.place(order("l-1", time_in_force=TimeInForce.IOC, price=D("94000.10")))

    sent = fake.sent("POST", "/api/v3/order")[0]
    assert (sent["type"], sent["timeInForce"], sent["price"]) == ("LIMIT", "IOC", "94000.1")
    # IOC with nothing filled ends EXPIRED at Binance
    assert [u.kind for u in updates] == [UpdateKind.ACCEPTED, UpdateKind.EXPIRED]


def test_partial_fill_leaves_the_order_open(adapter, fake):
    fake.fill_plan = [("0.004", "94000.00")]

    updates = adapter.place(order("p-1"))

    assert [u.kind for u in updates] == [UpdateKind.ACCEPTED, UpdateKind.FILL]
    state = adapter.get_order("p-1")
    assert state.status == BrokerOrderStatus.OPEN
    assert (state.quantity, state.filled_quantity, state.average_fill_price) == (
        D("0.01"),
        D("0.004"),
        D(94000),
    )


def test_stop_limit_maps_to_stop_loss_limit(adapter, fake):
    adapter.place(order("s-1", order_type=OrderType.STOP_LIMIT, stop_price=D("93000.00"), side=Side.SELL))

    sent = fake.sent("POST", "/api/v3/order")[0]
    assert (sent["type"], sent["stopPrice"], sent["price"], sent["side"]) == (
        "STOP_LOSS_LIMIT",
        "93000",
        "94000",
        "SELL",
    )


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        (
            {"quantity": D("0.000001")},
            "Filter failure: LOT_SIZE: quantity 0.000001 is below the minimum 0.00001",
        ),
        ({"quantity": D("0.000015")}, "Filter failure: LOT_SIZE: quantity 0.000015 is not a multiple"),
        ({"price": D("94000.005")}, "Filter failure: PRICE_FILTER: price 94000.005 is not a multiple"),
        (
            {"quantity": D("0.00001"), "price": D("1000")},
            "Filter failure: NOTIONAL: notional 0.01000 is below",
        ),
        ({"time_in_force": TimeInForce.DAY}, "Binance does not support time in force DAY"),
        ({"order_type": OrderType.TRAILING_STOP}, "Binance does not support TRAILING_STOP orders"),
    ],
)
def test_violations_are_rejected_before_sending(adapter, fake, kw, reason):
    with pytest.raises(BrokerRejected) as exc:
        adapter.place(order("f-1", **kw))

    assert exc.value.message.startswith(reason)
    assert fake.sent("POST", "/api/v3/order") == []


def test_broker_reject_carries_the_binance_message(adapter, fake):
    with pytest.raises(BrokerRejected) as exc:
        adapter.place(order("big", quantity=D("5"), price=D("94000")))

    assert exc.value.message == "Account has insufficient balance for requested action."
    assert exc.value.code == "BINANCE_-2010"
    assert fake.orders == {}


@pytest.mark.parametrize("status", [429, 418])
def test_rate_limit_is_retryable_with_the_advised_delay(adapter, fake, status):
    adapter.rules("BTCUSDT")
    fake.inject(status, {"code": -1003, "msg": "Too many requests."}, {"Retry-After": "7"})

    with pytest.raises(BrokerRetryable) as exc:
        adapter.place(order())

    assert exc.value.retry_after == 7
    assert "Too many requests." in exc.value.message
    assert fake.orders == {}


def test_wrong_secret_is_fatal(account, fake):
    account.api_secret_encrypted = "not-the-secret"
    account.save()
    adapter = BinanceAdapter(BrokerAccount.objects.get(pk=account.pk))

    with pytest.raises(BrokerFatal) as exc:
        adapter.open_orders()

    assert "Signature for this request is not valid." in exc.value.message
    assert "check the API key" in exc.value.message


def test_bad_api_key_is_fatal(account, fake):
    account.api_key_encrypted = "someone-else"
    account.save()
    adapter = BinanceAdapter(BrokerAccount.objects.get(pk=account.pk))

    with pytest.raises(BrokerFatal) as exc:
        adapter.account()

    assert "Invalid API-key, IP, or permissions for action." in exc.value.message


def test_missing_credentials_are_fatal_and_nothing_is_sent(account, fake):
    account.api_key_encrypted = ""
    account.save()
    adapter = BinanceAdapter(BrokerAccount.objects.get(pk=account.pk))

    with pytest.raises(BrokerFatal):
        adapter.open_orders()
    assert fake.requests == []


def test_clock_skew_outside_recv_window_is_retryable(adapter, fake):
    fake.clock_offset_ms = 60_000

    with pytest.raises(BrokerRetryable) as exc:
        adapter.open_orders()

    assert "outside of the recvWindow" in exc.value.message


def test_timeout_is_an_unknown_outcome_resolved_by_get_order(adapter, fake):
    adapter.rules("BTCUSDT")
    fake.delay = 1.0

    with pytest.raises(BrokerUnknownOutcome):
        adapter.place(order("t-1"))

    fake.delay = 0
    state = adapter.get_order("t-1")
    assert state.client_order_id == "t-1"
    assert state.status == BrokerOrderStatus.OPEN


def test_server_error_is_an_unknown_outcome(adapter, fake):
    adapter.rules("BTCUSDT")
    fake.inject(503, {"code": -1016, "msg": "Service unavailable."})

    with pytest.raises(BrokerUnknownOutcome):
        adapter.place(order())


# --- cancel / get / open orders -----------------------------------------------------------------
def test_cancel_by_client_order_id(adapter, fake):
    placed = adapter.place(order("x-1"))

    updates = adapter.cancel(OrderRef("x-1"))

    assert [u.kind for u in updates] == [UpdateKind.CANCELLED]
    assert updates[0].broker_order_id == placed[0].broker_order_id
    assert fake.sent("DELETE", "/api/v3/order")[0]["origClientOrderId"] == "x-1"
    assert adapter.get_order("x-1").status == BrokerOrderStatus.CANCELLED


def test_cancel_of_an_order_placed_elsewhere_finds_its_symbol(adapter, account, fake):
    adapter.place(order("x-2"))
    fresh = BinanceAdapter(BrokerAccount.objects.get(pk=account.pk))

    assert [u.kind for u in fresh.cancel(OrderRef("x-2"))] == [UpdateKind.CANCELLED]


def test_cancel_of_a_filled_order_is_rejected(adapter, fake):
    adapter.place(order("x-3", order_type=OrderType.MARKET, price=None))

    with pytest.raises(BrokerRejected) as exc:
        adapter.cancel(OrderRef("x-3"))
    assert exc.value.message == "Unknown order sent."


def test_get_order_of_unknown_id_is_none(adapter, fake):
    adapter.place(order("known"))

    assert adapter.get_order("never-sent") is None


def test_open_orders_are_mapped(adapter, fake):
    adapter.place(order("o-1"))
    adapter.place(order("o-2", side=Side.SELL, price=D("96000")))
    adapter.place(order("o-3", order_type=OrderType.MARKET, price=None))

    states = adapter.open_orders()

    assert [(s.client_order_id, s.symbol, s.side, s.status) for s in states] == [
        ("o-1", "BTC/USD", Side.BUY, BrokerOrderStatus.OPEN),
        ("o-2", "BTC/USD", Side.SELL, BrokerOrderStatus.OPEN),
    ]
    assert all(isinstance(s.quantity, Decimal) for s in states)


# --- account, positions, quote, health --------------------------------------------------------------
def test_account_and_positions_from_balances(adapter, fake):
    info = adapter.account()

    assert info.cash == D("100000")
    assert info.buying_power == D("100000")
    assert info.total_value == D("100000") + D("0.5") * D("95000.00")
    assert [(p.symbol, p.quantity) for p in adapter.positions()] == [("BTC/USD", D("0.5"))]


def test_quote_and_health(adapter, fake):
    q = adapter.quote("BTC/USD")

    assert (q.bid, q.ask, q.last) == (D("94999.99"), D("95000.01"), D("95000.00"))
    assert adapter.health().status == Health.CONNECTED


def test_health_down_when_unreachable(adapter, fake):
    fake.stop()

    report = adapter.health()

    assert report.status == Health.DOWN


# --- poll_updates -------------------------------------------------------------------------------------
def test_poll_reports_later_fills_once_with_trade_ids(adapter, fake):
    fake.fill_plan = [("0.004", "94000.00")]
    adapter.place(order("r-1"))
    order_id = next(iter(fake.orders))
    fake.fill(order_id, "0.006", "94000.00")

    updates = adapter.poll_updates(NOW)

    assert [
        (u.kind, u.client_order_id, u.fill.broker_fill_id, u.fill.quantity, u.fill.liquidity) for u in updates
    ] == [(UpdateKind.FILL, "r-1", "BTCUSDT:5002", D("0.006"), "MAKER")]
    assert adapter.poll_updates(NOW) == []


def test_poll_reports_orders_cancelled_at_the_broker(adapter, fake):
    adapter.place(order("r-2"))
    next(iter(fake.orders.values()))["status"] = "CANCELED"

    updates = adapter.poll_updates(NOW)

    assert [(u.kind, u.client_order_id) for u in updates] == [(UpdateKind.CANCELLED, "r-2")]
    assert adapter.poll_updates(NOW) == []


# --- replace ---------------------------------------------------------------------------------------------
def test_replace_sends_cancel_replace_with_the_unfilled_remainder(adapter, fake):
    fake.fill_plan = [("0.004", "94000.00")]
    adapter.place(order("rp-1"))
    old_id = next(iter(fake.orders))

    updates = adapter.replace(OrderRef("rp-1"), OrderChange(quantity=D("0.02"), price=D("94100.00")))

    assert [u.kind for u in updates] == [UpdateKind.REPLACED]
    assert updates[0].change.quantity == D("0.02")
    assert updates[0].change.price == D("94100.00")
    assert updates[0].change.time_in_force == TimeInForce.GTC
    sent = fake.sent("POST", "/api/v3/order/cancelReplace")[0]
    assert (sent["cancelReplaceMode"], sent["cancelOrigClientOrderId"], sent["newClientOrderId"]) == (
        "STOP_ON_FAILURE",
        "rp-1",
        "rp-1",
    )
    assert (sent["quantity"], sent["price"], sent["timeInForce"]) == ("0.016", "94100", "GTC")
    assert fake.orders[old_id]["status"] == "CANCELED"
    assert updates[0].broker_order_id != str(old_id)
    state = adapter.get_order("rp-1")
    assert state.broker_order_id == updates[0].broker_order_id
    assert (state.quantity, state.filled_quantity, state.average_fill_price) == (
        D("0.02"),
        D("0.004"),
        D(94000),
    )


def test_replace_of_a_filled_order_is_rejected_without_sending(adapter, fake):
    adapter.place(order("rp-2", order_type=OrderType.MARKET, price=None))

    with pytest.raises(BrokerRejected):
        adapter.replace(OrderRef("rp-2"), OrderChange(price=D("1")))
    assert fake.sent("POST", "/api/v3/order/cancelReplace") == []


def test_replace_whose_new_order_fails_reports_the_cancel(adapter, fake):
    adapter.place(order("rp-3"))

    updates = adapter.replace(OrderRef("rp-3"), OrderChange(quantity=D("5")))

    assert [(u.kind, u.reason) for u in updates] == [
        (UpdateKind.REPLACE_REJECTED, "Account has insufficient balance for requested action."),
        (UpdateKind.CANCELLED, "Account has insufficient balance for requested action."),
    ]


def test_unknown_symbol_is_rejected_with_the_binance_message(adapter, fake):
    with pytest.raises(BrokerRejected) as exc:
        adapter.place(order("u-1", symbol="DOGE/USD"))

    assert exc.value.message == "Invalid symbol."
    assert fake.sent("POST", "/api/v3/order") == []


def test_filter_failure_at_the_broker_is_rejected_with_its_message(adapter, fake):
    # a MARKET order's notional is checked by Binance against its average price, not locally
    with pytest.raises(BrokerRejected) as exc:
        adapter.place(order("n-1", order_type=OrderType.MARKET, price=None, quantity=D("0.00001")))

    assert exc.value.message == "Filter failure: NOTIONAL"
    assert exc.value.code == "BINANCE_-1013"
