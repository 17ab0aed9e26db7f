"""The Alpaca adapter against a fake Alpaca REST server on loopback (real HTTP, no mocks)."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from cryptography.fernet import Fernet
from django.utils import timezone

from brokers.adapters.alpaca import LIVE_URL, PAPER_URL, AlpacaAdapter
from brokers.domain.adapter import (
    BrokerError,
    BrokerFatal,
    BrokerOrderRequest,
    BrokerOrderStatus,
    BrokerPosition,
    BrokerRejected,
    BrokerRetryable,
    BrokerUnknownOutcome,
    Health,
    OrderChange,
    OrderRef,
    UpdateKind,
)
from brokers.models import BrokerAccount
from brokers.services import adapter_for, adapters_reset, broker_account_sync
from orders.domain.enums import AssetClass, OrderType, Side, TimeInForce
from orders.services import Actor, order_apply_updates, order_place
from tests.builders import order_request
from tests.fakes.alpaca import FakeAlpaca
from trademaster.crypto import Sealed

pytestmark = pytest.mark.django_db

D = Decimal


@pytest.fixture
def fake():
    server = FakeAlpaca().start()
    yield server
    server.stop()


@pytest.fixture
def alpaca_account(trader, fake):
    """Read back from the database, so the credentials are sealed as in production."""
    created = BrokerAccount.objects.create(
        user=trader,
        broker_name="alpaca",
        account_id="PA3TEST0001",
        label="Alpaca paper",
        api_key_encrypted=fake.key,
        api_secret_encrypted=fake.secret,
        sandbox_mode=True,
    )
    return BrokerAccount.objects.get(pk=created.pk)


@pytest.fixture
def adapter(settings, fake, alpaca_account) -> AlpacaAdapter:
    settings.ALPACA_TRADING_URL = fake.url
    settings.ALPACA_DATA_URL = fake.url
    settings.ALPACA_TIMEOUT_SECONDS = 2
    settings.BROKER_ADAPTERS = {**settings.BROKER_ADAPTERS, "alpaca": "brokers.adapters.alpaca.AlpacaAdapter"}
    adapters_reset()
    return adapter_for(alpaca_account)


def order(
    cid: str = "tm-1",
    symbol: str = "AAPL",
    qty: str = "10",
    order_type: OrderType = OrderType.MARKET,
    tif: TimeInForce = TimeInForce.DAY,
    side: Side = Side.BUY,
    asset_class: AssetClass = AssetClass.EQUITY,
    **prices: Decimal,
) -> BrokerOrderRequest:
    return BrokerOrderRequest(
        client_order_id=cid,
        symbol=symbol,
        asset_class=asset_class,
        side=side,
        order_type=order_type,
        quantity=D(qty),
        time_in_force=tif,
        **prices,
    )


def kinds(updates) -> list[UpdateKind]:
    return [u.kind for u in updates]


# --- registration and configuration -----------------------------------------------------------
def test_adapter_for_builds_the_alpaca_adapter_on_the_configured_url(adapter, fake):
    assert isinstance(adapter, AlpacaAdapter)
    assert adapter.base_url == fake.url


def test_default_urls_follow_sandbox_mode(settings, trader):
    if hasattr(settings, "ALPACA_TRADING_URL"):
        del settings.ALPACA_TRADING_URL
    paper = BrokerAccount(user=trader, broker_name="alpaca", account_id="P", sandbox_mode=True)
    live = BrokerAccount(user=trader, broker_name="alpaca", account_id="L", sandbox_mode=False)
    assert AlpacaAdapter(paper).base_url == PAPER_URL
    assert AlpacaAdapter(live).base_url == LIVE_URL


def test_capabilities_cover_equities_and_crypto_with_native_types():
    caps = AlpacaAdapter.capabilities
    assert caps.supports(AssetClass.EQUITY, OrderType.TRAILING_STOP, TimeInForce.DAY) is None
    assert caps.supports(AssetClass.CRYPTO, OrderType.LIMIT, TimeInForce.GTC) is None
    assert caps.native_replace is True


# --- place --------------------------------------------------------------------------------------
def test_place_market_order_fills_at_once_and_sends_alpaca_fields(adapter, fake):
    fake.fills["AAPL"] = [(D("10"), D("187.25"))]

    updates = adapter.place(order())

    assert kinds(updates) == [UpdateKind.ACCEPTED, UpdateKind.FILL]
    alpaca_order = fake.order_by_client_id("tm-1")
    assert {u.broker_order_id for u in updates} == {alpaca_order["id"]}
    assert {u.client_order_id for u in updates} == {"tm-1"}
    fill = updates[1].fill
    assert (fill.quantity, fill.price, fill.fee) == (D("10"), D("187.25"), D(0))
    assert fill.broker_fill_id == f"{alpaca_order['id']}:10"
    method, path, body = fake.requests[-1]
    assert (method, path) == ("POST", "/v2/orders")
    assert body == {
        "symbol": "AAPL",
        "qty": "10",
        "side": "buy",
        "type": "market",
        "time_in_force": "day",
        "client_order_id": "tm-1",
    }


def test_place_limit_sends_prices_as_strings_and_rests(adapter, fake):
    updates = adapter.place(
        order(order_type=OrderType.LIMIT, tif=TimeInForce.GTC, qty="2.5", price=D("101.10"), side=Side.SELL)
    )

    assert kinds(updates) == [UpdateKind.ACCEPTED]
    body = fake.requests[-1][2]
    assert (body["qty"], body["limit_price"], body["side"], body["time_in_force"]) == (
        "2.5",
        "101.1",
        "sell",
        "gtc",
    )
    [state] = adapter.open_orders()
    assert (state.client_order_id, state.status, state.quantity, state.filled_quantity) == (
        "tm-1",
        BrokerOrderStatus.OPEN,
        D("2.5"),
        D(0),
    )
    assert state.side is Side.SELL


def test_trailing_stop_sends_trail_price(adapter, fake):
    adapter.place(order(order_type=OrderType.TRAILING_STOP, side=Side.SELL, trail_amount=D("1.50")))
    body = fake.requests[-1][2]
    assert (body["type"], body["trail_price"]) == ("trailing_stop", "1.5")


def test_insufficient_buying_power_is_rejected_with_alpacas_reason(adapter, fake):
    with pytest.raises(BrokerRejected) as err:
        adapter.place(order(order_type=OrderType.LIMIT, qty="10000", price=D("500")))
    assert err.value.message == "insufficient buying power"
    assert err.value.code == "ALPACA_40310000"
    assert fake.orders == {}


def test_duplicate_client_order_id_is_rejected(adapter, fake):
    adapter.place(order(order_type=OrderType.LIMIT, price=D("100")))
    with pytest.raises(BrokerRejected, match="client_order_id must be unique") as err:
        adapter.place(order(order_type=OrderType.LIMIT, price=D("100")))
    assert err.value.code == "ALPACA_40010001"
    assert len(fake.orders) == 1


def test_sub_penny_limit_price_gets_alpacas_422(adapter, fake):
    with pytest.raises(BrokerRejected, match="sub-penny"):
        adapter.place(order(order_type=OrderType.LIMIT, price=D("100.005")))
    assert fake.orders == {}


def test_crypto_stop_order_is_refused_before_sending(adapter, fake):
    with pytest.raises(BrokerRejected, match="Alpaca crypto does not take STOP orders"):
        adapter.place(
            order(
                symbol="BTC/USD",
                asset_class=AssetClass.CRYPTO,
                order_type=OrderType.STOP,
                tif=TimeInForce.GTC,
                stop_price=D("60000"),
            )
        )
    with pytest.raises(BrokerRejected, match="time in force DAY"):
        adapter.place(order(symbol="BTC/USD", asset_class=AssetClass.CRYPTO))
    assert fake.requests == []


def test_crypto_market_order_keeps_the_slash_symbol(adapter, fake):
    fake.fills["BTC/USD"] = [(D("0.015"), D("64123.5"))]
    updates = adapter.place(
        order(symbol="BTC/USD", asset_class=AssetClass.CRYPTO, qty="0.015", tif=TimeInForce.GTC)
    )
    assert updates[1].fill.quantity == D("0.015")
    assert adapter.get_order("tm-1").symbol == "BTC/USD"


# --- errors -------------------------------------------------------------------------------------
def test_rate_limit_is_retryable_after_the_advised_reset(adapter, fake):
    reset = int(time.time()) + 7
    fake.fail_next(
        429,
        {"code": 42910000, "message": "rate limit exceeded"},
        {"X-Ratelimit-Limit": "200", "X-Ratelimit-Remaining": "0", "X-Ratelimit-Reset": str(reset)},
    )
    with pytest.raises(BrokerRetryable) as err:
        adapter.place(order())
    assert 6 <= err.value.retry_after <= 7
    assert err.value.code == "RATE_LIMITED"
    assert fake.orders == {}


def test_wrong_secret_is_fatal_with_a_clear_message(adapter, fake):
    fake.secret = "rotated"
    with pytest.raises(BrokerFatal, match="Alpaca refused the API key") as err:
        adapter.account()
    assert err.value.code == "UNAUTHORIZED"


def test_credentials_are_sealed_at_rest_and_revealed_only_for_the_headers(adapter, fake, alpaca_account):
    assert isinstance(alpaca_account.api_key_encrypted, Sealed)
    stored = BrokerAccount.objects.filter(pk=alpaca_account.pk).values_list("api_secret_encrypted", flat=True)
    assert fake.secret not in stored.get().token
    adapter.account()  # the fake answers 401 unless both headers carry the plaintext
    assert fake.requests[-1][:2] == ("GET", "/v2/account")


def test_undecryptable_credentials_are_fatal(settings, alpaca_account, fake):
    settings.ALPACA_TRADING_URL = fake.url
    settings.ENCRYPTION_KEYS = [Fernet.generate_key().decode()]  # the stored key was rotated out
    with pytest.raises(BrokerFatal, match="cannot be decrypted") as err:
        AlpacaAdapter(alpaca_account).account()
    assert err.value.code == "CREDENTIALS_UNREADABLE"
    assert fake.requests == []


def test_missing_credentials_are_fatal_without_a_request(settings, fake, trader):
    settings.ALPACA_TRADING_URL = fake.url
    bare = BrokerAccount.objects.create(user=trader, broker_name="alpaca", account_id="NOKEY")
    with pytest.raises(BrokerFatal, match="no Alpaca API key pair"):
        AlpacaAdapter(bare).account()
    assert fake.requests == []


def test_timeout_on_place_is_unknown_then_resolved_by_client_order_id(
    settings, adapter, fake, alpaca_account
):
    settings.ALPACA_TIMEOUT_SECONDS = 0.3
    adapter = AlpacaAdapter(alpaca_account)
    fake.fills["AAPL"] = [(D("10"), D("187.25"))]
    fake.delay_next(5)

    with pytest.raises(BrokerUnknownOutcome):
        adapter.place(order(cid="tm-slow"))

    state = adapter.get_order("tm-slow")
    assert state is not None
    assert (state.status, state.filled_quantity, state.average_fill_price) == (
        BrokerOrderStatus.FILLED,
        D("10"),
        D("187.25"),
    )
    # the fill happened while the reply was lost: the next poll reports it
    updates = adapter.poll_updates(timezone.now())
    assert kinds(updates) == [UpdateKind.FILL]
    assert (updates[0].fill.quantity, updates[0].fill.price) == (D("10"), D("187.25"))


def test_server_error_on_place_is_unknown_and_on_read_is_retryable(adapter, fake):
    fake.fail_next(503, {"message": "service unavailable"})
    with pytest.raises(BrokerUnknownOutcome):
        adapter.place(order())
    fake.fail_next(500, {"message": "internal server error"})
    with pytest.raises(BrokerRetryable):
        adapter.open_orders()


def test_unreachable_broker_is_retryable(settings, alpaca_account, fake):
    fake.stop()
    settings.ALPACA_TRADING_URL = fake.url
    with pytest.raises(BrokerRetryable, match="cannot reach Alpaca"):
        AlpacaAdapter(alpaca_account).account()


# --- get_order, cancel, polling -----------------------------------------------------------------
def test_get_order_of_an_unknown_client_id_is_none(adapter, fake):
    assert adapter.get_order("never-sent") is None
    assert fake.requests[-1][:2] == ("GET", "/v2/orders:by_client_order_id")


def test_partial_fill_then_fill_over_polls(adapter, fake):
    fake.fills["MSFT"] = [(D("4"), D("410.00")), (D("6"), D("410.10"))]

    placed = adapter.place(order(symbol="MSFT", order_type=OrderType.LIMIT, price=D("411")))
    first = adapter.poll_updates(timezone.now())
    second = adapter.poll_updates(timezone.now())

    assert kinds(placed) == [UpdateKind.ACCEPTED, UpdateKind.FILL]
    assert (placed[1].fill.quantity, placed[1].fill.price) == (D("4"), D("410.00"))
    assert kinds(first) == [UpdateKind.FILL]
    assert (first[0].fill.quantity, first[0].fill.price) == (D("6"), D("410.10"))
    assert placed[1].fill.broker_fill_id != first[0].fill.broker_fill_id
    assert second == []
    state = adapter.get_order("tm-1")
    assert (state.status, state.filled_quantity) == (BrokerOrderStatus.FILLED, D("10"))


def test_cancel_reports_cancelled_and_a_filled_order_cannot_be_cancelled(adapter, fake):
    [accepted] = adapter.place(order(order_type=OrderType.LIMIT, price=D("100")))
    updates = adapter.cancel(OrderRef("tm-1", accepted.broker_order_id))
    assert kinds(updates) == [UpdateKind.CANCELLED]
    assert fake.order_by_client_id("tm-1")["status"] == "canceled"
    assert adapter.open_orders() == []

    fake.fills["AAPL"] = [(D("10"), D("187"))]
    adapter.place(order(cid="tm-2"))
    with pytest.raises(BrokerRejected, match='order is already in "filled" state'):
        adapter.cancel(OrderRef("tm-2"))  # no broker id: found by client order id first


def test_poll_reports_a_cancel_made_elsewhere(adapter, fake):
    [accepted] = adapter.place(order(order_type=OrderType.LIMIT, price=D("100")))
    fake.cancel(accepted.broker_order_id)
    updates = adapter.poll_updates(timezone.now())
    assert kinds(updates) == [UpdateKind.CANCELLED]
    assert adapter.poll_updates(timezone.now()) == []


# --- replace ------------------------------------------------------------------------------------
def test_replace_patches_and_keeps_reporting_our_client_order_id(adapter, fake):
    [accepted] = adapter.place(order(order_type=OrderType.LIMIT, price=D("100")))
    old_id = accepted.broker_order_id

    updates = adapter.replace(OrderRef("tm-1", old_id), OrderChange(quantity=D("15"), price=D("101.5")))

    new = fake.order_by_client_id("tm-1-r1")
    assert fake.requests[-1] == (
        "PATCH",
        f"/v2/orders/{old_id}",
        {"client_order_id": "tm-1-r1", "qty": "15", "limit_price": "101.5"},
    )
    assert fake.orders[old_id]["status"] == "replaced"
    assert new["replaces"] == old_id
    [replaced] = updates
    assert (replaced.kind, replaced.client_order_id, replaced.broker_order_id) == (
        UpdateKind.REPLACED,
        "tm-1",
        new["id"],
    )
    assert replaced.change == OrderChange(
        quantity=D("15"), price=D("101.5"), stop_price=None, time_in_force=TimeInForce.DAY
    )
    state = adapter.get_order("tm-1")
    assert (state.client_order_id, state.broker_order_id, state.quantity) == ("tm-1", new["id"], D("15"))
    assert [s.client_order_id for s in adapter.open_orders()] == ["tm-1"]

    fake.fills["AAPL"] = [(D("15"), D("101.4"))]
    [fill] = adapter.poll_updates(timezone.now())
    assert (fill.kind, fill.client_order_id, fill.fill.quantity, fill.fill.price) == (
        UpdateKind.FILL,
        "tm-1",
        D("15"),
        D("101.4"),
    )


def test_cancel_after_replace_cancels_the_replacement_even_with_the_old_id(adapter, fake):
    [accepted] = adapter.place(order(order_type=OrderType.LIMIT, price=D("100")))
    adapter.replace(OrderRef("tm-1", accepted.broker_order_id), OrderChange(price=D("99")))
    adapter.replace(OrderRef("tm-1", accepted.broker_order_id), OrderChange(price=D("98")))

    [cancelled] = adapter.cancel(OrderRef("tm-1", accepted.broker_order_id))

    assert (cancelled.kind, cancelled.client_order_id) == (UpdateKind.CANCELLED, "tm-1")
    assert fake.order_by_client_id("tm-1-r2")["status"] == "canceled"
    assert fake.order_by_client_id("tm-1-r2")["limit_price"] == "98"


def test_replace_of_a_partially_filled_order_is_refused_without_a_patch(adapter, fake):
    fake.fills["AAPL"] = [(D("4"), D("100"))]
    adapter.place(order(order_type=OrderType.LIMIT, price=D("100")))
    with pytest.raises(BrokerRejected, match="partially filled") as err:
        adapter.replace(OrderRef("tm-1"), OrderChange(price=D("99")))
    assert err.value.code == "REPLACE_PARTIALLY_FILLED"
    assert [m for m, _, _ in fake.requests].count("PATCH") == 0


def test_replace_of_a_cancelled_order_gets_alpacas_422(adapter, fake):
    [accepted] = adapter.place(order(order_type=OrderType.LIMIT, price=D("100")))
    fake.cancel(accepted.broker_order_id)
    with pytest.raises(BrokerRejected, match='order is already in "canceled" state'):
        adapter.replace(OrderRef("tm-1", accepted.broker_order_id), OrderChange(price=D("99")))


# --- positions, account, health -----------------------------------------------------------------
def test_positions_are_signed_and_crypto_symbols_normalised(adapter, fake):
    common = {"asset_id": "a", "exchange": "NASDAQ", "cost_basis": "0"}
    fake.positions = [
        {
            **common,
            "symbol": "AAPL",
            "asset_class": "us_equity",
            "qty": "12",
            "side": "long",
            "avg_entry_price": "180.5",
        },
        {
            **common,
            "symbol": "TSLA",
            "asset_class": "us_equity",
            "qty": "-3",
            "side": "short",
            "avg_entry_price": "250",
        },
        {
            **common,
            "symbol": "BTCUSD",
            "asset_class": "crypto",
            "qty": "0.5",
            "side": "long",
            "avg_entry_price": "60000.01",
        },
    ]
    assert adapter.positions() == [
        BrokerPosition("AAPL", D("12"), D("180.5")),
        BrokerPosition("TSLA", D("-3"), D("250")),
        BrokerPosition("BTC/USD", D("0.5"), D("60000.01")),
    ]


def test_account_reads_cash_buying_power_and_equity(adapter, fake):
    info = adapter.account()
    assert (info.cash, info.buying_power, info.total_value) == (D("100000"), D("200000"), D("100000"))
    assert all(type(v) is Decimal for v in (info.cash, info.buying_power, info.total_value))


def test_health_reads_the_clock(adapter, fake):
    report = adapter.health()
    assert report.status is Health.CONNECTED
    assert report.detail == "market open"
    assert fake.requests[-1][:2] == ("GET", "/v2/clock")


def test_quotes_come_from_the_market_data_api_for_stocks_and_crypto(adapter, fake):
    fake.set_quote("AAPL", D("150.01"), D("150.03"), size=D("200"))
    fake.set_quote("BTC/USD", D("94000.5"), D("94010.25"), size=D("0.5"))

    stock, coin = adapter.quote("AAPL"), adapter.quote("BTC/USD")

    assert (stock.bid, stock.ask, stock.bid_size, stock.mid) == (
        D("150.01"),
        D("150.03"),
        D("200"),
        D("150.02"),
    )
    assert (coin.bid, coin.ask, coin.ask_size) == (D("94000.5"), D("94010.25"), D("0.5"))
    paths = [(method, path) for method, path, _ in fake.requests[-2:]]
    assert paths == [("GET", "/v2/stocks/quotes/latest"), ("GET", "/v1beta3/crypto/us/latest/quotes")]


def test_quote_of_an_unknown_symbol_is_refused_and_an_empty_book_is_no_quote(adapter, fake):
    with pytest.raises(BrokerRejected, match="no market data for the symbol ZZZZ"):
        adapter.quote("ZZZZ")
    fake.set_quote("AAPL", D("0"), D("150.03"))
    with pytest.raises(BrokerError, match="no two-sided quote") as err:
        adapter.quote("AAPL")
    assert not isinstance(err.value, BrokerRejected)  # routing treats it as "no quote now"


def test_two_processes_reporting_running_totals_never_book_a_share_twice(
    settings, adapter, fake, trader, alpaca_account
):
    """The web process books the first 4 of 10 at once; a worker process that first sees the
    order at 7 filled reports the running total 7: the OMS books 3 more, at the right price."""
    fake.set_quote("MSFT", D("409.90"), D("410.10"))
    fake.fills["MSFT"] = [(D("4"), D("410.00")), (D("3"), D("410.70")), (D("3"), D("411.00"))]
    broker_account_sync(account=alpaca_account)
    placed = order_place(
        user=trader,
        request=order_request(symbol="MSFT", order_type="LIMIT", quantity="10", price="411"),
        actor=Actor.for_user(trader),
        broker_id=alpaca_account.pk,
    ).order
    assert (placed.status, placed.filled_quantity) == ("PARTIALLY_FILLED", D("4"))

    worker = AlpacaAdapter(alpaca_account)  # another process: it never saw the first fill
    with fake.lock:
        fake.read(fake.orders[placed.broker_order_id])  # the broker fills 3 more before the worker looks
    fake.fill_on_read = False
    order_apply_updates(account=alpaca_account, updates=worker.poll_updates(timezone.now()))

    placed.refresh_from_db()
    assert placed.filled_quantity == D("7")
    fills = list(placed.fills.order_by("id").values_list("quantity", "price"))
    assert fills == [(D("4"), D("410.00")), (D("3"), D("410.70"))]
    # and the web process, when it looks again, adds nothing the worker booked
    order_apply_updates(account=alpaca_account, updates=adapter.poll_updates(timezone.now()))
    placed.refresh_from_db()
    assert placed.filled_quantity == D("7")


# the trade_updates stream: tests/integration/brokers/test_alpaca_stream.py
